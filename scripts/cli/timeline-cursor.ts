/**
 * A waiting command's view of the lab-wide timeline: where it ends now (taken before the
 * command is sent), then the events after that, a batch per poll. Commands decide on an
 * event's kind and its typed details, never on its text.
 */
import type { EventKind } from '../../shared/timeline/events.js'
import type { ControlClient } from './control-client.js'

/** An event as the controller sends it; details as their typed values (names, numbers). */
export interface SeenEvent {
  seq: number
  kind: EventKind
  source: string
  details: Readonly<Record<string, unknown>>
}

export class TimelineCursor {
  private constructor(
    private readonly client: ControlClient,
    private after: number,
  ) {}

  /** A cursor at the timeline's end now: next() returns only what happens from here on. */
  static async atEnd(client: ControlClient): Promise<TimelineCursor> {
    const newest: SeenEvent[] = []
    await client.stream('/v1/events?after=0&limit=1', (e) => newest.push(e as SeenEvent))
    return new TimelineCursor(client, newest.at(-1)?.seq ?? 0)
  }

  /** The events since the last call (or since the cursor was made), oldest first. */
  async next(): Promise<SeenEvent[]> {
    const events: SeenEvent[] = []
    await this.client.stream(`/v1/events?after=${this.after}`, (e) => events.push(e as SeenEvent))
    this.after = events.at(-1)?.seq ?? this.after
    return events
  }
}
