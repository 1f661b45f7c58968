/**
 * The Replica Broker's part in a move (seed 002: "Replica settings for VMs will travel with
 * them, and the broker ensures smooth replication from that point on"), PURE: whether a
 * primary that begins goes on from the one before it without a resync.
 *
 * A primary whose VM left it (a live or quick migration) closes its log, sends its last
 * changes and then says so (replica-primary-end): the replica server keeps that clean end —
 * who, its last cycle, and the VM's moves then. The VM's next host begins saying which move
 * brought the VM there (replica-begin `arrived`); it goes on at the next cycle, with the log
 * it kept since the VM resumed there, only if
 *   - the clean end is of the move just before its own, so no host ran the VM in between
 *     without the replica hearing of it, and
 *   - the replica applied exactly that cycle and stands still (replicating, no resync).
 * Otherwise it takes the replica over and resyncs, as after a crash. While the previous
 * primary has not ended, a beginner that may still wait is told to (`wait`): nothing
 * changes, so the previous primary's last changes and end are still taken. Once it may not
 * wait any longer it takes over, and a late end of the previous primary is refused.
 */
import type { PrimaryHandover } from '../../shared/protocol/replica-messages.js'

/** A primary that ended cleanly: every change it made is applied, up to `cycle`; the VM had moved `moves` times then. */
export interface CleanEnd {
  readonly from: string
  readonly cycle: number
  readonly moves: number
}

/** Where a replica stands, as the handover judges it. */
export interface ReplicaStanding {
  /** The primary replicating the VM now. */
  readonly from: string
  readonly applied_cycle: number
  /** Replicating, with no resync under way (not failed over, not being resynchronised). */
  readonly steady: boolean
  /** The last clean end heard (null: none, or something happened to the replica since). */
  readonly ended: CleanEnd | null
}

/** A primary beginning: `arrived` when the VM came to it by migration, its `moves`-th, and whether it may still wait. */
export interface BeginAsk {
  readonly from: string
  readonly arrived?: { readonly moves: number; readonly wait: boolean }
}

export function judgeBegin(r: ReplicaStanding, ask: BeginAsk): PrimaryHandover {
  if (ask.arrived === undefined) return 'take-over'
  const e = r.ended
  if (e !== null && r.steady && e.moves + 1 === ask.arrived.moves && e.cycle === r.applied_cycle) return 'continue'
  const current_ended = e !== null && e.from === r.from // (an end kept from before is the previous handover's)
  if (ask.arrived.wait && !current_ended && r.steady && r.from !== ask.from) return 'wait'
  return 'take-over'
}

/** The end a primary reports, judged: the clean end to keep, or why it is not one (the replica does not stand where it says). */
export function judgeEnd(r: ReplicaStanding, end: CleanEnd): { readonly ended: CleanEnd } | { readonly refused: string } {
  if (r.from !== end.from) return { refused: `it is replicated from ${r.from} now, not from ${end.from}` }
  if (!r.steady) return { refused: 'it is being resynchronised or has failed over' }
  if (r.applied_cycle !== end.cycle) return { refused: `it applied cycle ${r.applied_cycle}, not ${end.cycle}` }
  return { ended: end }
}
