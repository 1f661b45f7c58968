/**
 * The guest disk writes of a soak's history, checked: every write the hosts' journals
 * recorded (issued, then acknowledged, refused or failed; a host killed in between leaves
 * it in doubt) against what each block holds at the end (its sha256), with the write
 * checker (write-history.ts): a block must hold its last acknowledged write or one issued
 * after it. A write is told apart by its record's digest: the block a disk writer writes is
 * a pure function of (vm, seq, epoch, block, value) (agent/vm/disk-write-record.ts).
 *
 * A synchronous remote-copy group promises no loss only for what both copies had: a write
 * an array acknowledged while its group's link was down or stopped (until the group was
 * Synced again) was on one copy only, and a failover to the other may lose it, as 3PAR's
 * no_fail_wrt_on_err allows. Those are `unprotected`: their loss is reported, not a breach.
 * A periodic group promises an RPO instead (async-replication.ts): a loss since the
 * failover's consistent point and within the RPO is reported; one later than the RPO is an
 * RPO breach.
 *
 * And the arrays' fencing, from the same journals: once an array has acknowledged a VM's
 * write carrying epoch E, it must refuse that VM's writes with an older epoch issued after
 * that acknowledgement (a stale owner's).
 */
import { createHash } from 'node:crypto'
import { encodeDiskWrite } from '../../agent/vm/disk-write-record.js'
import type { History, RecordOf } from './history.js'
import { asyncLoss, groupFailovers, periodicVms, type AsyncLoss } from './async-replication.js'
import { writeProblems, type WriteProblem, type WriteRecord } from './write-history.js'

type Issued = RecordOf<'disk-issued'>
type Done = RecordOf<'disk-done'>

export interface DiskWrite extends Issued {
  outcome: Done['outcome'] | 'unknown'
  done_ms: number | null
}

export interface VmWriteProblem {
  vm: string
  /** The VM's disk the block is on (0: its first). */
  disk: number
  problem: WriteProblem
  /** The lost write was on asynchronous replication, acknowledged after the failover's consistent point but later than the RPO. */
  beyond_rpo?: boolean
  /** When the lost write (lost, lost-allowed) was acknowledged; null for an invented block. */
  lost_acked_ms: number | null
}

export interface StaleWrite {
  vm: string
  array: string
  /** The older-epoch write the array took. */
  stale: DiskWrite
  /** The newer-epoch write it had acknowledged before that one was issued. */
  newer: DiskWrite
}

const writeKey = (w: { vm: string; disk?: number; host: string; epoch: number; seq: number; block: number }): string =>
  `${w.vm}\u0000${w.disk ?? 0}\u0000${w.host}\u0000${w.epoch}\u0000${w.seq}\u0000${w.block}`

/** One disk of one VM (disk 0 unless a data disk's: `vm create --disks N`), each with its own writes and blocks. */
const diskOf = (x: { vm: string; disk?: number }): string => `${x.vm}\u0000${x.disk ?? 0}`

/**
 * Each issued write with how it ended, in the order issued. A key can repeat (a VM restarted
 * on the same host in the same epoch starts its seqs again): each completion goes to the
 * earliest issue of its key not yet completed.
 */
export function diskWrites(h: Pick<History, 'disk_issued' | 'disk_done'>): DiskWrite[] {
  const writes: DiskWrite[] = h.disk_issued.map((w) => ({ ...w, outcome: 'unknown', done_ms: null }))
  const open = new Map<string, DiskWrite[]>()
  for (const w of writes) open.set(writeKey(w), [...(open.get(writeKey(w)) ?? []), w])
  for (const d of h.disk_done) {
    const w = open.get(writeKey(d))?.shift()
    if (w) Object.assign(w, { outcome: d.outcome, done_ms: d.at_ms })
  }
  return writes.sort((a, b) => a.at_ms - b.at_ms)
}

const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex')

/** The digest of a block never written (zeros). */
export const zeroDigest = (block_size_bytes: number): string => sha256(Buffer.alloc(block_size_bytes))

/** The digest of the block a write puts on the disk. */
export function writeDigest(w: Pick<Issued, 'vm' | 'seq' | 'epoch' | 'block' | 'value'>, block_size_bytes: number): string {
  return sha256(encodeDiskWrite({ vm: w.vm, seq: w.seq, epoch: w.epoch, block: w.block, value: w.value }, block_size_bytes))
}

