/**
 * A soak run (`npm run soak`, `hvlab soak run`): starts a lab in `<dir>/lab` with the hosts'
 * disk write journals on, creates VMs under memory and disk load, pings each at its stable
 * address, and runs the seeded fault schedule (fault, hold, heal, quiet with an operator
 * action now and then) for the minutes asked; then stops the faults, waits for every VM to
 * answer again, stops the disk writers, reads what each written block holds, and puts it
 * all in `<dir>/history.jsonl`. With a standalone host in the topology, the first VM is
 * also replicated to it with Hyper-V Replica (soak-replica.ts), and its replica read back
 * once replication caught up. The lab is always stopped, whatever happens (a failure,
 * Ctrl-C, SIGTERM). checker.ts turns the history into the report.
 */
import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import type { Topology } from '../../shared/topology.js'
import { defaultStorageKind } from '../../shared/vm-storage-choice.js'
import { DISK_BLOCK_SIZE_BYTES_DEFAULT } from '../../agent/vm/vm-disk.js'
import { blocksWritten, collectDiskJournals, finalBlocks, stopDiskWriters } from './disk-readback.js'
import { FaultSchedule, faultTarget, scheduleLabOf, type FaultKind, type ScheduleStep } from './fault-schedule.js'
import { HISTORY_FILE, HistoryWriter, type RecordOf } from './history.js'
import { healFault, injectFault } from './nemesis.js'
import { allRunning, runOperatorAction } from './operator-actions.js'
import { PingWorkload } from './ping-workload.js'
import { SoakProgress } from './soak-progress.js'
import { SoakLab } from './soak-lab.js'
import { sampleAll, type SampledProcess } from './resource-sampler.js'
import { readTimeline } from './timeline-files.js'
import {
  enableReplicaServer,
  enableReplication,
  replicaFinalBlocks,
  soakReplicaOf,
  waitReplicaCaughtUp,
  type SoakReplica,
} from './soak-replica.js'

export interface SoakOptions {
  minutes: number
  seed: number
  topologyFile: string
  topology: Topology
  faults: FaultKind[]
  vms: number
  dir: string
  /** The command line that reproduces this run. */
  reproduce: string
  /** Progress lines (none when undefined). */
  progress?: (line: string) => void
}

export const SOAK_VM_MEMORY_MIB = 64
export const SOAK_DIRTY_MIB_PER_S = 2
export const SOAK_DISK_IOPS = 20
export const SOAK_PING_INTERVAL_MS = 100
/** Failovers each soak VM may make within an hour before it stays failed (vm set --failover-threshold). */
export const SOAK_FAILOVER_THRESHOLD = 1000
const PING_TIMEOUT_MS = 2_000
/** Every VM must answer again this long after the faults stopped (README: soak). */
export const RECOVERY_BOUND_MS = 60_000
const SAMPLE_EVERY_MS = 5_000
/** How long the clients may take to hear every VM before the first fault; then the lab runs unharmed for BASELINE_MS. */
const WARM_UP_MS = 30_000
const BASELINE_MS = 3_000

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

/** Runs the soak; returns the history file. */
export async function runSoak(o: SoakOptions): Promise<string> {
  mkdirSync(o.dir, { recursive: true })
  const lab = new SoakLab(join(o.dir, 'lab'))
  const history = new HistoryWriter(join(o.dir, HISTORY_FILE))
  const vms = Array.from({ length: o.vms }, (_, i) => `soak-vm${i + 1}`)
  const stop = (): void => void lab.cli('down').finally(() => process.exit(130))
  process.once('SIGINT', stop).once('SIGTERM', stop)
  const replica = soakReplicaOf(o.topology, vms)
  try {
    history.write(metaRecord(o, vms))
    await startLab(lab, o)
    if (replica) await enableReplicaServer(lab, replica)
    await createVms(lab, o.topology, vms, async (vm) => {
      if (replica?.vm === vm) history.write(await enableReplication(lab, replica))
    })
    await runFaults(lab, o, vms, history, replica)
    return history.file
  } finally {
    process.off('SIGINT', stop).off('SIGTERM', stop)
    await lab.cli('down')
  }
}

function metaRecord(o: SoakOptions, vms: string[]): RecordOf<'meta'> {
  return {
    t: 'meta',
    format: 1,
    seed: o.seed,
    minutes: o.minutes,
    topology: o.topologyFile,
    faults: o.faults,
    vms,
    reproduce: o.reproduce,
    started_ms: Date.now(),
    recovery_bound_ms: RECOVERY_BOUND_MS,
    block_size_bytes: DISK_BLOCK_SIZE_BYTES_DEFAULT,
    vm_memory_mib: SOAK_VM_MEMORY_MIB,
    ping_interval_ms: SOAK_PING_INTERVAL_MS,
  }
}

