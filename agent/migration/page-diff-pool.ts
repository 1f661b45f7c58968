/**
 * A small piscina pool that diffs a round's dirty set in parallel. The dirty set is cut
 * into chunks (one batch each); at most `inflight_max` chunks are in the pool at once,
 * counted over every diff() call (concurrent migrations share one pool), so neither
 * piscina's queue nor the batches waiting in memory grow without bound
 * (shared/bounded-worker-pool.ts). Workers get the guest memory and the last-sent copy
 * as SharedArrayBuffers (shared, never copied); each batch comes back by transfer. A
 * caller done with a batch may give it back (recycle): its buffer then goes to a worker
 * with a later task, which writes its batch there instead of into fresh memory; a
 * migration's setup has the workers fault in such spares before the first round (warmSpares).
 *
 * If a diff fails, the last-sent copy no longer mirrors the destination: the migration
 * must be abandoned (the VM keeps running on the source) and started again.
 */
import { BoundedWorkerPool, checkPoolInt, workerModuleUrl, WORKER_IDLE_TIMEOUT_MS_DEFAULT } from '../../shared/bounded-worker-pool.js'
import { addPageDiffStats, diffPages, emptyPageDiffStats, type PageDiffResult, type PageDiffStats, type PageDiffTask } from './page-diff.js'
import { SpareBuffers, type FaultedSpare, type SpareFaultTask } from './spare-buffers.js'
import { LoopSlicer } from './loop-slice.js'
import { pageBatchBytesMax, PAGE_BATCH_PAGES_MAX } from './page-batch.js'
import { PAGE_KERNEL_CHOICES, pageKernel, warmPageKernel, type PageKernelChoice } from './page-kernel.js'
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

/** Which pages' last-sent copies are not kept, and which round this is (page-diff.ts). */
export interface DiffKept {
  readonly unkept: SharedArrayBuffer
  readonly bulk: boolean
  readonly final?: boolean
}

export const PAGE_DIFF_THREADS_MAX = 64
/** One full batch per task: fewer hand-offs between threads (each costs a few tens of µs). */
export const PAGE_DIFF_CHUNK_PAGES_DEFAULT = PAGE_BATCH_PAGES_MAX
export const PAGE_DIFF_IDLE_TIMEOUT_MS_DEFAULT = WORKER_IDLE_TIMEOUT_MS_DEFAULT
/** Spare batch buffers kept (each at most one batch, about 4.2 MiB). */
export const PAGE_DIFF_SPARES_MAX = 16
const WHAT = 'page diff pool'

export class PageDiffPool {
  readonly threads: number
  readonly chunk_pages: number
  readonly inflight_max: number
  readonly kernel: PageKernelChoice | undefined
  private readonly pool: BoundedWorkerPool<PageDiffTask | SpareFaultTask, PageDiffResult | FaultedSpare>
  /** Buffers of batches given back (recycle) or faulted in (warmSpares). */
  private readonly spares = new SpareBuffers(PAGE_DIFF_SPARES_MAX)