/** The write checker's problems of each VM disk whose final blocks the history holds (each disk of a VM on its own: its own seqs and blocks). */
export function diskProblems(writes: readonly DiskWrite[], h: Pick<History, 'disk_final' | 'meta' | 'events'>): VmWriteProblem[] {
  const unprotected = outOfSyncWindows(h.events)
  const periodic = periodicVms(h.events)
  const failovers = groupFailovers(h.events)
  const bs = h.meta.block_size_bytes
  const zero = zeroDigest(bs)
  const out: VmWriteProblem[] = []
  const disks = new Map(h.disk_final.map((f) => [diskOf(f), { vm: f.vm, disk: f.disk ?? 0 }]))
  for (const [key, { vm, disk }] of disks) {
    const async = periodic.get(vm)
    const asyncLossOf = (w: DiskWrite): AsyncLoss =>
      async === undefined || w.outcome !== 'acked' || w.done_ms === null
        ? 'forbidden'
        : asyncLoss({ array: w.array, acked_ms: w.done_ms }, async, failovers)
    const final = new Map(h.disk_final.filter((f) => diskOf(f) === key).map((f) => [f.block, f.sha256]))
    const mine = writes.filter((w) => diskOf(w) === key && final.has(w.block)).map((w) => ({ w, digest: writeDigest(w, bs) }))
    const byDigest = new Map(mine.map(({ w, digest }) => [digest, w]))
    const records: WriteRecord[] = mine.map(({ w, digest }) => ({
      block: w.block,
      value: digest,
      acked: w.outcome === 'acked',
      loss_allowed: (w.done_ms !== null && unprotected(w.vm, w.array, w.done_ms)) || asyncLossOf(w) === 'allowed',
    }))
    for (const problem of writeProblems(records, final, zero)) {
      const lost = problem.kind === 'invented' ? undefined : byDigest.get(problem.lost)
      const beyond = problem.kind === 'lost' && lost !== undefined && asyncLossOf(lost) === 'beyond-rpo'
      out.push({ vm, disk, problem, ...(beyond ? { beyond_rpo: true } : {}), lost_acked_ms: lost?.done_ms ?? null })
    }
  }
  return out
}

/** Writes an array took from a stale owner: an older epoch issued after it acknowledged a newer one. */
export function staleWrites(writes: readonly DiskWrite[]): StaleWrite[] {
  const newest = new Map<string, DiskWrite>() // vm/array → the newest-epoch acked write, by ack time
  const acked = writes.filter((w) => w.outcome === 'acked' && w.done_ms !== null)
  const events = [
    ...acked.map((w) => ({ at_ms: w.done_ms!, w, kind: 'ack' as const })),
    ...acked.map((w) => ({ at_ms: w.at_ms, w, kind: 'issue' as const })),
  ].sort((a, b) => a.at_ms - b.at_ms || (a.kind === 'issue' ? -1 : 1)) // a tie is no proof: issue first
  const out: StaleWrite[] = []
  for (const { w, kind } of events) {
    const key = `${w.vm}\u0000${w.array}`
    const n = newest.get(key)
    if (kind === 'issue') {
      if (n && n.epoch > w.epoch) out.push({ vm: w.vm, array: w.array, stale: w, newer: n })
    } else if (!n || w.epoch > n.epoch) newest.set(key, w)
  }
  return out
}

type Event = History['events'][number]

/**
 * Whether `array` acknowledged a write of `vm` while the VM's group there was out of sync:
 * from the array's `rc.link-down`, `rc.link-failed` or `rc.stopped` for the group to its
 * next `rc.synced`. The VM's group is learned from events that name both (clx.*).
 */
export function outOfSyncWindows(events: readonly Event[]): (vm: string, array: string, at_ms: number) => boolean {
  const groupOf = new Map<string, string>()
  const windows = new Map<string, { from_ms: number; to_ms: number }[]>() // array/group → windows
  const open = new Map<string, number>()
  for (const e of [...events].sort((a, b) => a.at_ms - b.at_ms)) {
    const { vm, group } = e.details
    if (typeof group !== 'string') continue
    if (typeof vm === 'string') groupOf.set(vm, group)
    const key = `${e.source}\u0000${group}`
    if ((e.kind === 'rc.link-down' || e.kind === 'rc.link-failed' || e.kind === 'rc.stopped') && !open.has(key)) open.set(key, e.at_ms)
    if (e.kind === 'rc.synced' && open.has(key)) {
      windows.set(key, [...(windows.get(key) ?? []), { from_ms: open.get(key)!, to_ms: e.at_ms }])
      open.delete(key)
    }
  }
  for (const [key, from_ms] of open) windows.set(key, [...(windows.get(key) ?? []), { from_ms, to_ms: Infinity }])
  return (vm, array, at_ms) => {
    const group = groupOf.get(vm)
    if (group === undefined) return false
    return (windows.get(`${array}\u0000${group}`) ?? []).some((w) => at_ms >= w.from_ms && at_ms <= w.to_ms)
  }
}
