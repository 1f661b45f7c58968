/**
 * `hvlab node …`: node maintenance — pause a cluster node (and drain its roles, waiting
 * until the drain completed or failed) or resume it (a node that is not paused is left as
 * it is, and the command says so).
 */
import type { Command } from 'commander'
import { askAnyHost, roleCommand } from './cluster-client.js'
import { ControlClient } from './control-client.js'
import { dirOption, out } from './options.js'
import { type SeenEvent, TimelineCursor } from './timeline-cursor.js'
import { vmListNow } from './vm-queries.js'
import { type WaitOpts, type WaitStep, done, failed, waitFor, waitOptions, waiting } from './wait-for.js'

/** A drain live-migrates every role off the node, at most 2 at a time per host. */
const DRAIN_TIMEOUT_S = 300

export function registerNodeCommands(program: Command): void {
  const node = program.command('node').description('node maintenance: pause (and drain) or resume a cluster node')
  registerNodePause(node)
  registerNodeResume(node)
}

function registerNodePause(node: Command): void {
  const pause = node
    .command('pause')
    .description(
      'pause a node: no new roles go there; with --drain its running roles live-migrate to other nodes (their preferred owners, else hosts of its own site first; higher priority first), and the command waits until the drain completed (printing where each VM went) or failed',
    )
    .argument('<name>', 'the host, e.g. host-a1')
    .option('--drain', 'live-migrate its running roles to other nodes: their preferred owners, else its own site first')
  waitOptions(pause, DRAIN_TIMEOUT_S).addOption(dirOption()).action(pauseNode)
}

async function pauseNode(name: string, o: WaitOpts & { dir: string; drain?: boolean }): Promise<void> {
  const client = ControlClient.forDir(o.dir)
  const follow = o.drain === true && o.wait
  const cursor = follow ? await TimelineCursor.atEnd(client) : null
  const onNode = follow ? (await vmListNow(client)).roles.filter((r) => r.owner === name).map((r) => r.name) : []
  await roleCommand(client, { op: 'pause', node: name, drain: o.drain === true })
  if (cursor === null) return out(`paused ${name}${o.drain ? '; draining its roles (`hvlab vm list` shows them move)' : ''}`)
  await waitFor({
    what: `the drain of ${name}`,
    watch: '`hvlab vm list` (and `hvlab events`)',
    timeout_ms: o.timeoutS * 1000,
    poll: async () => drainOutcome(name, await cursor.next()) ?? waiting(`draining ${name}`),
  })
  const roles = (await vmListNow(client)).roles.filter((r) => onNode.includes(r.name))
  const went = roles.map((r) => `  vm ${r.name} → ${r.owner ?? '-'} (${r.state})`)
  out([`paused ${name}; drained${went.length === 0 ? ': it ran no roles' : ''}`, ...went].join('\n'))
}

/** How the drain of `node` ended, from the timeline's events: drained, a role stuck on it (with why), or not yet (null). */
export function drainOutcome(node: string, events: readonly SeenEvent[]): WaitStep<true> | null {
  for (const e of events) {
    if (e.details['node'] !== node) continue
    if (e.kind === 'node.drained') return done(true)
    if (e.kind === 'role.drain-stuck')
      return failed(
        'HVLAB_E_STATE',
        `the drain of ${node} failed: ${String(e.details['reason'])}; \`hvlab node resume ${node}\` ends the pause`,
      )
  }
  return null
}

function registerNodeResume(node: Command): void {
  node
    .command('resume')
    .description('resume a paused node; with --failback the roles drained from it move back; a node that is not paused is left as it is')
    .argument('<name>', 'the host, e.g. host-a1')
    .option('--failback', 'move the roles drained from it back')
    .addOption(dirOption())
    .action(async (name: string, o: { dir: string; failback?: boolean }) => {
      const client = ControlClient.forDir(o.dir)
      const state = await nodeState(client, name)
      if (state === 'Up' || state === 'Joining') return out(`${name} is not paused (${state}); nothing to resume`)
      await roleCommand(client, { op: 'resume', node: name, failback: o.failback === true })
      out(`resumed ${name}${o.failback ? '; its drained roles move back' : ''}`)
    })
}

/** The node's state as a host with quorum sees it (Up, Paused, Down, Joining); undefined if it is not a node. */
async function nodeState(client: ControlClient, name: string): Promise<string | undefined> {
  const r = await askAnyHost(client, { t: 'cluster-status-request' }, 'cluster-status-reply')
  return r.status.nodes.find((n) => n.name === name)?.state
}
