/**
 * Long main-thread loops of the data plane, cut into slices: between two slices the event
 * loop runs (timers, I/O: the host's heartbeats and lease renewals). A loop whose every
 * await resolves at once (a send below the transport's high-water mark) would otherwise
 * run as one stretch of microtasks, however long.
 */
import { setImmediate as serveEventLoop } from 'node:timers/promises'

/** Main-thread work between two turns of the event loop, at most (about). */
export const LOOP_SLICE_MS_DEFAULT = 10

export class LoopSlicer {
  private since_ms = performance.now()

  constructor(readonly slice_ms: number = LOOP_SLICE_MS_DEFAULT) {}

  /** Lets the event loop run once `slice_ms` of work went by since it last did. */
  async serve(): Promise<void> {
    if (performance.now() - this.since_ms < this.slice_ms) return
    await serveEventLoop()
    this.since_ms = performance.now()
  }
}
