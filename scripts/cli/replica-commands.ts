/**
 * `hvlab replica …`: Hyper-V Replica (seed 002). `replica server enable` makes a standalone
 * host a replica server for the primaries it allows; `replica enable` replicates a VM to one
 * (kept in the VM's role, so whichever host runs the VM replicates it) and waits until the
 * initial replication is done (or, by media, until the disk is exported: `replica import`
 * takes it in on the server); `replica disable` stops it; `replica status` shows both sides.
 */
import { statSync } from 'node:fs'
import { resolve } from 'node:path'
import { type Command, InvalidArgumentError } from 'commander'
import { HvlabError, isTransientError } from '../../shared/errors.js'
import type { VmRoleRecord } from '../../shared/protocol/cluster-messages.js'
import type { MessageOf } from '../../shared/protocol/messages.js'
import {
  EXTENDED_FREQUENCIES_MS,
  INITIAL_REPLICATION_MODES,
  INITIAL_START_AHEAD_MS_MAX,
  RECOVERY_POINTS_MAX,
  REPLICA_RETRY_MS,
  REPLICATION_FREQUENCIES_MS,
  REPLICATION_MBIT_MAX,
  REPLICATION_MBIT_MIN,
  type InitialReplicationMode,
} from '../../shared/protocol/replica-limits.js'
import type { PrimarySideStatus, ReplicaSideStatus, ReplicationSetting } from '../../shared/protocol/replica-messages.js'
import { HOST_REQUEST_TIMEOUT_MS, roleCommand } from './cluster-client.js'
import { labLayout } from '../../shared/lab-layout.js'
import type { LabStatus } from '../controller/lab-controller.js'
import { ControlClient } from './control-client.js'
import { dirOption, intIn, nameList, numberIn, out, printResult } from './options.js'
import { registerSize } from './replica-size-command.js'
import { vmListNow, vmRole } from './vm-queries.js'
import { WAIT_POLL_MS, done, failed, waitFor, waitOptions, waiting, type WaitOpts } from './wait-for.js'

/** An import reads and writes the whole disk on the replica server. */
const IMPORT_TIMEOUT_MS = 120_000

const FREQUENCY_WORDS: Record<string, (typeof REPLICATION_FREQUENCIES_MS)[number]> = { '30s': 30_000, '5m': 300_000, '15m': 900_000 }

const frequency = (v: string): ReplicationSetting['frequency_ms'] => {
  const f = FREQUENCY_WORDS[v]
  if (f === undefined) throw new InvalidArgumentError('30s, 5m or 15m (the frequencies Replica offers)')
  return f
}

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

interface EnableOptions extends WaitOpts {
  to: string
  frequency: ReplicationSetting['frequency_ms']
  recoveryPoints: number
  compress?: boolean
  initial: InitialReplicationMode
  exportDir?: string
  startAt?: number
  maxMbit?: number
  dir: string
}

const initialMode = (v: string): InitialReplicationMode => {
  if (!(INITIAL_REPLICATION_MODES as readonly string[]).includes(v)) throw new InvalidArgumentError('network, export or seed')
  return v as InitialReplicationMode
}

/** A time within the next seven days, as ISO 8601 (`2026-12-07T02:00` is local time). */
const startTime = (v: string): number => {
  const at = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}/.test(v) ? Date.parse(v) : NaN
  if (Number.isNaN(at)) throw new InvalidArgumentError('an ISO 8601 date and time, e.g. 2026-12-07T02:00 (local) or 2026-12-07T01:00Z')
  if (at <= Date.now() || at - Date.now() > INITIAL_START_AHEAD_MS_MAX) throw new InvalidArgumentError('a time in the next seven days')
  return at
}

/** An existing folder or file named by the operator, as an absolute path (the lab's processes resolve nothing). */
const existing =
  (kind: 'folder' | 'file') =>
  (v: string): string => {
    const path = resolve(v)
    let st
    try {
      st = statSync(path)
    } catch {
      throw new InvalidArgumentError(`an existing ${kind}; ${path} does not exist`)
    }
    if (kind === 'folder' ? !st.isDirectory() : !st.isFile()) throw new InvalidArgumentError(`a ${kind}; ${path} is not one`)
    return path
  }

