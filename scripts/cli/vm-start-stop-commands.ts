/**
 * `hvlab vm start` and `vm stop`: they wait until the role is running (printing its host)
 * or stopped, unless --no-wait. A start of a running VM and a stop of a stopped one are
 * no-ops that say so and succeed; a start that fails (the role failed, CLX refused its
 * storage …) exits 1 with the role's reason. Decided from the role record's state and
 * owner, never from its reason text. A VM a standalone host created (no role of that name)
 * is started or stopped there (standalone-vms.ts).
 */
import type { Command } from 'commander'
import type { VmRoleRecord } from '../../shared/protocol/cluster-messages.js'
import { roleCommand } from './cluster-client.js'
import { ControlClient } from './control-client.js'
import { dirOption, out } from './options.js'
import { roleOrStandalone, standaloneVmOp } from './standalone-vms.js'
import { vmRoleNow } from './vm-queries.js'
import { type WaitOpts, type WaitStep, done, failed, waitFor, waitOptions, waiting } from './wait-for.js'

/** A start may wait for CLX to switch the disk over and for the failover policy's retries. */
const START_TIMEOUT_S = 60
const STOP_TIMEOUT_S = 60

type StartStopOptions = WaitOpts & { dir: string; forceStorage?: boolean }

export function registerVmStart(vm: Command): void {
  const start = vm
    .command('start')
    .description(
      'start a VM role on the best node (preferred owners first) and wait until it runs (prints the host); resets its failover counters; a running VM is left as it is. A VM of a standalone host (`vm create --on`) starts there',
    )
    .argument('<name>', 'the VM name')
    .option(
      '--force-storage',
      "let CLX use this site's copy of the disk even though its remote-copy group is not in sync (later writes on the other array are lost); refused while the copy is still syncing",
    )
  waitOptions(start, START_TIMEOUT_S).addOption(dirOption()).action(roleOrStandaloneAction('start', startRole))
}

export function registerVmStop(vm: Command): void {
  const stop = vm
    .command('stop')
    .description(
      'stop a VM role and wait until it is stopped; it stays off until started. A VM of a standalone host (`vm create --on`) stops there, and stays off when that host restarts',
    )
    .argument('<name>', 'the VM name')
  waitOptions(stop, STOP_TIMEOUT_S).addOption(dirOption()).action(roleOrStandaloneAction('stop', stopRole))
}

/** `vm start|stop NAME`: `onRole` for the cluster's role NAME, else `op` on the standalone host whose own VM it is. */
function roleOrStandaloneAction(op: 'start' | 'stop', onRole: (client: ControlClient, name: string, o: StartStopOptions) => Promise<void>) {
  return async (name: string, o: StartStopOptions): Promise<void> => {
    const client = ControlClient.forDir(o.dir)
    return roleOrStandalone(
      client,
      o.dir,
      name,
      () => onRole(client, name, o),
      (host) => standaloneVmOp(client, host, name, op),
    )
  }
}

async function startRole(client: ControlClient, name: string, o: StartStopOptions): Promise<void> {
  const { role } = await vmRoleNow(client, name)
  if (role.state === 'running') {
    const flag = o.forceStorage ? '; --force-storage did nothing (it only applies when the VM starts)' : ''
    return out(`vm ${name} is already running on ${role.owner}${flag}`)
  }
  await roleCommand(client, o.forceStorage ? { op: 'start', name, force_storage: true } : { op: 'start', name })
  if (!o.wait) return out(`starting vm ${name}; \`hvlab vm list\` shows where it runs`)
  const owner = await waitFor({
    what: `vm ${name} to run`,
    watch: '`hvlab vm list`',
    timeout_ms: o.timeoutS * 1000,
    poll: async () => startStep(name, await vmRoleNow(client, name)),
  })
  out(`vm ${name} is running on ${owner}`)
}

/** Where a started role is: running on its owner, failed or stopped (with why), or still on its way. */
export function startStep(name: string, seen: { role: VmRoleRecord; current: boolean }): WaitStep<string> {
  const { role, current } = seen
  if (!current) return waiting(`no coordinator answers; the last committed record says ${role.state}`)
  if (role.state === 'running' && role.owner !== null) return done(role.owner)
  if (role.state === 'failed')
    return failed(
      'HVLAB_E_STATE',
      `vm ${name} failed to start: ${role.reason}; \`hvlab events\` shows why, \`hvlab vm start ${name}\` tries again`,
    )
  if (role.state === 'stopped') return failed('HVLAB_E_STATE', `vm ${name} did not start, it is stopped: ${role.reason}`)
  return waiting(`${role.state}${role.owner ? ` on ${role.owner}` : ''} (${role.reason})`)
}

async function stopRole(client: ControlClient, name: string, o: StartStopOptions): Promise<void> {
  const { role } = await vmRoleNow(client, name)
  if (role.state === 'stopped') return out(`vm ${name} is already stopped`)
  await roleCommand(client, { op: 'stop', name })
  if (!o.wait) return out(`stopping vm ${name}; \`hvlab vm list\` shows when it is stopped`)
  await waitFor({
    what: `vm ${name} to stop`,
    watch: '`hvlab vm list`',
    timeout_ms: o.timeoutS * 1000,
    poll: async () => stopStep(await vmRoleNow(client, name)),
  })
  out(`vm ${name} is stopped${role.owner ? ` (it ran on ${role.owner})` : ''}`)
}

export function stopStep(seen: { role: VmRoleRecord; current: boolean }): WaitStep<true> {
  const { role, current } = seen
  if (current && role.state === 'stopped') return done(true)
  return waiting(`${role.state}${role.owner ? ` on ${role.owner}` : ''} (${role.reason})`)
}
