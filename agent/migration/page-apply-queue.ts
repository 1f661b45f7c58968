/**
 * The page batches of one incoming migration on their way into guest memory: applied in
 * the order they arrived, in the apply pool's workers, one call at a time. The batches that
 * waited while a call ran go together in the next one (up to `group_bytes_max`): a hand-over
 * between threads can take tens of milliseconds on a busy machine, and one per batch would
 * fall behind the wire.
 *
 * Order: a page's delta is decoded against the page as the batches before it left it,
 * so batches are never applied out of order. The protocol would allow batches of one
 * round to go in parallel (the source sends a page at most once per round), but nothing
 * here checks that a source keeps to it; one call at a time keeps the result the same
 * whatever a source sends, and a worker applies batches far faster than the wire brings them.
 *
 * Hand-over: a batch whose frame buffer the transport handed over (`owned`) is kept as it
 * is and its buffer later moved to the worker: no copy on the receiving side. Any other
 * batch is a view into a buffer the transport may reuse: it is copied on arrival.
 *
 * Bound: the transport has no way to stop reading a peer, so batches that arrive faster
 * than they are applied wait here (counted by the buffers they hold, a frame's header and
 * tag included); beyond `bytes_max` waiting, push() refuses
 * (HVLAB_E_BACKPRESSURE) and the migration fails, the VM staying on its source.
 *
 * The blackout's batches (`here`) are applied on this thread instead, one at a time with
 * the event loop served in between, still behind every batch before them: the paused guest
 * waits for them, and the workers run at nice 19 (worker-priority.ts), so on a busy machine
 * a hand-over to one waits for every event loop there. They are few (what fits the downtime
 * budget), and memory was committed in the setup, so applying them costs well under a
 * millisecond per MiB.
 *
 * A failed apply (a malformed batch) stops the queue: the batches after it are dropped
 * and `onFailed` is called once. appliedSoFar() resolves once every batch pushed before
 * the call is applied (or dropped, or failed), whatever was pushed after it: the destination
 * acknowledges a round once the round's batches are in, while the next round's already arrive.
 */
import { HvlabError } from '../../shared/errors.js'
import { stageTimes } from '../../shared/stage-times.js'
import { LoopSlicer } from './loop-slice.js'

export interface PageApplyQueueOptions {
  /**
   * Applies batches in their order (PageApplyPool.apply on the VM's memory). Each batch's
   * ArrayBuffer is the queue's to give away (moved to the worker), even where the batch is
   * a view into it (a frame's attachment, after its header).
   */
  readonly apply: (batches: Uint8Array[]) => Promise<unknown>
  /** Applies one batch on this thread (applyBatch on the VM's memory); throws what applyBatch throws. */
  readonly applyHere: (batch: Uint8Array) => void
  /** Bytes of batches that may wait at once. */
  readonly bytes_max: number
  /** Bytes of batches given to one apply call, at most (a larger single batch goes alone); default 16 MiB. */
  readonly group_bytes_max?: number
  /** An apply failed; the queue has stopped. Called once. */
  readonly onFailed: (error: unknown) => void
  /** Batches were applied: their bytes (the batches' own, as the source sent them). */
  readonly onApplied?: (batch_bytes: number) => void
}

export const APPLY_GROUP_BYTES_MAX_DEFAULT = 16 * 1024 * 1024

/** A batch waiting, the bytes it holds (its whole buffer), and whether it is applied on this thread. */
interface Waiting {
  readonly batch: Uint8Array
  readonly bytes: number
  readonly here: boolean
}

export class PageApplyQueue {
  private readonly waiting: Waiting[] = []
  private waiting_bytes = 0
  private applying = false
  private stopped = false
  /** Callers of appliedSoFar(), each with the count of batches pushed when it was called, in call order. */
  private appliedWaiters: { readonly through: number; readonly resolve: () => void }[] = []
  private pushed = 0
  private applied = 0

  constructor(private readonly o: PageApplyQueueOptions) {}

  /** Batches applied so far. */
  get applied_batches(): number {
    return this.applied
  }

