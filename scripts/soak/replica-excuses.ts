/**
 * What may hold a replicated VM's writes back from its replica longer than the RPO, from a
 * soak's history alone (PURE): something on the replication path from the host that
 * acknowledged the write to the replica server.
 *
 * - a fault that killed or stopped that host or the replica server (its `processes`), from
 *   its start to its heal;
 * - the network between them cut or shaped (`network.partitioned` or `network.link-set`
 *   with the host on one side and the server on the other: a partition, a WAN fault on the
 *   DR site's link), until the next `network.healed`;
 * - a resync of the VM (`replica.resync-needed` to `replica.resynced`): a host that took
 *   the VM over after a failover has no log for it and compares every block first, as the
 *   README says; the replica is Critical meanwhile;
 * - a move's handover (`vm.arrived` to the new host's `replica.primary-moved`, or its
 *   `replica.resync-needed`): the VM's new host logs from its arrival but ships only once its
 *   previous primary's last changes are applied and it has ended (agent/replica/primary-handover.ts).
 *
 * Each window is followed by one RPO: the backlog it left needs a cycle and its transfer.
 */
import type { History } from './history.js'

type Event = History['events'][number]

export interface Excuse {
  from_ms: number
  /** The window's end plus one RPO. */
  to_ms: number
  /** What it was, for the reader. */
  cause: string
}

const names = (v: unknown): string[] => (Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : [])

/** The windows that excuse a late write of `vm` acknowledged by `host`, replicated to `server`. */
export function excuses(
  h: Pick<History, 'faults' | 'events'>,
  vm: string,
  host: string,
  server: string,
  rpo_ms: number,
  end_ms: number,
): Excuse[] {
  return [
    ...faultWindows(h, host, server, end_ms),
    ...networkWindows(h.events, host, server, end_ms),
    ...resyncWindows(h.events, vm, end_ms),
    ...handoverWindows(h.events, vm, end_ms),
  ].map((x) => ({ ...x, to_ms: x.to_ms + rpo_ms }))
}

function faultWindows(h: Pick<History, 'faults'>, host: string, server: string, end_ms: number): Excuse[] {
  return h.faults
    .filter((f) => f.phase === 'start' && (f.processes.includes(host) || f.processes.includes(server)))
    .map((f) => ({
      from_ms: f.at_ms,
      to_ms: h.faults.find((x) => x.phase === 'heal' && x.id === f.id)?.at_ms ?? end_ms,
      cause: `fault ${f.id} ${f.kind} ${f.target}`,
    }))
}

function networkWindows(events: readonly Event[], host: string, server: string, end_ms: number): Excuse[] {
  const out: Excuse[] = []
  let open: { from_ms: number; cause: string } | null = null
  for (const e of [...events].sort((a, b) => a.at_ms - b.at_ms || a.seq - b.seq)) {
    if (e.kind === 'network.healed' && open !== null) {
      out.push({ ...open, to_ms: e.at_ms })
      open = null
    }
    if (e.kind !== 'network.partitioned' && e.kind !== 'network.link-set') continue
    const [a, b] = [names(e.details.a), names(e.details.b)]
    const between = (a.includes(host) && b.includes(server)) || (a.includes(server) && b.includes(host))
    if (between && open === null) open = { from_ms: e.at_ms, cause: `${e.kind} ${host} ↔ ${server}` }
  }
  if (open !== null) out.push({ ...open, to_ms: end_ms })
  return out
}

/**
 * From a resync's start to the next `replica.resynced` of the VM, by whichever host: a host
 * killed mid-resync never ends its own, and the host that takes the VM over resyncs anew.
 */
function resyncWindows(events: readonly Event[], vm: string, end_ms: number): Excuse[] {
  const out: Excuse[] = []
  let open: { from_ms: number; host: string } | null = null
  for (const e of [...events].sort((a, b) => a.at_ms - b.at_ms || a.seq - b.seq)) {
    if (e.details.vm !== vm) continue
    if (e.kind === 'replica.resync-needed' && open === null) open = { from_ms: e.at_ms, host: e.source }
    if (e.kind === 'replica.resynced' && open !== null) {
      out.push({ from_ms: open.from_ms, to_ms: e.at_ms, cause: `resync by ${open.host}` })
      open = null
    }
  }
  if (open !== null) out.push({ from_ms: open.from_ms, to_ms: end_ms, cause: `resync by ${open.host} (never done)` })
  return out
}

/** From the VM's arrival on a host by migration until replication goes on there (or its resync begins, a window of its own). */
function handoverWindows(events: readonly Event[], vm: string, end_ms: number): Excuse[] {
  const out: Excuse[] = []
  let open = null as { from_ms: number; host: string } | null
  for (const e of [...events].sort((a, b) => a.at_ms - b.at_ms || a.seq - b.seq)) {
    if (e.details.vm !== vm) continue
    // moved on again before replication went on: one window
    if (e.kind === 'vm.arrived') open = { from_ms: open === null ? e.at_ms : open.from_ms, host: e.source }
    const begun = e.kind === 'replica.primary-moved' || e.kind === 'replica.resync-needed'
    if (begun && open !== null && e.source === open.host) {
      out.push({ from_ms: open.from_ms, to_ms: e.at_ms, cause: `move to ${open.host}` })
      open = null
    }
  }
  if (open !== null) out.push({ from_ms: open.from_ms, to_ms: end_ms, cause: `move to ${open.host} (replication never went on there)` })
  return out
}

/** The first excuse whose window overlaps [from_ms, to_ms]; undefined: none. */
export function excuseFor(xs: readonly Excuse[], from_ms: number, to_ms: number): Excuse | undefined {
  return xs.find((x) => x.from_ms <= to_ms && x.to_ms >= from_ms)
}