function registerEnable(replica: Command): void {
  const cmd = replica
    .command('enable')
    .description(
      'replicate a VM to a replica server: whichever host runs it sends its changes every cycle; the initial replication copies the blocks that differ, then the command returns',
    )
    .argument('<vm>', 'the VM name')
    .requiredOption('--to <server>', 'the replica server (`hvlab replica server enable` first)')
    .option('--frequency <f>', 'how often changes are sent: 30s, 5m or 15m (scaled by the topology timeScale)', frequency, 300_000)
    .option(
      '--recovery-points <n>',
      `recovery points the replica keeps (hourly), 0–${RECOVERY_POINTS_MAX}`,
      intIn(0, RECOVERY_POINTS_MAX),
      0,
    )
    .option('--compress', 'deflate the changes on the wire')
    .option(
      '--initial <how>',
      'how the initial copy reaches the replica: network (default); export (the host exports the disk to --export-dir, you import it on the server with `hvlab replica import`); seed (a copy you import on the server); then only differing blocks travel',
      initialMode,
      'network',
    )
    .option('--export-dir <dir>', '--initial export: the folder (the offline media) the disk is exported to', existing('folder'))
    .option('--start-at <time>', 'begin the initial replication at this time (ISO 8601, within 7 days), not now', startTime)
    .option(
      '--max-mbit <n>',
      `cap replication's bandwidth: the changes and resync blocks it sends average at most N Mbit/s (${REPLICATION_MBIT_MIN}–${REPLICATION_MBIT_MAX}, fractions allowed; real, not scaled); again with another N changes it at once, without it removes it`,
      numberIn(REPLICATION_MBIT_MIN, REPLICATION_MBIT_MAX),
    )
    .addOption(dirOption())
  waitOptions(cmd, 120).action(enable)
}

async function enable(vm: string, o: EnableOptions): Promise<void> {
  if ((o.initial === 'export') !== (o.exportDir !== undefined))
    throw new HvlabError('HVLAB_E_USAGE', '--export-dir goes with --initial export, and --initial export needs it')
  const client = ControlClient.forDir(o.dir)
  const setting: ReplicationSetting = {
    to: o.to,
    frequency_ms: o.frequency,
    recovery_points: o.recoveryPoints,
    compress: o.compress === true,
    ...(o.initial === 'network' ? {} : { initial: o.initial }),
    ...(o.exportDir === undefined ? {} : { export_dir: o.exportDir }),
    ...(o.startAt === undefined ? {} : { start_at_ms: o.startAt }),
    ...(o.maxMbit !== undefined ? { max_mbit: o.maxMbit } : {}),
  }
  await roleCommand(client, { op: 'set', name: vm, changes: { replication: setting } })
  if (o.startAt !== undefined)
    return out(`vm ${vm} is set to replicate to ${o.to}; its initial replication begins at ${new Date(o.startAt).toISOString()}`)
  if (!o.wait) return out(`vm ${vm} is set to replicate to ${o.to}; \`hvlab replica status ${vm}\` shows the initial replication`)
  const copy_wanted = o.initial === 'export' ? 'exported' : o.initial === 'seed' ? 'wanted' : 'no'
  const s = await initialReplication(client, vm, o.to, o.timeoutS, copy_wanted)
  if (s === null) return out(`vm ${vm} is not running; it replicates to ${o.to} from when it runs (its host replicates it first in full)`)
  if (s.waiting_for === 'initial-copy') return out(importHint(vm, o.to, s.export_file))
  const cap = o.maxMbit === undefined ? '' : ` at most ${o.maxMbit} Mbit/s`
  out(`vm ${vm} replicates to ${s.to} every ${s.frequency_ms / 1000} s${cap}; the initial replication is done (health ${s.health})`)
}

function importHint(vm: string, to: string, file: string | null): string {
  const from = file ?? 'FILE'
  const what = file === null ? `it waits for its initial copy on ${to}` : `its disk is exported to ${file}`
  return `vm ${vm}: ${what}; import it there with \`hvlab replica import ${vm} --on ${to} --from ${from}\`, then only the blocks changed since travel`
}

/**
 * Waits until the initial replication of `vm` is done, or (`copy_wanted`) until it waits
 * for a copy to be imported: at once with `wanted`, once the disk is exported with
 * `exported`, never with `no` (the copy is being imported). Null when the VM does not run.
 */
