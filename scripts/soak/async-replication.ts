/**
 * What asynchronous (periodic) remote copy promises the soak's write checker, from the
 * history's events alone (PURE). A periodic group sends its changes every period; a
 * failover makes the secondary's copy writable as it was at its last completed cycle (its
 * `rc.synced` `consistent_at_ms`), so the writes acknowledged after that point may be
 * lost. The promise is an RPO: while replication runs, the secondary's consistent point is
 * never older than RPO_PERIODS periods (a write waits at most one period for the next
 * cycle, and that cycle has another period to finish). So a lost write of a periodic VM is
 *   - allowed when it was acknowledged after the consistent point the failover used and
 *     within the RPO of it;
 *   - an RPO breach when it was acknowledged after that point but later than the RPO
 *     (replication fell further behind than promised; a link outage before it is the
 *     out-of-sync case disk-history.ts forgives on its own);
 *   - a plain loss when it was acknowledged before that point: the cycle had it.
 */
import type { History } from './history.js'

type Event = History['events'][number]

/** A write waits up to one period for its cycle, which has another period to complete. */
export const RPO_PERIODS = 2

export interface PeriodicVm {
  readonly group: string
  /** The period as the array runs it (the lab's timeScale applied), ms. */
  readonly period_ms: number
  readonly rpo_ms: number
}

/** A failover of a group: the array whose copy became writable, when, and the consistent point its copy had. */
export interface GroupFailover {
  readonly array: string
  readonly at_ms: number
  /** The array's last completed cycle before the failover; null: it never completed one. */
  readonly consistent_at_ms: number | null
}

export type AsyncLoss = 'allowed' | 'beyond-rpo' | 'forbidden'

/** The VMs whose disks are in periodic groups (from `clx.disk-provisioned`), by name. */
export function periodicVms(events: readonly Event[]): Map<string, PeriodicVm> {
  const out = new Map<string, PeriodicVm>()
  for (const e of events) {
    if (e.kind !== 'clx.disk-provisioned') continue
    const { vm, group, mode, period_ms } = e.details
    if (typeof vm !== 'string' || typeof group !== 'string') continue
    if (mode === 'periodic' && typeof period_ms === 'number' && period_ms > 0)
      out.set(vm, { group, period_ms, rpo_ms: RPO_PERIODS * period_ms })
    else out.delete(vm)
  }
  return out
}

/** Every `rc.failover` of each group, in time order, with the consistent point its array's copy had then. */
export function groupFailovers(events: readonly Event[]): Map<string, GroupFailover[]> {
  const consistent = new Map<string, number>() // array/group → the last consistent_at_ms it reported
  const out = new Map<string, GroupFailover[]>()
  for (const e of [...events].sort((a, b) => a.at_ms - b.at_ms)) {
    const { group, consistent_at_ms } = e.details
    if (typeof group !== 'string') continue
    const key = `${e.source}\u0000${group}`
    if (e.kind === 'rc.synced' && typeof consistent_at_ms === 'number') consistent.set(key, consistent_at_ms)
    if (e.kind === 'rc.failover')
      out.set(group, [...(out.get(group) ?? []), { array: e.source, at_ms: e.at_ms, consistent_at_ms: consistent.get(key) ?? null }])
  }
  return out
}

/**
 * How the loss of a write `vm` had acknowledged by `array` at `acked_ms` stands against the
 * promise: judged by the first failover after it to another array of the VM's group.
 * 'forbidden' also when no such failover happened (nothing could have lost it).
 */
export function asyncLoss(
  w: { readonly array: string; readonly acked_ms: number },
  vm: PeriodicVm,
  failovers: ReadonlyMap<string, readonly GroupFailover[]>,
): AsyncLoss {
  const f = (failovers.get(vm.group) ?? []).find((x) => x.array !== w.array && x.at_ms >= w.acked_ms)
  if (f === undefined) return 'forbidden'
  const since = f.consistent_at_ms ?? -Infinity
  if (w.acked_ms <= since) return 'forbidden'
  return w.acked_ms - since <= vm.rpo_ms ? 'allowed' : 'beyond-rpo'
}
