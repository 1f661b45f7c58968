/**
 * `hvlab replica enable` replicates a VM to a replica server (kept in the VM's role, so
 * whichever host runs the VM replicates it) and waits until the initial replication is
 * done, or, by media, until the disk is exported; `hvlab replica import` takes an export in
 * on the replica server, and waits while the primary sends what changed since.
 */
import { statSync } from 'node:fs'
import { resolve } from 'node:path'
import { type Command, InvalidArgumentError } from 'commander'
import { HvlabError } from '../../shared/errors.js'
import {
  APP_CONSISTENT_EVERY_H_MAX,
  APP_CONSISTENT_EVERY_H_MIN,
  INITIAL_REPLICATION_MODES,
  INITIAL_START_AHEAD_MS_MAX,
  RECOVERY_POINTS_MAX,
  REPLICATION_FREQUENCIES_MS,
  REPLICATION_MBIT_MAX,
  REPLICATION_MBIT_MIN,
  type InitialReplicationMode,
} from '../../shared/protocol/replica-limits.js'
import { VM_DISKS_MAX } from '../../shared/protocol/storage-limits.js'
import type { Extension, ReplicationSetting } from '../../shared/protocol/replica-messages.js'
import { roleCommand } from './cluster-client.js'
import { ControlClient } from './control-client.js'
import { dirOption, intIn, numberIn, out } from './options.js'
import { initialReplication } from './replica-initial-wait.js'
import { setOnStandalone, standaloneSides } from './replica-standalone.js'
import { roleOrStandalone } from './standalone-vms.js'
import { replicateToCluster } from './replica-to-cluster.js'
import { replicateToOtherCluster } from './replica-to-other-cluster.js'
import { extendedFrequency, forwardReplica } from './replica-extension.js'
import { waitOptions, type WaitOpts } from './wait-for.js'

const FREQUENCY_WORDS: Record<string, (typeof REPLICATION_FREQUENCIES_MS)[number]> = { '30s': 30_000, '5m': 300_000, '15m': 900_000 }

const frequency = (v: string): ReplicationSetting['frequency_ms'] => {
  const f = FREQUENCY_WORDS[v]
  if (f === undefined) throw new InvalidArgumentError('30s, 5m or 15m (the frequencies Replica offers)')
  return f
}

/** An import reads and writes the whole disk on the replica server. */
const IMPORT_TIMEOUT_MS = 120_000

interface EnableOptions extends WaitOpts {
  to: string
  frequency: ReplicationSetting['frequency_ms']
  recoveryPoints: number
  compress?: boolean
  initial: InitialReplicationMode
  exportDir?: string
  startAt?: number
  maxMbit?: number
  appConsistentEveryH?: number
  disks?: number[]
  extendTo?: string
  extendFrequency: Extension['frequency_ms']
  dir: string
}