async function initialReplication(
  client: ControlClient,
  vm: string,
  to: string,
  timeout_s: number,
  copy_wanted: 'wanted' | 'exported' | 'no',
): Promise<PrimarySideStatus | null> {
  let refused_since_ms: number | null = null
  return waitFor({
    what: `the initial replication of vm ${vm} to ${to}`,
    watch: `\`hvlab replica status ${vm}\``,
    timeout_ms: timeout_s * 1000,
    poll: async () => {
      const sides = await primaryStatus(client, vm)
      if (sides === null) return done(null)
      const p = sides.find((x) => x.vm === vm)
      if (p === undefined) return waiting('the host running it has not started replicating yet')
      // A refusal by the replica server's allow list does not cure itself: once the host's next try (REPLICA_RETRY_MS) was refused too, say so.
      const refused = p.last_error_code === 'HVLAB_E_REPLICA_NOT_ALLOWED'
      refused_since_ms = refused ? (refused_since_ms ?? Date.now()) : null
      if (refused_since_ms !== null && Date.now() - refused_since_ms > REPLICA_RETRY_MS + WAIT_POLL_MS * 4)
        return failed('HVLAB_E_REFUSED', `${p.last_error ?? 'refused'} (vm ${vm} stays set to replicate; it begins once allowed)`)
      if (p.waiting_for === 'initial-copy' && copy_wanted !== 'no' && (copy_wanted === 'wanted' || p.export_file !== null)) return done(p)
      if (p.waiting_for === 'initial-copy')
        return waiting(copy_wanted === 'exported' ? 'the disk is being exported' : 'the initial copy to be imported')
      if (p.resyncing || p.last_error !== null) return waiting(p.last_error ?? 'the initial replication is under way')
      return done(p)
    },
  })
}

interface ImportOptions extends WaitOpts {
  on: string
  from: string
  dir: string
}

function registerImport(replica: Command): void {
  const cmd = replica
    .command('import')
    .description(
      "initial replication by media: the replica server takes a VM's initial copy from an export file (checked whole first); its primary then sends only the blocks changed since, and the command waits for that",
    )
    .argument('<vm>', 'the VM name')
    .requiredOption('--on <server>', "the replica server holding the VM's replica")
    .requiredOption('--from <file>', 'the export file (`replica enable --initial export` names it)', existing('file'))
    .addOption(dirOption())
  waitOptions(cmd, 120).action(importCopy)
}

async function importCopy(vm: string, o: ImportOptions): Promise<void> {
  const client = ControlClient.forDir(o.dir)
  const r = await client.request(o.on, { t: 'replica-import-request', vm, path: o.from }, 'replica-import-reply', IMPORT_TIMEOUT_MS)
  out(`${o.on} imported ${r.blocks_imported} blocks of vm ${vm} exported at ${new Date(r.exported_at_ms).toISOString()}`)
  if (!o.wait) return
  const s = await initialReplication(client, vm, o.on, o.timeoutS, 'no')
  if (s !== null && s.waiting_for === null)
    out(`vm ${vm} replicates to ${o.on}; only the blocks changed since the export travelled (health ${s.health})`)
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
    .option(
      '--force',
      'unplanned: start the replica even though the primary VM still runs (it then runs twice: the replica must stay isolated)',
    )
    .option('--on <server>', "unplanned: the server whose replica starts (an extended replica; default: the VM's replica server)")
    .addOption(dirOption())
  waitOptions(cmd, 120).action(failover)
}

async function failover(vm: string, o: FailoverOptions): Promise<void> {
  if (o.planned === true && (o.recoveryPoint !== undefined || o.force === true || o.on !== undefined))
    throw new HvlabError(
      'HVLAB_E_USAGE',
      '--planned sends the latest changes to the replica server: it takes no --recovery-point, --force or --on',
    )
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
  await client.request(
    server,
    { t: 'replica-failover-request', vm, recovery_cycle: o.recoveryPoint ?? null, ...(role?.load ? { load: role.load } : {}) },
    'ok',
    HOST_REQUEST_TIMEOUT_MS,
  )
  const from = o.recoveryPoint === undefined ? 'its latest cycle' : `the recovery point of cycle ${o.recoveryPoint}`
  out(
    `vm ${vm} failed over: it runs on ${server} from ${o.planned === true ? 'every change of its primary (planned: nothing lost)' : from}`,
  )
}

/** A process that did not answer because it is down, cut off or busy: not a refusal. */
const unreachable = (e: unknown): boolean => isTransientError(e) || HvlabError.has(e, 'HVLAB_E_PROCESS_DOWN')

/** What `ask` of the cluster answers, or null when the cluster cannot be reached (its hosts are down or cut off: a disaster). */
async function ifClusterReachable<T>(client: ControlClient, ask: () => Promise<T>): Promise<T | null> {
  const lab = await client.get<LabStatus>('/v1/status')
  if (!lab.processes.some((p) => p.role === 'host' && p.state === 'up')) return null // every cluster host is down
  try {
    return await ask()
  } catch (e) {
    if (unreachable(e)) return null // the hosts went down meanwhile
    throw e
  }
}

