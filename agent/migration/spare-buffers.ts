/**
 * Spare buffers of a worker pool's tasks: memory written before, handed to the next task
 * instead of fresh memory. The operating system maps a fresh page on its first write:
 * measured on the project's 2-core machine, 3.2 ms per MiB written into fresh memory against
 * 0.07 ms into memory written before, more than diffing the pages in it. The source's diff
 * pool keeps its batch buffers here (page-diff-pool.ts): a batch's buffer comes back once its
 * frame is written, and the next task writes its batch there.
 *
 * At most `count_max` are kept, the largest. A migration's setup has the pool's workers
 * fault spares in (`warm`, faultedSpare in a worker) so that its first round finds them;
 * `release` drops them all once no migration needs them, and a spare faulted in before the
 * last release is not kept. (The destination keeps none: copying each arriving batch into
 * one was slower than moving the transport's own buffer to the apply worker; see the README.)
 */
import { move, transferableSymbol, valueSymbol } from 'piscina'
import { HvlabError } from '../../shared/errors.js'
import { PAGE_SIZE_BYTES } from '../../shared/protocol/page-size.js'
import { pageBatchBytesMax, PAGE_BATCH_PAGES_MAX } from './page-batch.js'

/** A worker task: a spare of `spare_bytes`, faulted in (faultedSpare). */
export interface SpareFaultTask {
  readonly spare_bytes: number
}

/** A spare faulted in by a worker, moved back to the pool. */
export interface FaultedSpare {
  readonly spare: ArrayBuffer
}

/** The largest spare asked of a worker: one batch of the most pages. */
export const SPARE_BYTES_MAX = pageBatchBytesMax(PAGE_BATCH_PAGES_MAX)

/** A new buffer of the task's size with every page of it written once (to 0, as it was). */
export function faultedSpare(task: SpareFaultTask): ArrayBuffer {
  const bytes = task.spare_bytes
  if (!Number.isInteger(bytes) || bytes < 1 || bytes > SPARE_BYTES_MAX) {
    throw new HvlabError('HVLAB_E_INTERNAL', `a spare buffer is 1–${SPARE_BYTES_MAX} bytes, not ${bytes}`)
  }
  const spare = new Uint8Array(bytes)
  for (let at = 0; at < bytes; at += PAGE_SIZE_BYTES) spare[at] = 0
  return spare.buffer
}

/** A worker's answer to a SpareFaultTask: the spare, moved (not copied) to the pool. */
export function runSpareFault(task: SpareFaultTask): unknown {
  const spare = faultedSpare(task)
  return move({ [transferableSymbol]: spare, [valueSymbol]: { spare } satisfies FaultedSpare })
}

export class SpareBuffers {
  /** Largest first. */
  private readonly spares: ArrayBuffer[] = []
  private releases = 0
  private closed = false

  constructor(readonly count_max: number) {}

  /** The largest spare when it holds at least `bytes_min`, taken (the caller's from now on); else none. */
  take(bytes_min = 1): ArrayBuffer | undefined {
    const largest = this.spares[0]
    return largest !== undefined && largest.byteLength >= bytes_min ? this.spares.shift() : undefined
  }

  /** Keeps `buffer` (its holder is done with it) unless it is empty, kept already, or count_max larger ones are. */
  keep(buffer: ArrayBuffer): void {
    if (this.closed || buffer.byteLength === 0 || this.spares.includes(buffer)) return
    this.spares.push(buffer)
    this.spares.sort((a, b) => b.byteLength - a.byteLength)
    if (this.spares.length > this.count_max) this.spares.length = this.count_max
  }

  /**
   * Has `faultIn` (a worker task running faultedSpare) make spares of `bytes` until `count`
   * (at most count_max) of at least that size are kept. Resolves once they are.
   */
  async warm(count: number, bytes: number, faultIn: (bytes: number) => Promise<ArrayBuffer>): Promise<void> {
    const releases = this.releases
    const kept = this.spares.filter((b) => b.byteLength >= bytes).length
    const missing = Math.max(0, Math.min(count, this.count_max) - kept)
    const one = async (): Promise<void> => {
      const spare = await faultIn(bytes)
      if (releases === this.releases) this.keep(spare)
    }
    await Promise.all(Array.from({ length: missing }, one))
  }

  /** Drops every spare (nothing will reuse them soon); returns how many. */
  release(): number {
    const n = this.spares.length
    this.spares.length = 0
    this.releases++
    return n
  }

  /** Drops every spare and keeps none from now on (the pool is closed). */
  close(): void {
    this.release()
    this.closed = true
  }
}
