/**
 * The soak checker's Hyper-V Replica rule (seed 002), from the history alone (PURE). For
 * each VM the soak replicated (a `replica` record):
 *
 * - **RPO.** Every write acknowledged since the initial replication reaches the replica
 *   (replica-deliveries.ts) within REPLICA_RPO_CYCLES cycles of its acknowledgement: it
 *   waits at most one cycle for its log to close, and the shipment must be applied before
 *   the next cycle comes, or that cycle is missed and the health goes to Warning (the
 *   seed's alert "after 5 minutes, if the replay hasn't happened"). A later one is allowed
 *   when something on its path held it back (replica-excuses.ts), and reported with its
 *   measured lag; otherwise it is a `replica-rpo-breached`.
 * - **Caught up.** Once the writers stopped, replication catches up (nothing pending,
 *   nothing in flight) within the soak's wait; a run where it never did is a
 *   `replica-rpo-breached`.
 * - **Nothing lost, nothing invented.** Then every block of the replica holds what the
 *   primary's disk holds (whose own writes the write checker judges), or else what the
 *   write checker allows a disk: its last acknowledged write or a later one in doubt. A
 *   block holding an older write or zeros (or missing from the read-back) is a
 *   `replica-write-lost`, one holding data no write put there a `replica-write-invented`.
 */
import { diskWrites, writeDigest, zeroDigest, type DiskWrite } from './disk-history.js'
import type { History, RecordOf } from './history.js'
import { deliveries, logDrops, reachedBy, type Delivery } from './replica-deliveries.js'
import { excuseFor, excuses, type Excuse } from './replica-excuses.js'
import { writeProblems, type WriteRecord } from './write-history.js'
import type { LateWrites, ReplicationOutcome, Violation } from './report-types.js'
import { durationStats, largest } from './stats.js'

/** A write waits up to one cycle for its log to close; its shipment has until the next cycle to be applied. */
export const REPLICA_RPO_CYCLES = 2

type Found = Omit<Violation, 'events_around'>

interface Lag {
  acked_ms: number
  host: string
  delivery: Delivery | undefined
  lag_ms: number
}

export function checkReplication(
  h: History,
  writes: readonly DiskWrite[] = diskWrites(h),
): { outcomes: ReplicationOutcome[]; violations: Found[] } {
  const end_ms =
    h.end?.ended_ms ??
    largest(
      h.events.map((e) => e.at_ms),
      h.meta.started_ms,
    )
  const outcomes: ReplicationOutcome[] = []
  const violations: Found[] = []
  for (const r of h.replicas) {
    const rpo_ms = REPLICA_RPO_CYCLES * r.frequency_ms
    const ds = deliveries(h.events, r.vm)
    const lags = writeLags(h, r, writes, ds, end_ms)
    const late = lateWrites(h, r, lags, rpo_ms, end_ms)
    const caught_up_ms = h.replica_end.find((x) => x.vm === r.vm && x.server === r.server)?.caught_up_ms ?? null
    const final = compareFinal(h, r, writes)
    outcomes.push({
      vm: r.vm,
      server: r.server,
      frequency_ms: r.frequency_ms,
      rpo_ms,
      cycles_applied: ds.filter((d) => d.kind === 'cycle').length,
      resyncs: ds.filter((d) => d.kind === 'resync').length,
      writes_judged: lags.length,
      lag: durationStats(lags.map((l) => l.lag_ms)),
      late,
      caught_up_ms,
      blocks_compared: final.compared,
      blocks_differing: final.lost.length + final.invented.length,
      blocks_in_doubt: final.in_doubt.length,
    })
    violations.push(...rpoViolations(r, late, rpo_ms), ...finalViolations(r, final, caught_up_ms, end_ms))
  }
  return { outcomes, violations }
}

/** Each acknowledged write since the initial replication: when it reached the replica, and how long after. */
function writeLags(h: History, r: RecordOf<'replica'>, writes: readonly DiskWrite[], ds: readonly Delivery[], end_ms: number): Lag[] {
  const drops = logDrops(h.events, r.vm)
  return writes.flatMap((w) => {
    if (w.vm !== r.vm || w.outcome !== 'acked' || w.done_ms === null || w.done_ms < r.enabled_ms) return []
    const delivery = reachedBy(ds, { host: w.host, acked_ms: w.done_ms }, drops)
    return [{ acked_ms: w.done_ms, host: w.host, delivery, lag_ms: (delivery?.reached_ms ?? end_ms) - w.done_ms }]
  })
}