/** The VM's role, or null when the cluster cannot be reached (its site is lost: an unplanned failover is why). */
const roleIfReachable = (client: ControlClient, vm: string): Promise<VmRoleRecord | null> =>
  ifClusterReachable(client, () => vmRole(client, vm))

/** The standalone hosts of the lab's topology (replica servers once enabled). */
async function standaloneHosts(dir: string): Promise<string[]> {
  const { loadTopology } = await import('../../shared/topology.js') // not when hvlab starts: it brings zod
  return loadTopology(labLayout(dir).topology).standalone_hosts.map((h) => h.name)
}

/** With no cluster to ask: the replica server whose status names the VM. */
async function serverHolding(client: ControlClient, dir: string, vm: string): Promise<string> {
  for (const name of await standaloneHosts(dir)) if ((await sideOf(client, name, vm, 'replicas')) !== null) return name
  throw new HvlabError('HVLAB_E_NOT_FOUND', `no replica server holds a replica of vm ${vm}`)
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

/** What `replica status --json` prints: each replicated VM's primary side and its replica side. */
export interface ReplicaStatusView {
  vm: string
  primary_host: string | null
  to: string
  /** Replication's bandwidth cap in the VM's role, Mbit/s (null: none, or no cluster to ask). */
  max_mbit: number | null
  primary: PrimarySideStatus | null
  replica: ReplicaSideStatus | null
  /** Extended replication: the replica server forwarding to `to` (its side as a primary) and the third server's replica. */
  extended: { to: string; primary: PrimarySideStatus; replica: ReplicaSideStatus | null } | null
}

function registerStatus(replica: Command): void {
  replica
    .command('status')
    .description(
      'how replication stands: its bandwidth cap, health, RPO lag, bytes pending, cycles applied, recovery points, on both sides',
    )
    .argument('[vm]', 'one VM (default: every replicated VM)')
    .option(
      '--json',
      'machine-readable: [{vm,primary_host,to,max_mbit,primary:{health,lag_ms,pending_bytes,…}|null,replica:{applied_cycle,recovery_points,…}|null}]',
    )
    .addOption(dirOption())
    .action(async (vm: string | undefined, o: { json?: boolean; dir: string }) => {
      const views = await replicaStatusNow(ControlClient.forDir(o.dir), o.dir, vm ?? null)
      printResult(o.json, views, () => formatStatus(views))
    })
}

/** Every replicated VM (or one) as its primary host and its replica server report it. */
export async function replicaStatusNow(client: ControlClient, dir: string, vm: string | null): Promise<ReplicaStatusView[]> {
  const list = await ifClusterReachable(client, () => vmListNow(client))
  if (list === null) return replicaSidesOnly(client, dir, vm)
  const roles = list.roles.filter((r) => r.replication !== undefined && (vm === null || r.name === vm))
  if (vm !== null && roles.length === 0)
    throw new HvlabError('HVLAB_E_NOT_FOUND', `vm ${vm} is not replicated; \`hvlab replica enable ${vm} --to SERVER\` starts it`)
  return Promise.all(
    roles.map(async (r) => {
      const to = r.replication!.to
      const primary = r.state === 'running' && r.owner !== null ? await sideOf(client, r.owner, r.name, 'primaries') : null
      const replica = await sideOf(client, to, r.name, 'replicas')
      const extended = await extendedOf(client, to, r.name)
      const max_mbit = r.replication!.max_mbit ?? null
      return {
        vm: r.name,
        primary_host: r.state === 'running' ? r.owner : null,
        to,
        max_mbit,
        primary,
        replica,
        extended,
      } as ReplicaStatusView
    }),
  )
}

/** The primary side of `vm` on the host running it; null when it does not run. */
/** With no cluster to ask (a disaster): what the replica servers say of their replicas; no primary side. */
async function replicaSidesOnly(client: ControlClient, dir: string, vm: string | null): Promise<ReplicaStatusView[]> {
  const views: ReplicaStatusView[] = []
  for (const server of await standaloneHosts(dir)) {
    const r = await client
      .request(server, { t: 'replica-status-request', vm: null }, 'replica-status-reply', HOST_REQUEST_TIMEOUT_MS)
      .catch((e: unknown) => {
        if (unreachable(e)) return null // this server is down too: it has nothing to show
        throw e
      })
    for (const replica of r?.replicas ?? [])
      if (vm === null || replica.vm === vm)
        views.push({ vm: replica.vm, primary_host: null, to: server, max_mbit: null, primary: null, replica, extended: null })
  }
  if (vm !== null && views.length === 0)
    throw new HvlabError('HVLAB_E_NOT_FOUND', `no replica server holds a replica of vm ${vm}, and the cluster cannot be reached`)
  return views
}

async function primaryStatus(client: ControlClient, vm: string): Promise<PrimarySideStatus[] | null> {
  const role = (await vmListNow(client)).roles.find((r) => r.name === vm)
  if (role === undefined) throw new HvlabError('HVLAB_E_NOT_FOUND', `no vm named ${vm}; see \`hvlab vm list\``)
  if (role.state !== 'running' || role.owner === null) return null
  const p = await sideOf(client, role.owner, vm, 'primaries')
  return p === null ? [] : [p]
}

/** Where replica server `server` forwards `vm`'s replica (extended replication), and how; null: it does not. */
async function extendedOf(client: ControlClient, server: string, vm: string): Promise<ReplicaStatusView['extended']> {
  const forwarding = await sideOf(client, server, vm, 'primaries')
  if (forwarding === null) return null
  return { to: forwarding.to, primary: forwarding, replica: await sideOf(client, forwarding.to, vm, 'replicas') }
}

/** One side's status of `vm` from process `name`; null when it has none or does not answer. */
async function sideOf<K extends 'primaries' | 'replicas'>(
  client: ControlClient,
  name: string,
  vm: string,
  side: K,
): Promise<MessageOf<'replica-status-reply'>[K][number] | null> {
  try {
    const r = await client.request(name, { t: 'replica-status-request', vm: null }, 'replica-status-reply', HOST_REQUEST_TIMEOUT_MS)
    return (r[side] as MessageOf<'replica-status-reply'>[K]).find((x) => x.vm === vm) ?? null
  } catch (e) {
    if (unreachable(e) || HvlabError.has(e, 'HVLAB_E_NOT_FOUND')) return null
    throw e
  }
}

function formatStatus(views: readonly ReplicaStatusView[]): string {
  if (views.length === 0) return 'no vm is replicated; `hvlab replica enable VM --to SERVER` starts one'
  const rows = views.flatMap((v) => [statusRow(v.vm, v.primary_host, v.to, v.max_mbit, v.primary, v.replica), ...extendedRow(v)])
  const head = ['VM', 'PRIMARY', 'REPLICA', 'CAP MBIT/S', 'HEALTH', 'RPO LAG', 'PENDING B', 'APPLIED', 'POINTS', 'LAST ERROR']
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)))
  return [head, ...rows]
    .map((r) =>
      r
        .map((c, i) => c.padEnd(widths[i]!))
        .join('  ')
        .trimEnd(),
    )
    .join('\n')
}

