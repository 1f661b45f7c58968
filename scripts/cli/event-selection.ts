/**
 * Which events of the timeline `hvlab events` prints: its filters (--after, --kind, --vm,
 * --source, --since) and --tail, applied the same way to the events a running lab's
 * controller streams and to those read from the events files of a stopped lab. Every
 * filter reads the event's typed fields: seq, at_ms, kind, source and the VMs its details name.
 */
import type { TimelineEvent } from '../../shared/timeline/events.js'
import { vmsNamedBy } from '../../shared/timeline/event-vms.js'

export interface EventSelection {
  /** Only events with seq > after. */
  after: number
  /** Exact kinds (`cluster.node-down`) or families with their dot (`cluster.`); empty: every kind. */
  kinds: readonly string[]
  /** Only events whose details name this VM. */
  vm?: string
  /** Only events this process emitted (`lab` for the controller's own). */
  source?: string
  /** Only events at or after this wall-clock time (ms since the epoch). */
  since_ms?: number
}

/** Whether `kind` is one of `kinds`: equal to an exact kind, or in a family (`cluster.`). */
export function kindSelected(kinds: readonly string[], kind: string): boolean {
  return kinds.length === 0 || kinds.some((k) => (k.endsWith('.') ? kind.startsWith(k) : kind === k))
}

export function eventSelected(s: EventSelection, e: TimelineEvent): boolean {
  return (
    e.seq > s.after &&
    kindSelected(s.kinds, e.kind) &&
    (s.source === undefined || e.source === s.source) &&
    (s.since_ms === undefined || e.at_ms >= s.since_ms) &&
    (s.vm === undefined || vmsNamedBy(e).includes(s.vm))
  )
}

/**
 * Takes the timeline oldest first and passes on the selected events: at once, or with a
 * tail only the last `tail` of them, when the backlog ends (`endOfBacklog`). It remembers
 * the last seq it saw, selected or not, where a follower carries on from.
 */
export class EventSieve {
  private readonly held: TimelineEvent[] = []
  private lastSeq: number

  constructor(
    private readonly selection: EventSelection,
    private tail: number | undefined,
    private readonly emit: (e: TimelineEvent) => void,
  ) {
    this.lastSeq = selection.after
  }

  /** The seq of the newest event taken (or --after): where to follow from. */
  get lastSeenSeq(): number {
    return this.lastSeq
  }

  take(e: TimelineEvent): void {
    if (e.seq <= this.lastSeq) return // once only, whatever a source sends again
    this.lastSeq = e.seq
    if (!eventSelected(this.selection, e)) return
    if (this.tail === undefined) return this.emit(e)
    this.held.push(e)
    // Trimmed in batches: one shift per event would cost the whole tail each time.
    if (this.held.length >= 2 * this.tail) this.held.splice(0, this.held.length - this.tail)
  }

  /** The backlog is over: with a tail, the held events go out; later ones pass at once. */
  endOfBacklog(): void {
    const tail = this.tail ?? 0
    for (const e of this.held.splice(0).slice(-tail)) this.emit(e)
    this.tail = undefined
  }
}