async function startLab(lab: SoakLab, o: SoakOptions): Promise<void> {
  // Every process of the lab (and every restart) inherits the controller's environment.
  process.env.HVLAB_DISK_WRITE_JOURNAL = '1'
  await lab.must('up', '--detach', '--topology', o.topologyFile)
}

/** The Cluster Shared Volume the soak's last VM has its disk on (when it runs 3 VMs or more). */
export const SOAK_CSV = 'soak-csv'
/** The period of the soak's asynchronous (periodic) remote-copy group: an RPO of 2 periods. */
export const SOAK_RC_PERIOD_MS = 2_000

/** The disks of the soak's VM on SOAK_CSV: two, each with its own writer, write sequence and history (checked each on its own). */
export const SOAK_CSV_VM_DISKS = 2

export type SoakStorage = 'sync' | 'periodic' | 'csv'

/**
 * Each kind of storage the soak checks a promise of: with 3 VMs or more the last one's disks
 * are regions of SOAK_CSV (shared storage: no loss; two disks, SOAK_CSV_VM_DISKS) and the one before it is in a periodic
 * group (asynchronous: losses within its RPO); every other disk is synchronously replicated.
 */
export function soakStorage(vms: readonly string[], vm: string): SoakStorage {
  if (vms.length < 3) return 'sync'
  return vm === vms.at(-1) ? 'csv' : vm === vms.at(-2) ? 'periodic' : 'sync'
}

/** The `vm create` options for that storage; none (the lab's default storage) where the topology cannot give it. */
function storageOptions(kind: SoakStorage, topology: Topology): string[] {
  if (kind === 'csv' && topology.arrays.length > 0) return ['--storage', `csv:${SOAK_CSV}`, '--disks', String(SOAK_CSV_VM_DISKS)]
  if (kind === 'periodic' && defaultStorageKind(topology.arrays) === 'replicated') return ['--rc-period-ms', String(SOAK_RC_PERIOD_MS)]
  return []
}

/**
 * Creates and starts the VMs, spread over the hosts, each dirtying memory and writing its
 * disk; `started(vm)` runs between its start and its load (Replica's initial replication).
 */
async function createVms(lab: SoakLab, topology: Topology, vms: readonly string[], started: (vm: string) => Promise<void>): Promise<void> {
  const hosts = topology.hosts.map((h) => h.name)
  const csv_array = topology.arrays[0]?.name
  if (csv_array !== undefined && vms.some((vm) => soakStorage(vms, vm) === 'csv'))
    await lab.must('csv', 'create', SOAK_CSV, '--array', csv_array, '--size-gib', '1')
  for (const [i, vm] of vms.entries()) {
    const storage = storageOptions(soakStorage(vms, vm), topology)
    await lab.must('vm', 'create', vm, '--memory-mib', String(SOAK_VM_MEMORY_MIB), '--preferred', hosts[i % hosts.length]!, ...storage)
    // WSFC's default (nodes − 1 failovers in 6 h) leaves a VM failed after the few failovers a
    // soak causes in minutes; an administrator testing a cluster raises it, as here.
    await lab.must('vm', 'set', vm, '--failover-threshold', String(SOAK_FAILOVER_THRESHOLD), '--failover-period-h', '1')
    await lab.must('vm', 'start', vm)
    await started(vm)
    await lab.must('vm', 'load', vm, '--dirty-mib-s', String(SOAK_DIRTY_MIB_PER_S), '--disk-iops', String(SOAK_DISK_IOPS))
  }
}