  /** Bytes of batches waiting (not yet in a worker). */
  get queued_bytes(): number {
    return this.waiting_bytes
  }

  /**
   * Queues the batch behind the ones before it; refuses beyond bytes_max waiting. `owned`:
   * its ArrayBuffer holds this batch's frame alone and is the queue's from now on (kept,
   * later moved to a worker); otherwise the caller's bytes are not kept but copied. `here`:
   * a batch of the blackout's round, applied on this thread.
   */
  push(batch: Uint8Array, owned = false, here = false): void {
    if (this.stopped) return
    const whole = owned && batch.buffer instanceof ArrayBuffer
    const bytes = whole ? batch.buffer.byteLength : batch.length
    if (this.waiting_bytes + bytes > this.o.bytes_max) {
      throw new HvlabError(
        'HVLAB_E_BACKPRESSURE',
        `page batches arrive faster than this host applies them (${this.waiting_bytes} bytes waiting, ${this.o.bytes_max} allowed); the host is overloaded — migrate when it is less busy, or to another host`,
      )
    }
    if (whole) this.waiting.push({ batch, bytes, here })
    else {
      const copying = stageTimes.start()
      this.waiting.push({ batch: new Uint8Array(batch), bytes, here })
      stageTimes.end('batch_copy', copying)
    }
    this.waiting_bytes += bytes
    this.pushed++
    if (!this.applying) void this.drain()
  }

  /** Resolves once every batch pushed before this call is applied (later ones are not waited for), or the queue has stopped. */
  appliedSoFar(): Promise<void> {
    if (this.stopped || this.applied >= this.pushed) return Promise.resolve()
    return new Promise((resolve) => this.appliedWaiters.push({ through: this.pushed, resolve }))
  }

  /** Drops the batches not yet applied (the migration ended); the one in a worker finishes. */
  stop(): void {
    this.stopped = true
    this.waiting.length = 0
    this.waiting_bytes = 0
    if (!this.applying) this.wakeApplied()
  }

  private async drain(): Promise<void> {
    this.applying = true
    const slicer = new LoopSlicer()
    while (!this.stopped && this.waiting.length > 0) {
      const group = this.takeGroup()
      const applying = stageTimes.start()
      try {
        if (group.here) {
          for (const batch of group.batches) this.o.applyHere(batch)
          await slicer.serve()
        } else await this.o.apply(group.batches)
        stageTimes.end('apply', applying)
        this.applied += group.batches.length
        this.wakeApplied()
        this.o.onApplied?.(group.batch_bytes)
      } catch (e) {
        if (!this.stopped) {
          this.stop()
          this.o.onFailed(e)
        }
      }
    }
    this.applying = false
    this.wakeApplied()
  }

  /**
   * The batches waiting at the head, in order: for a worker, at least one and up to
   * group_bytes_max, none of them `here`; a batch to apply here goes alone.
   */
  private takeGroup(): { batches: Uint8Array[]; here: boolean; batch_bytes: number } {
    const head = this.waiting[0] as Waiting
    const bytes_max = head.here ? 0 : (this.o.group_bytes_max ?? APPLY_GROUP_BYTES_MAX_DEFAULT)
    let n = 1
    let bytes = head.bytes
    const joins = (w: Waiting | undefined): w is Waiting => w !== undefined && !w.here && bytes + w.bytes <= bytes_max
    while (joins(this.waiting[n])) bytes += (this.waiting[n++] as Waiting).bytes
    this.waiting_bytes -= bytes
    const batches = this.waiting.splice(0, n).map((w) => w.batch)
    return { batches, here: head.here, batch_bytes: batches.reduce((sum, b) => sum + b.length, 0) }
  }

  /** Wakes the callers of appliedSoFar() whose batches are all applied (all of them once the queue stopped). */
  private wakeApplied(): void {
    const all = this.stopped
    let n = 0
    while (n < this.appliedWaiters.length && (all || (this.appliedWaiters[n]?.through ?? 0) <= this.applied)) n++
    for (const w of this.appliedWaiters.splice(0, n)) w.resolve()
  }
}