/** `--disks 0,2`: distinct disk numbers, disk 0 (the VM's system disk) among them, ascending. */
const diskList = (v: string): number[] => {
  const parts = v.split(',')
  const disks = parts.map((p) => (/^\d{1,2}$/.test(p) ? Number(p) : NaN))
  if (disks.some((k) => !Number.isInteger(k) || k >= VM_DISKS_MAX))
    throw new InvalidArgumentError(`disk numbers 0–${VM_DISKS_MAX - 1}, comma-separated, e.g. 0,2`)
  const sorted = [...new Set(disks)].sort((a, b) => a - b)
  if (sorted[0] !== 0) throw new InvalidArgumentError("disk 0 (the VM's system disk: it boots from it) must replicate; e.g. 0,2")
  return sorted
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

export function registerEnable(replica: Command): void {
  const cmd = replica
    .command('enable')
    .description(
      'replicate a VM to a replica server: whichever host runs it sends its changes every cycle; the initial replication copies the blocks that differ, then the command returns',
    )
    .argument('<vm>', 'the VM name')
    .requiredOption(
      '--to <server>',
      'the replica server (`hvlab replica server enable` first); `cluster:NAME`: another failover cluster of the lab, whose Replica Broker places the replica on one of its members (`hvlab --cluster NAME replica server enable cluster --allow THIS --storage csv:V` first); `cluster`: a VM failed over to its replica server (unplanned) replicates back to the cluster, into its own volume (its Replica Broker places it), so that `replica failover VM --planned` fails it back; a VM created on a standalone host (`vm create NAME --on HOST`) replicates to the cluster the same way, into a new volume, and `replica failover VM --planned` moves it into the cluster',
    )
    .option('--frequency <f>', 'how often changes are sent: 30s, 5m or 15m (scaled by the topology timeScale)', frequency, 300_000)
    .option(
      '--recovery-points <n>',
      `recovery points the replica keeps (hourly), 0–${RECOVERY_POINTS_MAX}`,
      intIn(0, RECOVERY_POINTS_MAX),
      0,
    )
    .option(
      '--app-consistent-every-h <n>',
      `every N hours (${APP_CONSISTENT_EVERY_H_MIN}–${APP_CONSISTENT_EVERY_H_MAX}, scaled like the points) a recovery point is application-consistent: the guest quiesces (VSS) before that cycle closes; needs --recovery-points N or more`,
      intIn(APP_CONSISTENT_EVERY_H_MIN, APP_CONSISTENT_EVERY_H_MAX),
    )
    .option('--compress', 'deflate the changes on the wire')
    .option(
      '--disks <list>',
      "which of the VM's disks replicate, e.g. 0,2 (disk 0 among them; default all): a disk left out (a paging disk) is never sent, and the VM fails over with it blank; again with another list, a resync sends the disks added and blanks those left out",
      diskList,
    )
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
    .option(
      '--extend-to <server>',
      'extended replication: once the initial replication is done, the replica server forwards the replica to this third server (`replica server enable` it, allowing the first; the same as `hvlab replica extend VM --to SERVER` then)',
    )
    .option(
      '--extend-frequency <f>',
      '--extend-to: how often it forwards, 5m or 15m (scaled by the topology timeScale)',
      extendedFrequency,
      300_000,
    )
    .addOption(dirOption())
  waitOptions(cmd, 120).action(enable)
}

async function enable(vm: string, o: EnableOptions): Promise<void> {
  if (o.to === 'cluster') return toCluster(vm, o)
  if (o.to.startsWith('cluster:')) return toOtherCluster(vm, o)
  if ((o.initial === 'export') !== (o.exportDir !== undefined))
    throw new HvlabError('HVLAB_E_USAGE', '--export-dir goes with --initial export, and --initial export needs it')
  if (o.extendTo !== undefined && (o.initial !== 'network' || o.startAt !== undefined || !o.wait))
    throw new HvlabError(
      'HVLAB_E_USAGE',
      `--extend-to forwards the replica once its initial replication is done here: not with --initial ${o.initial}, --start-at or --no-wait; \`hvlab replica extend ${vm} --to ${o.extendTo}\` once it is`,
    )
  checkAppConsistent(o)
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
    ...(o.appConsistentEveryH !== undefined ? { app_consistent_every_h: o.appConsistentEveryH } : {}),
    ...(o.disks !== undefined ? { disks: o.disks } : {}),
  }
  const own = await roleOrStandalone(
    client,
    o.dir,
    vm,
    async () => null,
    async (host, side) => ({ host, side }),
  )
  if (own !== null) await setOnStandalone(client, vm, own, setting)
  else await roleCommand(client, { op: 'set', name: vm, changes: { replication: setting } })
  if (o.startAt !== undefined)
    return out(`vm ${vm} is set to replicate to ${o.to}; its initial replication begins at ${new Date(o.startAt).toISOString()}`)
  if (!o.wait) return out(`vm ${vm} is set to replicate to ${o.to}; \`hvlab replica status ${vm}\` shows the initial replication`)
  const copy_wanted = o.initial === 'export' ? 'exported' : o.initial === 'seed' ? 'wanted' : 'no'
  const s = await initialReplication(client, vm, o.to, o.timeoutS, copy_wanted, own === null ? undefined : standaloneSides(client, vm, own))
  if (s === null) return out(`vm ${vm} is not running; it replicates to ${o.to} from when it runs (its host replicates it first in full)`)
  if (s.waiting_for === 'initial-copy') return out(importHint(vm, o.to, s.export_file))
  const cap = o.maxMbit === undefined ? '' : ` at most ${o.maxMbit} Mbit/s`
  const from = own === null ? '' : ` from ${own.host}`
  out(`vm ${vm} replicates${from} to ${s.to} every ${s.frequency_ms / 1000} s${cap}; the initial replication is done (health ${s.health})`)
  if (o.extendTo !== undefined) out(await forwardReplica(client, o.to, vm, { to: o.extendTo, frequency_ms: o.extendFrequency }))
}

