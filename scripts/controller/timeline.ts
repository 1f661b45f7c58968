/**
 * The lab-wide timeline: every event that matters (process started/exited, peer
 * connected/lost, quorum, roles, migration, storage and replication events; their kinds
 * are declared in shared/timeline/) with its time, source and details. Written to
 * `events.<n>.jsonl` in the data dir, rotated at a size (shared/rotating-file.ts); the newest events are kept in memory for `hvlab events`,
 * within a count and a byte budget (oldest dropped first), and followers get each new one.
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs'
import { rotatedPaths, type RotatedFile } from '../../shared/lab-layout.js'
import { openRotatingFile, type RollingStream, type RotationLimits } from '../../shared/rotating-file.js'
import type { TimelineEvent } from '../../shared/timeline/events.js'
import type { Limits } from '../../shared/topology.js'
import { lastLineThat } from './log-tail.js'

/** One event on the timeline: declared once, in shared/timeline/events.ts (re-exported for the controller's readers). */
export type { TimelineEvent }

export interface TimelineMemory {
  /** Events kept in memory at most. */
  events_max: number
  /** Bytes of events (as their JSON lines) kept in memory at most. */
  bytes_max: number
}

export const TIMELINE_MEMORY_DEFAULT: TimelineMemory = { events_max: 10_000, bytes_max: 16 * 1024 * 1024 }

export interface TimelineLimits extends RotationLimits {
  memory: TimelineMemory
}

/** The timeline's limits from the topology's. */
export function timelineLimits(limits: Limits): TimelineLimits {
  return {
    memory: { events_max: TIMELINE_MEMORY_DEFAULT.events_max, bytes_max: limits.timeline_memory_bytes_max },
    file_bytes_max: limits.events_file_bytes_max,
    files_kept: limits.events_files_kept,
  }
}

/** Gets each new event, and its JSON line (with the newline). */
export type TimelineFollower = (e: TimelineEvent, line: string) => void

export class Timeline {
  private readonly events: { event: TimelineEvent; bytes: number }[] = []
  private memory_bytes = 0
  private readonly followers = new Set<TimelineFollower>()

  constructor(
    private readonly memory: TimelineMemory = TIMELINE_MEMORY_DEFAULT,
    private file?: RollingStream,
    private nextSeq = 1,
  ) {}

  /**
   * A timeline written to `file`, rotated: a lab restarted in the same data dir continues
   * the numbering of its events, past a last line torn by a kill -9.
   */
  static async open(file: RotatedFile, limits: TimelineLimits, onWriteError: (e: Error) => void): Promise<Timeline> {
    const paths = rotatedPaths(file)
    const lastSeq = lastSeqIn(paths)
    const stream = await openRotatingFile(file, limits, onWriteError)
    // A torn last line gets its newline, so the next event starts a line of its own.
    if (endsTorn(stream.file)) stream.write('\n')
    return new Timeline(limits.memory, stream, lastSeq + 1)
  }

  append(e: Omit<TimelineEvent, 'seq'>): TimelineEvent {
    const event: TimelineEvent = { seq: this.nextSeq++, ...e }
    const line = JSON.stringify(event) + '\n'
    this.remember(event, Buffer.byteLength(line))
    this.file?.write(line)
    for (const f of this.followers) f(event, line)
    return event
  }

  /** Events with seq > `after`, oldest first, at most `limit` (the newest ones). */
  since(after = 0, limit = this.memory.events_max): TimelineEvent[] {
    const list = this.events.slice(this.indexAfter(after)).map((x) => x.event)
    return list.slice(Math.max(0, list.length - limit))
  }

  /** The oldest event in memory with seq > `after`. */
  next(after: number): TimelineEvent | undefined {
    return this.events[this.indexAfter(after)]?.event
  }

  follow(f: TimelineFollower): () => void {
    this.followers.add(f)
    return () => this.followers.delete(f)
  }

  /** Closes the file; later events stay in memory only. */
  close(): void {
    this.file?.end()
    this.file = undefined
  }

  private remember(event: TimelineEvent, bytes: number): void {
    this.events.push({ event, bytes })
    this.memory_bytes += bytes
    let drop = 0
    while (drop < this.events.length && (this.events.length - drop > this.memory.events_max || this.memory_bytes > this.memory.bytes_max)) {
      this.memory_bytes -= this.events[drop]!.bytes
      drop += 1
    }
    if (drop > 0) this.events.splice(0, drop)
  }

  /** The index of the first event with seq > `after` (events are in seq order). */
  private indexAfter(after: number): number {
    let lo = 0
    let hi = this.events.length
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if (this.events[mid]!.event.seq > after) hi = mid
      else lo = mid + 1
    }
    return lo
  }
}

/** The seq of the last whole event in the files (oldest first), or 0: torn or empty files are passed over. */
export function lastSeqIn(paths: readonly string[]): number {
  for (let i = paths.length - 1; i >= 0; i--) {
    const seq = lastLineThat(paths[i]!, seqOf)
    if (seq !== undefined) return seq
  }
  return 0
}

function seqOf(line: string): number | undefined {
  try {
    const seq = (JSON.parse(line) as { seq?: unknown } | null)?.seq
    return typeof seq === 'number' && Number.isSafeInteger(seq) && seq > 0 ? seq : undefined
  } catch {
    return undefined
  }
}

function endsTorn(path: string): boolean {
  const fd = openSync(path, 'r')
  try {
    const size = fstatSync(fd).size
    if (size === 0) return false
    const last = Buffer.alloc(1)
    readSync(fd, last, 0, 1, size - 1)
    return last[0] !== 0x0a
  } finally {
    closeSync(fd)
  }
}