/** The fault loop, the recovery, and the read-back of the disks; everything into the history. */
async function runFaults(lab: SoakLab, o: SoakOptions, vms: string[], history: HistoryWriter, replica: SoakReplica | null): Promise<void> {
  const pings = new PingWorkload({
    dir: lab.dir,
    vms,
    interval_ms: SOAK_PING_INTERVAL_MS,
    timeout_ms: PING_TIMEOUT_MS,
    record: (r) => history.write(r),
  })
  const progress = new SoakProgress(lab, o.minutes * 60_000, o.progress)
  const sampler = setInterval(() => void sample(lab, history), SAMPLE_EVERY_MS)
  await pings.start()
  progress.start()
  try {
    await waitAnswering(vms, pings, Date.now(), WARM_UP_MS) // a fault before the first reply would hide its RTO
    await sleep(BASELINE_MS)
    const schedule = new FaultSchedule(o.seed, o.faults, scheduleLabOf(o.topology, vms))
    const end_ms = Date.now() + o.minutes * 60_000
    for (let id = 1; Date.now() < end_ms; id++) {
      await runStep(lab, o.topology, schedule.next(), id, history, end_ms)
      progress.faultDone()
    }
    const faults_stopped_ms = await stopAllFaults(lab, o.topology)
    await waitRecovered(lab, vms, pings, faults_stopped_ms)
    await stopDiskWriters(lab, vms)
    if (replica) history.write(await waitReplicaCaughtUp(lab, replica))
    await pings.stop()
    const journals = collectDiskJournals(lab.dir, o.topology)
    history.writeAll(journals)
    history.writeAll(await finalBlocks(lab, vms, journals))
    if (replica) history.writeAll(replicaFinalBlocks(lab.dir, replica, blocksWritten(journals, replica.vm), DISK_BLOCK_SIZE_BYTES_DEFAULT))
    history.writeAll(readTimeline(lab.dir))
    history.write({ t: 'end', faults_stopped_ms, ended_ms: Date.now() })
  } finally {
    clearInterval(sampler)
    progress.stop()
    await pings.stop()
  }
}

/** One step: the fault, its hold, its heal; then the quiet while, with its action first. The run's end cuts the quiet short. */
async function runStep(lab: SoakLab, t: Topology, step: ScheduleStep, id: number, history: HistoryWriter, end_ms: number): Promise<void> {
  const target = faultTarget(step.fault)
  const processes = await injectFault(lab, step.fault)
  history.write({ t: 'fault', id, kind: step.fault.kind, target, phase: 'start', at_ms: Date.now(), processes })
  await sleep(step.hold_ms)
  await healFault(lab, step.fault)
  history.write({ t: 'fault', id, kind: step.fault.kind, target, phase: 'heal', at_ms: Date.now(), processes })
  const quiet_end = Math.min(end_ms, Date.now() + step.quiet_ms)
  if (step.action) history.write(await runOperatorAction(lab, step.action, t.hosts))
  await sleep(Math.max(0, quiet_end - Date.now()))
}

/** Heals everything: partitions and links, every process up and running, clocks true. When that was. */
async function stopAllFaults(lab: SoakLab, t: Topology): Promise<number> {
  await lab.must('heal')
  for (const p of (await lab.status()).processes) {
    if (p.state === 'paused') await lab.must('kill', p.name, '--signal', 'CONT')
    if (p.state === 'down') await lab.must('restart', p.name)
    if (p.clockSkew !== null) await lab.must('clock', 'set', p.name, '--offset-ms', '0', '--drift', '0')
  }
  for (const a of t.arrays) await lab.cli('array', 'disk', a.name)
  return Date.now()
}

/** Waits until every VM runs and has answered since the faults stopped, up to the recovery bound (the checker judges). */
async function waitRecovered(lab: SoakLab, vms: readonly string[], pings: PingWorkload, since_ms: number): Promise<void> {
  while (Date.now() < since_ms + RECOVERY_BOUND_MS) {
    if (answeredSince(vms, pings, since_ms) && (await allRunning(lab, vms))) return
    await sleep(500)
  }
}

const answeredSince = (vms: readonly string[], pings: PingWorkload, since_ms: number): boolean =>
  vms.every((vm) => (pings.lastReplyMs(vm) ?? 0) > since_ms)

/** Waits until every VM has answered since `since_ms`, up to `wait_ms`. */
async function waitAnswering(vms: readonly string[], pings: PingWorkload, since_ms: number, wait_ms: number): Promise<void> {
  const deadline = Date.now() + wait_ms
  while (!answeredSince(vms, pings, since_ms) && Date.now() < deadline) await sleep(100)
}

async function sample(lab: SoakLab, history: HistoryWriter): Promise<void> {
  const status = await lab.status().catch(() => null)
  if (!status) return
  const processes: SampledProcess[] = [
    { name: 'controller', role: 'controller', pid: status.lab.controllerPid },
    ...status.processes.flatMap((p) => (p.pid === null || p.state === 'down' ? [] : [{ name: p.name, role: p.role, pid: p.pid }])),
  ]
  history.writeAll(sampleAll(processes, Date.now()))
}
