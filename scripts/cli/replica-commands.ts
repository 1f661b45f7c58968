/**
 * `hvlab replica …`: Hyper-V Replica (seed 002). `replica server enable` makes a standalone
 * host a replica server for the primaries it allows; `replica enable` and `replica import`
 * (replica-enable-commands.ts) replicate a VM to one; `replica extend` forwards a replica
 * to a third server; `replica disable` stops replication; `replica failover` and
 * `replica test-failover` start the replica; `replica size` (replica-size-command.ts)
 * measures a VM's churn; `replica status` (replica-status-command.ts) shows every side.
 */
import { type Command, InvalidArgumentError } from 'commander'
import { HvlabError } from '../../shared/errors.js'
import type { VmRoleRecord } from '../../shared/protocol/cluster-messages.js'
import { EXTENDED_FREQUENCIES_MS } from '../../shared/protocol/replica-limits.js'
import { HOST_REQUEST_TIMEOUT_MS, roleCommand } from './cluster-client.js'
import { ControlClient } from './control-client.js'
import { dirOption, intIn, nameList, out } from './options.js'
import { registerEnable, registerImport } from './replica-enable-commands.js'
import { latestAppConsistentCycle } from './replica-point-choice.js'
import { roleIfReachable, serverHolding, sideOf } from './replica-queries.js'
import { registerSize } from './replica-size-command.js'
import { registerStatus } from './replica-status-command.js'
import { vmRole } from './vm-queries.js'
import { done, failed, waitFor, waitOptions, waiting, type WaitOpts } from './wait-for.js'

export function registerReplicaCommands(program: Command): void {
  const replica = program
    .command('replica')
    .description('Hyper-V Replica: asynchronous replication of VMs to a replica server in another site')
  registerServerEnable(replica)
  registerEnable(replica)
  registerImport(replica)
  registerExtend(replica)
  registerDisable(replica)
  registerFailover(replica)
  registerTestFailover(replica)
  registerStatus(replica)
  registerSize(replica)
}

function registerServerEnable(replica: Command): void {
  replica
    .command('server')
    .description('replica servers')
    .command('enable')
    .description('make a standalone host a replica server that takes replication from the primary servers it allows')
    .argument('<server>', 'the standalone host (topology: standalone_hosts)')
    .requiredOption('--allow <hosts>', 'comma-separated primary servers (cluster hosts) it takes replication from, or `any`', nameList)
    .addOption(dirOption())
    .action(async (server: string, o: { allow: string[]; dir: string }) => {
      const allow_any = o.allow.includes('any')
      if (allow_any && o.allow.length > 1) throw new HvlabError('HVLAB_E_USAGE', '--allow takes `any` or a list of hosts, not both')
      const client = ControlClient.forDir(o.dir)
      await client.request(
        server,
        { t: 'replica-server-enable-request', allow_any, allow: allow_any ? [] : o.allow },
        'ok',
        HOST_REQUEST_TIMEOUT_MS,
      )
      out(`${server} is a replica server; it takes replication from ${allow_any ? 'any host of the lab' : o.allow.join(', ')}`)
    })
}

const EXTENDED_FREQUENCY_WORDS: Record<string, (typeof EXTENDED_FREQUENCIES_MS)[number]> = { '5m': 300_000, '15m': 900_000 }

const extendedFrequency = (v: string): (typeof EXTENDED_FREQUENCIES_MS)[number] => {
  const f = EXTENDED_FREQUENCY_WORDS[v]
  if (f === undefined) throw new InvalidArgumentError('5m or 15m (the frequencies extended replication offers)')
  return f
}

interface ExtendOptions {
  to?: string
  frequency: (typeof EXTENDED_FREQUENCIES_MS)[number]
  stop?: boolean
  dir: string
}