/** The writes later than the RPO, grouped by the delivery that carried them and what excuses them. */
function lateWrites(h: History, r: RecordOf<'replica'>, lags: readonly Lag[], rpo_ms: number, end_ms: number): LateWrites[] {
  const excusesOf = new Map<string, Excuse[]>()
  const groups = new Map<string, LateWrites>()
  for (const l of lags) {
    if (l.lag_ms <= rpo_ms) continue
    if (!excusesOf.has(l.host)) excusesOf.set(l.host, excuses(h, r.vm, l.host, r.server, rpo_ms, end_ms))
    const reached_ms = l.delivery?.reached_ms ?? null
    const cause = excuseFor(excusesOf.get(l.host)!, l.acked_ms, reached_ms ?? end_ms)?.cause ?? null
    const key = `${reached_ms}\u0000${cause}`
    const g = groups.get(key)
    if (g === undefined) groups.set(key, { from_ms: l.acked_ms, to_ms: l.acked_ms, writes: 1, lag_max_ms: l.lag_ms, reached_ms, cause })
    else Object.assign(g, { to_ms: l.acked_ms, writes: g.writes + 1, lag_max_ms: Math.max(g.lag_max_ms, l.lag_ms) })
  }
  return [...groups.values()].sort((a, b) => a.from_ms - b.from_ms)
}

function rpoViolations(r: RecordOf<'replica'>, late: readonly LateWrites[], rpo_ms: number): Found[] {
  return late
    .filter((g) => g.cause === null)
    .map((g) => ({
      kind: 'replica-rpo-breached' as const,
      summary:
        `vm ${r.vm}: ${g.writes} acknowledged write(s) reached its replica on ${r.server} up to ${Math.round(g.lag_max_ms)} ms ` +
        `after their acknowledgement (${g.reached_ms === null ? 'never' : 'late'}), beyond the RPO of ${rpo_ms} ms, with no fault on the replication path`,
      at_ms: g.from_ms,
      vm: r.vm,
      process: r.server,
    }))
}

interface FinalComparison {
  compared: number
  /** Blocks lacking the primary's last acknowledged write (an older write, zeros, or missing from the read-back). */
  lost: number[]
  /** Blocks holding data no write put there. */
  invented: number[]
  /** Blocks that differ from the primary's only by a write in doubt (failed, it may or may not be on a disk). */
  in_doubt: number[]
}

/**
 * The replica's blocks at the end against the primary disk's. A block that differs is
 * judged as the write checker judges a disk (write-history.ts): it must hold its last
 * acknowledged write or one issued after it that was never acknowledged. A write that
 * failed on the primary's array goes to the replica log all the same (it may be on the
 * disk: agent/replica/replication-host.ts), so the replica can hold a write the primary's
 * disk does not: in doubt, reported, no violation.
 */
function compareFinal(h: History, r: RecordOf<'replica'>, writes: readonly DiskWrite[]): FinalComparison {
  const bs = h.meta.block_size_bytes
  const replica = new Map(h.replica_final.filter((f) => f.vm === r.vm && f.server === r.server).map((f) => [f.block, f.sha256]))
  const differing = new Map<number, string>()
  const out: FinalComparison = { compared: 0, lost: [], invented: [], in_doubt: [] }
  for (const f of h.disk_final) {
    if (f.vm !== r.vm) continue
    out.compared++
    const holds = replica.get(f.block)
    if (holds === undefined) out.lost.push(f.block)
    else if (holds !== f.sha256) differing.set(f.block, holds)
  }
  const records: WriteRecord[] = writes
    .filter((w) => w.vm === r.vm && differing.has(w.block))
    .map((w) => ({ block: w.block, value: writeDigest(w, bs), acked: w.outcome === 'acked' }))
  const problems = new Map(writeProblems(records, differing, zeroDigest(bs)).map((p) => [p.block, p]))
  for (const block of differing.keys()) {
    const p = problems.get(block)
    if (p === undefined) out.in_doubt.push(block)
    else if (p.kind === 'invented') out.invented.push(block)
    else out.lost.push(block)
  }
  out.lost.sort((a, b) => a - b)
  return out
}

function finalViolations(r: RecordOf<'replica'>, final: FinalComparison, caught_up_ms: number | null, end_ms: number): Found[] {
  const at_ms = caught_up_ms ?? end_ms
  const found = (kind: Found['kind'], summary: string): Found => ({ kind, summary, at_ms, vm: r.vm, process: r.server })
  const blocks = (b: number[]): string => `${b.length} block(s) (first: block ${b[0]})`
  return [
    ...(caught_up_ms === null
      ? [
          found(
            'replica-rpo-breached',
            `vm ${r.vm}: replication to ${r.server} did not catch up once the writers stopped and the faults were healed`,
          ),
        ]
      : []),
    ...(final.lost.length > 0
      ? [found('replica-write-lost', `vm ${r.vm}: ${blocks(final.lost)} of its replica on ${r.server} lack what the primary's disk holds`)]
      : []),
    ...(final.invented.length > 0
      ? [
          found(
            'replica-write-invented',
            `vm ${r.vm}: ${blocks(final.invented)} of its replica on ${r.server} hold data no write put there`,
          ),
        ]
      : []),
  ]
}