/** --app-consistent-every-h makes some of the recovery points application-consistent: it needs as many. */
function checkAppConsistent(o: EnableOptions): void {
  if (o.appConsistentEveryH !== undefined && o.appConsistentEveryH > o.recoveryPoints)
    throw new HvlabError(
      'HVLAB_E_USAGE',
      `--app-consistent-every-h ${o.appConsistentEveryH} needs --recovery-points ${o.appConsistentEveryH} or more (the points it makes application-consistent), got ${o.recoveryPoints}`,
    )
}

/** `--to cluster`: a VM failed over unplanned, or created on a standalone host, replicates to the cluster (replica-to-cluster.ts), with a frequency and compression only. */
async function toCluster(vm: string, o: EnableOptions): Promise<void> {
  const other =
    o.recoveryPoints !== 0 ||
    o.appConsistentEveryH !== undefined ||
    o.initial !== 'network' ||
    o.exportDir !== undefined ||
    o.startAt !== undefined ||
    o.maxMbit !== undefined ||
    o.disks !== undefined ||
    o.extendTo !== undefined
  if (other)
    throw new HvlabError(
      'HVLAB_E_USAGE',
      "--to cluster takes --frequency and --compress only: the VM's own volume is the replica (compared block by block first), with no recovery points",
    )
  await replicateToCluster(ControlClient.forDir(o.dir), vm, { ...o, compress: o.compress === true })
}

/** `--to cluster:NAME`: a VM of this cluster to another cluster of the lab (replica-to-other-cluster.ts); its replica is that cluster's volume, its recovery points kept by the member holding it. */
async function toOtherCluster(vm: string, o: EnableOptions): Promise<void> {
  const there = o.to.slice('cluster:'.length)
  if (!/^[a-z0-9][a-z0-9._-]{0,62}$/.test(there))
    throw new HvlabError('HVLAB_E_USAGE', `--to ${o.to}: name a failover cluster of the lab, e.g. --to cluster:dr (topology \`clusters\`)`)
  if (o.initial !== 'network' || o.exportDir !== undefined || o.startAt !== undefined || o.extendTo !== undefined)
    throw new HvlabError(
      'HVLAB_E_USAGE',
      `--to ${o.to} takes --frequency, --recovery-points, --app-consistent-every-h, --compress, --disks and --max-mbit: the replica is the VM's own volume in that cluster, compared block by block first (no --initial, --export-dir, --start-at or --extend-to)`,
    )
  checkAppConsistent(o)
  const setting: ReplicationSetting = {
    to: there,
    to_cluster: true,
    frequency_ms: o.frequency,
    recovery_points: o.recoveryPoints,
    compress: o.compress === true,
    ...(o.appConsistentEveryH !== undefined ? { app_consistent_every_h: o.appConsistentEveryH } : {}),
    ...(o.maxMbit !== undefined ? { max_mbit: o.maxMbit } : {}),
    ...(o.disks !== undefined ? { disks: o.disks } : {}),
  }
  await replicateToOtherCluster(ControlClient.forDir(o.dir), vm, { ...o, setting })
}

function importHint(vm: string, to: string, file: string | null): string {
  const from = file ?? 'FILE'
  const what = file === null ? `it waits for its initial copy on ${to}` : `its disk is exported to ${file}`
  return `vm ${vm}: ${what}; import it there with \`hvlab replica import ${vm} --on ${to} --from ${from}\`, then only the blocks changed since travel`
}

interface ImportOptions extends WaitOpts {
  on: string
  from: string
  dir: string
}

export function registerImport(replica: Command): void {
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
  const sides = await roleOrStandalone(
    client,
    o.dir,
    vm,
    async () => undefined,
    async (host, side) => standaloneSides(client, vm, { host, side }),
  )
  const s = await initialReplication(client, vm, o.on, o.timeoutS, 'no', sides)
  if (s !== null && s.waiting_for === null)
    out(`vm ${vm} replicates to ${o.on}; only the blocks changed since the export travelled (health ${s.health})`)
}