function registerExtend(replica: Command): void {
  replica
    .command('extend')
    .description(
      "extended replication: the replica server holding a VM's replica forwards it to a third server (`replica server enable` that one, allowing the first), every 5 or 15 minutes; --stop ends it",
    )
    .argument('<vm>', 'the VM name')
    .option('--to <server>', 'the third server (a standalone host)')
    .option(
      '--frequency <f>',
      'how often the replica server forwards: 5m or 15m (scaled by the topology timeScale)',
      extendedFrequency,
      300_000,
    )
    .option('--stop', 'forward it no longer (the third server keeps its replica)')
    .addOption(dirOption())
    .action(async (vm: string, o: ExtendOptions) => {
      if ((o.stop === true) === (o.to !== undefined)) throw new HvlabError('HVLAB_E_USAGE', 'name the third server with --to, or --stop')
      const client = ControlClient.forDir(o.dir)
      const role = await roleIfReachable(client, vm)
      const from = role?.replication?.to ?? (await serverHolding(client, o.dir, vm))
      const extension = o.to === undefined ? null : { to: o.to, frequency_ms: o.frequency }
      await client.request(from, { t: 'replica-extend-request', vm, extension }, 'ok', HOST_REQUEST_TIMEOUT_MS)
      out(
        extension === null
          ? `${from} no longer forwards vm ${vm}'s replica`
          : `${from} forwards vm ${vm}'s replica to ${extension.to} every ${extension.frequency_ms / 60_000} min (after a first resync); \`hvlab replica status ${vm}\` shows it`,
      )
    })
}

function registerDisable(replica: Command): void {
  replica
    .command('disable')
    .description("stop replicating a VM (the replica server keeps the replica's disk)")
    .argument('<vm>', 'the VM name')
    .addOption(dirOption())
    .action(async (vm: string, o: { dir: string }) => {
      await roleCommand(ControlClient.forDir(o.dir), { op: 'set', name: vm, changes: { replication: null } })
      out(`vm ${vm} is no longer replicated`)
    })
}

interface FailoverOptions extends WaitOpts {
  planned?: boolean
  on?: string
  recoveryPoint?: number
  latestAppConsistent?: boolean
  force?: boolean
  dir: string
}

function registerFailover(replica: Command): void {
  const cmd = replica
    .command('failover')
    .description(
      'start a VM on its replica server. --planned: shut the VM down on its primary, send its last changes, then start the replica: nothing is lost. Unplanned (the primary is lost): start the replica from its latest cycle or a recovery point; refused while the primary still runs the VM, unless --force',
    )
    .argument('<vm>', 'the VM name')
    .option('--planned', 'a planned failover: shut down, send the last changes, start the replica (zero data loss)')
    .option(
      '--recovery-point <cycle>',
      'unplanned: start from the recovery point of this cycle (`hvlab replica status VM --json` lists them)',
      intIn(0, Number.MAX_SAFE_INTEGER),
    )
    .option('--latest-app-consistent', 'unplanned: start from the newest application-consistent recovery point')
    .option(
      '--force',
      'unplanned: start the replica even though the primary VM still runs (it then runs twice: the replica must stay isolated)',
    )
    .option('--on <server>', "unplanned: the server whose replica starts (an extended replica; default: the VM's replica server)")
    .addOption(dirOption())
  waitOptions(cmd, 120).action(failover)
}