  constructor(options: PageDiffPoolOptions) {
    if (options.kernel !== undefined && !PAGE_KERNEL_CHOICES.includes(options.kernel)) {
      throw new HvlabError(
        'HVLAB_E_USAGE',
        `${WHAT}: kernel must be one of ${PAGE_KERNEL_CHOICES.join(', ')}, got ${String(options.kernel)}`,
      )
    }
    this.chunk_pages = checkPoolInt(WHAT, 'chunk_pages', options.chunk_pages ?? PAGE_DIFF_CHUNK_PAGES_DEFAULT, 1, PAGE_BATCH_PAGES_MAX)
    this.pool = new BoundedWorkerPool<PageDiffTask | SpareFaultTask, PageDiffResult | FaultedSpare>({
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
   * `last_sent`, in the pool's workers. Resolves with the batches in page order and the
   * summed counts. `kept`: the pages whose last-sent copy is not kept, and whether this is
   * the bulk round or the final one (page-diff.ts); without it every page is kept.
   */
  async diff(memory: SharedArrayBuffer, last_sent: SharedArrayBuffer, pages: Uint32Array, kept?: DiffKept): Promise<PageDiffRound> {
    this.pool.assertOpen()
    const chunks = Math.ceil(pages.length / this.chunk_pages)
    const batches: Uint8Array[] = new Array<Uint8Array>(chunks)
    const stats = emptyPageDiffStats()
    let next = 0
    let failed = false
    const lane = async (): Promise<void> => {
      while (!failed && next < chunks) {
        const c = next++
        const task = this.task(memory, last_sent, pages, c, kept)
        try {
          const result = (await this.pool.run(task, task.out === undefined ? undefined : [task.out])) as PageDiffResult
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

  /**
   * The same diff on the calling thread, a task at a time with its event loop served in
   * between (loop-slice.ts): for the blackout's round, whose few pages the paused guest waits
   * for. The workers run at nice 19 (worker-priority.ts): on a busy machine they wait for
   * every event loop. Measured on the project's 2-core machine, 3,000–7,000 pages in the
   * final round: the source's diff and send took 23–39 ms and the destination's answer
   * 44–56 ms with the workers at nice 19, against 14–25 and 12–15 ms at nice 0.
   */
  async diffHere(memory: SharedArrayBuffer, last_sent: SharedArrayBuffer, pages: Uint32Array, kept?: DiffKept): Promise<PageDiffRound> {
    this.pool.assertOpen()
    const chunks = Math.ceil(pages.length / this.chunk_pages)
    const batches: Uint8Array[] = []
    const stats = emptyPageDiffStats()
    const slicer = new LoopSlicer()
    const kernel = pageKernel(this.kernel)
    for (let c = 0; c < chunks; c++) {
      const result = diffPages(this.task(memory, last_sent, pages, c, kept), kernel)
      batches.push(result.batch)
      addPageDiffStats(stats, result.stats)
      await slicer.serve()
    }
    return { batches, stats }
  }

  /** Readies this thread for diffHere in a migration's setup: loads the pool's kernel and writes its arena (warmPageKernel), a slice at a time. */
  warmHere(): Promise<void> {
    return warmPageKernel(this.kernel)
  }

  /** Task `c` of a diff: its chunk of the pages, and a spare buffer for its batch if there is one. */
  private task(memory: SharedArrayBuffer, last_sent: SharedArrayBuffer, pages: Uint32Array, c: number, kept?: DiffKept): PageDiffTask {
    // slice(), not subarray(): a view would clone its whole buffer to the worker.
    const chunk = pages.slice(c * this.chunk_pages, (c + 1) * this.chunk_pages)
    const out = this.spares.take() // the largest
    return {
      memory,
      last_sent,
      pages: chunk,
      ...(this.kernel === undefined ? {} : { kernel: this.kernel }),
      ...(out === undefined ? {} : { out }),
      ...(kept === undefined ? {} : { unkept: kept.unkept, bulk: kept.bulk, final: kept.final === true }),
    }
  }

  /**
   * Gives back a batch that diff() returned, once nothing reads it any more (sent and
   * written out): its buffer becomes a spare that a later task writes its batch into,
   * already-mapped memory instead of fresh pages. The caller must not touch the batch after
   * this. Optional: a batch never given back is simply garbage-collected. At most
   * PAGE_DIFF_SPARES_MAX spares are kept, the largest.
   */
  recycle(batch: Uint8Array): void {
    const buffer = batch.buffer
    if (buffer instanceof ArrayBuffer) this.spares.keep(buffer)
  }

  /**
   * Faults in spare buffers of a whole batch in the workers until `count` (at most
   * PAGE_DIFF_SPARES_MAX) such spares are kept: a migration's setup calls it, so the first
   * round writes its batches into memory already mapped (spare-buffers.ts). Resolves when
   * they are kept; a spare faulted in while releaseSpares() ran is dropped.
   */
  warmSpares(count: number): Promise<void> {
    const faultIn = async (spare_bytes: number): Promise<ArrayBuffer> => ((await this.pool.run({ spare_bytes })) as FaultedSpare).spare
    return this.spares.warm(count, pageBatchBytesMax(this.chunk_pages), faultIn)
  }

  /** Drops the spare buffers (no migration is being sent: nothing will reuse them soon); returns how many. */
  releaseSpares(): number {
    return this.spares.release()
  }

  async close(): Promise<void> {
    this.spares.close()
    await this.pool.close()
  }
}
