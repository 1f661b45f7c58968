/**
 * The lab-wide timeline: every event that matters (process started/exited, peer
 * connected/lost, and later quorum, migration and replication events) with its time,
 * source and details. Appended to `events.jsonl` in the data dir; the newest
 * `memory_max` are kept in memory for `hvlab events`, and followers get each new one.
 */
import { appendFileSync } from 'node:fs'
import { lastLines } from './log-tail.js'

export interface TimelineEvent {
  seq: number
  /** Wall-clock time, ms since the epoch. */
  at_ms: number
  kind: string
  source: string
  details: Record<string, unknown>
}

export class Timeline {
  private readonly events: TimelineEvent[] = []
  private readonly followers = new Set<(e: TimelineEvent) => void>()
  private nextSeq = 1

  constructor(
    private readonly file: string | undefined,
    private readonly memory_max = 10_000,
  ) {
    // A lab restarted in the same data dir continues the numbering of its events file.
    if (file) this.nextSeq = lastSeqIn(file) + 1
  }

  append(e: Omit<TimelineEvent, 'seq'>): TimelineEvent {
    const event: TimelineEvent = { seq: this.nextSeq++, ...e }
    this.events.push(event)
    if (this.events.length > this.memory_max) this.events.splice(0, this.events.length - this.memory_max)
    if (this.file) appendFileSync(this.file, JSON.stringify(event) + '\n')
    for (const f of this.followers) f(event)
    return event
  }

  /** Events with seq > `after`, oldest first, at most `limit` (the newest ones). */
  since(after = 0, limit = this.memory_max): TimelineEvent[] {
    const list = this.events.filter((e) => e.seq > after)
    return list.slice(Math.max(0, list.length - limit))
  }

  follow(f: (e: TimelineEvent) => void): () => void {
    this.followers.add(f)
    return () => this.followers.delete(f)
  }
}

function lastSeqIn(file: string): number {
  const [line] = lastLines(file, 1)
  if (!line) return 0
  try {
    const seq = (JSON.parse(line) as { seq?: unknown }).seq
    return typeof seq === 'number' && Number.isSafeInteger(seq) && seq > 0 ? seq : 0
  } catch {
    return 0
  }
}
