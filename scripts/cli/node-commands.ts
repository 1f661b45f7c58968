/** `hvlab node …`: node maintenance — pause a cluster node (and drain its roles) or resume it. */
import type { Command } from 'commander'
import { roleCommand } from './cluster-client.js'
import { ControlClient } from './control-client.js'
import { dirOption, out } from './options.js'

export function registerNodeCommands(program: Command): void {
  const node = program.command('node').description('node maintenance: pause (and drain) or resume a cluster node')
  registerNodePause(node)
  registerNodeResume(node)
}

function registerNodePause(node: Command): void {
  node
    .command('pause')
    .description('pause a node: no new roles go there; with --drain its roles move to other nodes (quick move)')
    .argument('<name>', 'the host, e.g. host-a1')
    .option('--drain', 'move its running roles off to other nodes')
    .addOption(dirOption())
    .action(async (name: string, o: { dir: string; drain?: boolean }) => {
      await roleCommand(ControlClient.forDir(o.dir), { op: 'pause', node: name, drain: o.drain === true })
      out(`paused ${name}${o.drain ? '; draining its roles (`hvlab vm list` shows them move)' : ''}`)
    })
}

function registerNodeResume(node: Command): void {
  node
    .command('resume')
    .description('resume a paused node; with --failback the roles drained from it move back')
    .argument('<name>', 'the host, e.g. host-a1')
    .option('--failback', 'move the roles drained from it back')
    .addOption(dirOption())
    .action(async (name: string, o: { dir: string; failback?: boolean }) => {
      await roleCommand(ControlClient.forDir(o.dir), { op: 'resume', node: name, failback: o.failback === true })
      out(`resumed ${name}${o.failback ? '; its drained roles move back' : ''}`)
    })
}
