/**
 * When each acknowledged guest write of a replicated VM reached its replica (Hyper-V
 * Replica, seed 002), from a soak's history alone (PURE). A write goes into its host's
 * replica log when it completes (agent/replica/replication-host.ts; the host's disk write
 * journal records it first, in the same call), and reaches the replica by one of:
 *
 * - a cycle: the primary host closes its log (`replica.cycle-sent`, not `again`: the
 *   close and the send are one step) and, once the replica server made it durable, hears
 *   `applied` (`replica.cycle-applied` of that host and cycle). Cycle N of host H carries a
 *   write H acknowledged before N closed, unless H dropped its log in between (a
 *   `replica.resync-needed` of H: the log starts again);
 * - a resync: a host compares every block with the replica and sends those that differ
 *   (`replica.resync-needed` … `replica.resynced` of that host), so it carries every write
 *   acknowledged before it began, on whichever host.
 *
 * A write reached the replica at the earliest delivery that carries it (when its primary
 * heard so: a little after the replica had it). Every time is the machine's wall clock.
 */
import type { History } from './history.js'

type Event = History['events'][number]

export interface Delivery {
  kind: 'cycle' | 'resync'
  /** The host that sent it. */
  host: string
  /** A cycle's number; 0 for a resync. */
  cycle: number
  /** A cycle: when its log closed; a resync: when it began. It carries writes acknowledged before. */
  carries_before_ms: number
  /** When the primary heard it applied (a cycle) or done (a resync). */
  reached_ms: number
}

/** A write as the deliveries see it: who acknowledged it, and when. */
export interface AckedWrite {
  host: string
  acked_ms: number
}

const ofVm = (events: readonly Event[], vm: string): Event[] =>
  events.filter((e) => e.kind.startsWith('replica.') && e.details.vm === vm).sort((a, b) => a.at_ms - b.at_ms || a.seq - b.seq)

/** Every completed delivery of `vm`'s writes, in the order they reached the replica. */
export function deliveries(events: readonly Event[], vm: string): Delivery[] {
  const closed = new Map<string, number>() // host/cycle → when its log closed
  const resyncing = new Map<string, number>() // host → when its resync began
  const out: Delivery[] = []
  for (const e of ofVm(events, vm)) {
    const cycle = typeof e.details.cycle === 'number' ? e.details.cycle : -1
    const key = `${e.source}\u0000${cycle}`
    if (e.kind === 'replica.cycle-sent' && e.details.again !== true) closed.set(key, e.at_ms)
    if (e.kind === 'replica.cycle-applied' && closed.has(key))
      out.push({ kind: 'cycle', host: e.source, cycle, carries_before_ms: closed.get(key)!, reached_ms: e.at_ms })
    if (e.kind === 'replica.resync-needed') resyncing.set(e.source, e.at_ms)
    if (e.kind === 'replica.resynced' && resyncing.has(e.source)) {
      out.push({ kind: 'resync', host: e.source, cycle: 0, carries_before_ms: resyncing.get(e.source)!, reached_ms: e.at_ms })
      resyncing.delete(e.source)
    }
  }
  return out
}

/** Each host's log drops (`replica.resync-needed`) for `vm`, by host. */
export function logDrops(events: readonly Event[], vm: string): Map<string, number[]> {
  const out = new Map<string, number[]>()
  for (const e of ofVm(events, vm)) if (e.kind === 'replica.resync-needed') out.set(e.source, [...(out.get(e.source) ?? []), e.at_ms])
  return out
}

/** Whether delivery `d` carries write `w` (host H's log drops given by `drops`). */
export function carries(d: Delivery, w: AckedWrite, drops: ReadonlyMap<string, readonly number[]>): boolean {
  // A resync reads the blocks after it began: it has a write acknowledged as it began. A
  // write acknowledged in the millisecond a log closed may be in it or in the next: the next.
  if (d.kind === 'resync') return w.acked_ms <= d.carries_before_ms
  if (w.acked_ms >= d.carries_before_ms || d.host !== w.host) return false
  return !(drops.get(d.host) ?? []).some((at) => at >= w.acked_ms && at <= d.carries_before_ms)
}

/** The first delivery (in `ds`, ordered by reached_ms) that carries `w`; undefined: none did. */
export function reachedBy(ds: readonly Delivery[], w: AckedWrite, drops: ReadonlyMap<string, readonly number[]>): Delivery | undefined {
  return ds.find((d) => carries(d, w, drops))
}
