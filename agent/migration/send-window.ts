/**
 * The source's flow control for one migration: batch bytes sent and not yet applied on
 * the destination stay within the window the destination granted (its `migration-ready`),
 * as TCP's receive window does. The destination's transport cannot stop reading a peer,
 * so without this a source faster than the destination's apply filled its bounded queue
 * and the migration failed (HVLAB_E_BACKPRESSURE); with it the source waits instead.
 *
 * The destination reports the batch bytes it has applied so far (`migration-applied`,
 * counted over every round). A report never lowers what counts as applied, and never
 * raises it past what was sent: a destination cannot make a source send more than the
 * window by claiming more. A batch larger than the window still goes once nothing is in
 * flight, so a small window slows the stream but never stops it.
 */
import { HvlabError } from '../../shared/errors.js'

interface Waiter {
  readonly bytes: number
  readonly resolve: () => void
}

export class SendWindow {
  private sent_bytes = 0
  private applied_bytes = 0
  private closed = false
  private readonly waiters: Waiter[] = []

  constructor(readonly window_bytes: number) {
    if (!Number.isSafeInteger(window_bytes) || window_bytes < 1) {
      throw new HvlabError('HVLAB_E_INTERNAL', `send window: ${window_bytes} bytes is not a window`)
    }
  }

  /** Batch bytes sent and not yet reported applied. */
  get in_flight_bytes(): number {
    return this.sent_bytes - this.applied_bytes
  }

  /**
   * Resolves once `bytes` more fit the window (at once if they do), counting them as sent
   * from then on; callers go in turn. Once the window is closed, nothing waits.
   */
  reserve(bytes: number): Promise<void> {
    return new Promise((resolve) => {
      this.waiters.push({ bytes, resolve })
      this.wake()
    })
  }

  /** The destination's report: batch bytes applied so far, all rounds together. */
  applied(total_bytes: number): void {
    this.applied_bytes = Math.max(this.applied_bytes, Math.min(total_bytes, this.sent_bytes))
    this.wake()
  }

  /** The migration ended: every wait ends now (the sender then finds it stopped). */
  close(): void {
    this.closed = true
    this.wake()
  }

  private fits(bytes: number): boolean {
    return this.closed || this.in_flight_bytes === 0 || this.in_flight_bytes + bytes <= this.window_bytes
  }

  private wake(): void {
    while (this.waiters.length > 0 && this.fits((this.waiters[0] as Waiter).bytes)) {
      const w = this.waiters.shift() as Waiter
      this.sent_bytes += w.bytes
      w.resolve()
    }
  }
}
