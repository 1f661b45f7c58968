/**
 * Where a process spends its time on the migration data path, stage by stage (seal, open,
 * socket write, the wait for the diff workers, apply, …): what `npm run bench` prints for
 * each end of the stream. Off unless the process turns it on (the bench's endpoint
 * processes do); while off, a stage costs one boolean test and no clock read.
 *
 * A stage's figure is the sum of the wall-clock time its calls took, in milliseconds, and
 * the number of calls. Stages of one thread do not overlap unless their names say so (a
 * `_wait` is time the thread had nothing else of this path to do).
 */

export const STREAM_STAGES = [
  /** Source: the main thread waited for the diff workers' next slice. */
  'diff_wait',
  /** Both: computing a frame's tag (frame-auth.ts). */
  'seal',
  /** Both: a sender waited for the socket's queue to drain below its high-water mark. */
  'socket_wait',
  /** Both: handing a frame's fragments to the socket (ws framing, the write system calls). */
  'socket_write',
  /** Source: a round's end waited for the destination's acknowledgement. */
  'ack_wait',
  /** Source: a batch waited for room in the send window (the destination applying what was sent). */
  'window_wait',
  /** Both: checking a received frame's tag. */
  'open',
  /** Both: decoding a received frame and running its handler (the page batch queued). */
  'deliver',
  /** Destination: copying a batch the transport could not hand over. */
  'batch_copy',
  /** Destination: apply calls in flight, hand-over to the worker and back included. */
  'apply',
  /** Destination: the apply worker's own time in the batches (a worker thread, not the event loop). */
  'apply_worker',
  /** Destination: a round's end waited for its last batches to be applied. */
  'round_end_wait',
] as const
export type StreamStage = (typeof STREAM_STAGES)[number]

export interface StageFigure {
  ms: number
  calls: number
}

export type StageFigures = Record<StreamStage, StageFigure>

export class StageTimes {
  enabled = false
  private figures: StageFigures = StageTimes.empty()

  static empty(): StageFigures {
    return Object.fromEntries(STREAM_STAGES.map((s) => [s, { ms: 0, calls: 0 }])) as StageFigures
  }

  /** The time now when on (to pass to `end`), else 0. */
  start(): number {
    return this.enabled ? performance.now() : 0
  }

  /** Adds the time since `started_ms` (from `start`) to `stage`. */
  end(stage: StreamStage, started_ms: number): void {
    if (this.enabled) this.add(stage, performance.now() - started_ms)
  }

  /** Adds `ms` measured elsewhere (a worker's own time) to `stage`. */
  add(stage: StreamStage, ms: number): void {
    if (!this.enabled) return
    const f = this.figures[stage]
    f.ms += ms
    f.calls++
  }

  reset(): void {
    this.figures = StageTimes.empty()
  }

  read(): StageFigures {
    return structuredClone(this.figures)
  }
}

/** This process's stage times (one per process: the data path's code records into it). */
export const stageTimes = new StageTimes()
