/**
 * A small piscina pool that diffs a round's dirty set in parallel. The dirty set is cut
 * into chunks (one batch each); at most `inflight_max` chunks are in the pool at once,
 * counted over every diff() call (concurrent migrations share one pool), so neither
 * piscina's queue nor the batches waiting in memory grow without bound
 * (shared/bounded-worker-pool.ts). Workers get the guest memory and the last-sent copy
 * as SharedArrayBuffers (shared, never copied); each batch comes back by transfer.
 *
 * If a diff fails, the last-sent copy no longer mirrors the destination: the migration
 * must be abandoned (the VM keeps running on the source) and started again.
 */
import { BoundedWorkerPool, checkPoolInt, workerModuleUrl, WORKER_IDLE_TIMEOUT_MS_DEFAULT } from '../../shared/bounded-worker-pool.js'
import { addPageDiffStats, emptyPageDiffStats, type PageDiffResult, type PageDiffStats, type PageDiffTask } from './page-diff.js'
import { PAGE_BATCH_PAGES_MAX } from './page-batch.js'
import { PAGE_KERNEL_CHOICES, type PageKernelChoice } from './page-kernel.js'
import { HvlabError } from '../../shared/errors.js'

export interface PageDiffPoolOptions {
  /** Worker threads (1–64). */
  threads: number
  /** How long an idle worker lives; piscina's default of 0 would end it at once. */
  idle_timeout_ms?: number
  /** Pages per task and batch (1–PAGE_BATCH_PAGES_MAX). */
  chunk_pages?: number
  /** Chunks in the pool at once (running + queued); default 2 per thread. */
  inflight_max?: number
  /** The workers' page kernel (page-kernel.ts); default HVLAB_PAGE_KERNEL's, else auto. */
  kernel?: PageKernelChoice
}

export interface PageDiffRound {
  /** In the order of the dirty pages given. */
  readonly batches: Uint8Array[]
  readonly stats: PageDiffStats
}

export const PAGE_DIFF_THREADS_MAX = 64
/** One full batch per task: fewer hand-offs between threads (each costs a few tens of µs). */
export const PAGE_DIFF_CHUNK_PAGES_DEFAULT = PAGE_BATCH_PAGES_MAX
export const PAGE_DIFF_IDLE_TIMEOUT_MS_DEFAULT = WORKER_IDLE_TIMEOUT_MS_DEFAULT
const WHAT = 'page diff pool'

export class PageDiffPool {
  readonly threads: number
  readonly chunk_pages: number
  readonly inflight_max: number
  readonly kernel: PageKernelChoice | undefined
  private readonly pool: BoundedWorkerPool<PageDiffTask, PageDiffResult>

  constructor(options: PageDiffPoolOptions) {
    if (options.kernel !== undefined && !PAGE_KERNEL_CHOICES.includes(options.kernel)) {
      throw new HvlabError(
        'HVLAB_E_USAGE',
        `${WHAT}: kernel must be one of ${PAGE_KERNEL_CHOICES.join(', ')}, got ${String(options.kernel)}`,
      )
    }
    this.chunk_pages = checkPoolInt(WHAT, 'chunk_pages', options.chunk_pages ?? PAGE_DIFF_CHUNK_PAGES_DEFAULT, 1, PAGE_BATCH_PAGES_MAX)
    this.pool = new BoundedWorkerPool<PageDiffTask, PageDiffResult>({
      what: WHAT,
      filename: workerModuleUrl(import.meta.url, 'page-diff-worker'),
      threads: options.threads,
      threads_max: PAGE_DIFF_THREADS_MAX,
      ...(options.inflight_max === undefined ? {} : { inflight_max: options.inflight_max }),
      ...(options.idle_timeout_ms === undefined ? {} : { idle_timeout_ms: options.idle_timeout_ms }),
      closed_hint: 'create a new one',
    })
    this.threads = this.pool.threads
    this.inflight_max = this.pool.inflight_max
    this.kernel = options.kernel
  }

  /**
   * Diffs `pages` (each index once) of `memory` against `last_sent`, updating
   * `last_sent`. Resolves with the batches in page order and the summed counts.
   */
  async diff(memory: SharedArrayBuffer, last_sent: SharedArrayBuffer, pages: Uint32Array): Promise<PageDiffRound> {
    this.pool.assertOpen()
    const chunks = Math.ceil(pages.length / this.chunk_pages)
    const batches: Uint8Array[] = new Array<Uint8Array>(chunks)
    const stats = emptyPageDiffStats()
    let next = 0
    let failed = false
    const lane = async (): Promise<void> => {
      while (!failed && next < chunks) {
        const c = next++
        // slice(), not subarray(): a view would clone its whole buffer to the worker.
        const chunk = pages.slice(c * this.chunk_pages, (c + 1) * this.chunk_pages)
        const task: PageDiffTask = { memory, last_sent, pages: chunk, ...(this.kernel === undefined ? {} : { kernel: this.kernel }) }
        try {
          const result = await this.pool.run(task)
          batches[c] = result.batch
          addPageDiffStats(stats, result.stats)
        } catch (e) {
          failed = true
          throw e
        }
      }
    }
    const lanes = Math.min(this.inflight_max, chunks)
    // Wait for every lane, so nothing still writes last_sent once diff() has failed.
    const settled = await Promise.allSettled(Array.from({ length: lanes }, lane))
    const failure = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected')
    if (failure) throw failure.reason
    return { batches, stats }
  }

  async close(): Promise<void> {
    await this.pool.close()
  }
}