async function failover(vm: string, o: FailoverOptions): Promise<void> {
  if (o.planned === true && (o.recoveryPoint !== undefined || o.latestAppConsistent === true || o.force === true || o.on !== undefined))
    throw new HvlabError(
      'HVLAB_E_USAGE',
      '--planned sends the latest changes to the replica server: it takes no --recovery-point, --latest-app-consistent, --force or --on',
    )
  if (o.recoveryPoint !== undefined && o.latestAppConsistent === true)
    throw new HvlabError('HVLAB_E_USAGE', '--recovery-point and --latest-app-consistent each name the point: give one')
  const client = ControlClient.forDir(o.dir)
  const role = o.planned === true ? await vmRole(client, vm) : await roleIfReachable(client, vm)
  const to = role?.replication?.to
  if (role !== null && to === undefined)
    throw new HvlabError('HVLAB_E_STATE', `vm ${vm} is not replicated; \`hvlab replica enable ${vm} --to SERVER\` first`)
  if (o.planned === true) await shutDownAndSend(client, vm, role!, o)
  else if (role?.state === 'running' && o.force !== true)
    throw new HvlabError(
      'HVLAB_E_STATE',
      `vm ${vm} still runs on its primary (${role.owner}): starting the replica now would run it twice. Use --planned, stop it first (\`hvlab vm stop ${vm}\`), or --force if the primary is cut off for good`,
    )
  const server = o.on ?? to ?? (await serverHolding(client, o.dir, vm))
  if (o.latestAppConsistent === true) o.recoveryPoint = await latestAppConsistentCycle(client, server, vm)
  await client.request(
    server,
    { t: 'replica-failover-request', vm, recovery_cycle: o.recoveryPoint ?? null, ...(role?.load ? { load: role.load } : {}) },
    'ok',
    HOST_REQUEST_TIMEOUT_MS,
  )
  const kind = o.latestAppConsistent === true ? 'application-consistent ' : ''
  const from = o.recoveryPoint === undefined ? 'its latest cycle' : `the ${kind}recovery point of cycle ${o.recoveryPoint}`
  out(
    `vm ${vm} failed over: it runs on ${server} from ${o.planned === true ? 'every change of its primary (planned: nothing lost)' : from}`,
  )
}

/** A planned failover's first half: the primary VM shut down, and its last changes applied on the replica. */
async function shutDownAndSend(client: ControlClient, vm: string, role: VmRoleRecord, o: FailoverOptions): Promise<void> {
  if (role.state !== 'running' || role.owner === null)
    throw new HvlabError(
      'HVLAB_E_STATE',
      `a planned failover shuts down the running primary; vm ${vm} is ${role.state}. Without it: \`hvlab replica failover ${vm}\``,
    )
  const primary = role.owner
  await roleCommand(client, { op: 'stop', name: vm })
  await waitFor({
    what: `vm ${vm}'s last changes to reach its replica`,
    watch: `\`hvlab replica status ${vm}\``,
    timeout_ms: o.timeoutS * 1000,
    poll: async () => {
      const p = await sideOf(client, primary, vm, 'primaries')
      if (p === null || !p.stopped) return waiting(`vm ${vm} is shutting down on ${primary}`)
      if (p.finished === 'abandoned')
        return failed(
          'HVLAB_E_STATE',
          `${primary} could not send vm ${vm}'s last changes (${p.last_error ?? 'abandoned'}); the VM is stopped, nothing failed over`,
        )
      return p.finished === 'sent' ? done(p) : waiting(`${p.pending_bytes} bytes still to send`)
    },
  })
}

function registerTestFailover(replica: Command): void {
  replica
    .command('test-failover')
    .description(
      'start VM-test on the replica server from a copy of the replica, on an isolated network (no client reaches it), while replication goes on; --stop ends it and drops the copy',
    )
    .argument('<vm>', 'the VM name')
    .option('--stop', 'end the test failover')
    .addOption(dirOption())
    .action(async (vm: string, o: { stop?: boolean; dir: string }) => {
      const client = ControlClient.forDir(o.dir)
      const role = await vmRole(client, vm)
      const to = role.replication?.to
      if (to === undefined)
        throw new HvlabError('HVLAB_E_STATE', `vm ${vm} is not replicated; \`hvlab replica enable ${vm} --to SERVER\` first`)
      const stop = o.stop === true
      await client.request(
        to,
        { t: 'replica-test-failover-request', vm, stop, ...(role.load && !stop ? { load: role.load } : {}) },
        'ok',
        HOST_REQUEST_TIMEOUT_MS,
      )
      out(
        stop
          ? `the test failover of vm ${vm} on ${to} ended; its copy is dropped`
          : `${vm}-test runs on ${to} from a copy of the replica, on an isolated network; replication goes on. \`hvlab replica test-failover ${vm} --stop\` ends it`,
      )
    })
}