type StatusRow = [
  vm: string,
  primary: string,
  replica: string,
  cap_mbit: string,
  health: string,
  lag: string,
  pending: string,
  applied: string,
  points: string,
  error: string,
]

/** One direction of replication as a row: `p` the sending side, `r` the receiving one. */
function statusRow(
  vm: string,
  from: string | null,
  to: string,
  max_mbit: number | null,
  p: PrimarySideStatus | null,
  r: ReplicaSideStatus | null,
): StatusRow {
  return [
    vm,
    from ?? '-',
    to,
    max_mbit === null ? '-' : String(max_mbit),
    healthWords(p, r),
    p === null ? '-' : `${(p.lag_ms / 1000).toFixed(1)} s`,
    p === null ? '-' : String(p.pending_bytes),
    r === null ? '-' : String(r.applied_cycle),
    r === null ? '-' : String(r.recovery_points.length),
    p?.last_error ?? '',
  ]
}

function healthWords(p: PrimarySideStatus | null, r: ReplicaSideStatus | null): string {
  if (r?.state === 'failed-over') return r.vm_running ? 'failed over (runs there)' : 'failed over'
  if (p === null) return '-'
  if (p.waiting_for !== null) return `${p.health} (waiting: ${p.waiting_for})`
  return p.resyncing ? `${p.health} (resyncing)` : p.health
}

/** Extended replication's row: the replica server forwarding to the third. */
function extendedRow(v: ReplicaStatusView): StatusRow[] {
  const e = v.extended
  return e === null ? [] : [statusRow(`${v.vm} (extended)`, v.to, e.to, null, e.primary, e.replica)]
}
