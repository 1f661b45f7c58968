/**
 * A small piscina pool that diffs a round's dirty set in parallel. The dirty set is cut
 * into chunks (one batch each); at most `inflight_max` chunks are in the pool at once,
 * counted over every diff() call (concurrent migrations share one pool), so neither
 * piscina's queue nor the batches waiting in memory grow without bound.
 * Workers get the guest memory and the last-sent copy as SharedArrayBuffers (shared,
 * never copied); each batch comes back by transfer.
 *
 * If a diff fails, the last-sent copy no longer mirrors the destination: the migration
 * must be abandoned (the VM keeps running on the source) and started again.
 *
 * Worker loading: the worker is a TypeScript file when this module is (run under
 * `node --import tsx` or tap's TypeScript loader), a .js file once compiled. Workers get
 * the parent's `process.execArgv`, which carries the TypeScript loader (`--import tsx`
 * or tap's `--import`/`--loader` flags), so the .ts worker loads the same way the
 * parent's modules did.
 */
import { Piscina } from 'piscina'
import { HvlabError } from '../../shared/errors.js'
import { addPageDiffStats, emptyPageDiffStats, type PageDiffResult, type PageDiffStats, type PageDiffTask } from './page-diff.js'
import { PAGE_BATCH_PAGES_MAX } from './page-batch.js'

export interface PageDiffPoolOptions {
  /** Worker threads (1–64). */
  threads: number
  /** How long an idle worker lives; piscina's default of 0 would end it at once. */
  idle_timeout_ms?: number
  /** Pages per task and batch (1–PAGE_BATCH_PAGES_MAX). */
  chunk_pages?: number
  /** Chunks in the pool at once (running + queued); default 2 per thread. */
  inflight_max?: number
}

export interface PageDiffRound {
  /** In the order of the dirty pages given. */
  readonly batches: Uint8Array[]
  readonly stats: PageDiffStats
}

export const PAGE_DIFF_THREADS_MAX = 64
export const PAGE_DIFF_CHUNK_PAGES_DEFAULT = 256
export const PAGE_DIFF_IDLE_TIMEOUT_MS_DEFAULT = 30_000

function workerFilename(): string {
  const ext = import.meta.url.endsWith('.ts') ? '.ts' : '.js'
  return new URL(`./page-diff-worker${ext}`, import.meta.url).href
}

function checkInt(name: string, value: number, min: number, max: number): number {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new HvlabError('HVLAB_E_USAGE', `page diff pool: ${name} must be an integer ${min}–${max}, got ${value}`)
  }
  return value
}

export class PageDiffPool {
  readonly threads: number
  readonly chunk_pages: number
  readonly inflight_max: number
  private readonly pool: Piscina<PageDiffTask, PageDiffResult>
  private closed = false
  /** Chunks in the pool now, over every diff() call (migrations share one pool). */
  private inflight = 0
  private readonly slotWaiters: (() => void)[] = []

  constructor(options: PageDiffPoolOptions) {
    this.threads = checkInt('threads', options.threads, 1, PAGE_DIFF_THREADS_MAX)
    this.chunk_pages = checkInt('chunk_pages', options.chunk_pages ?? PAGE_DIFF_CHUNK_PAGES_DEFAULT, 1, PAGE_BATCH_PAGES_MAX)
    this.inflight_max = checkInt('inflight_max', options.inflight_max ?? 2 * this.threads, 1, 16 * PAGE_DIFF_THREADS_MAX)
    const idle_timeout_ms = checkInt('idle_timeout_ms', options.idle_timeout_ms ?? PAGE_DIFF_IDLE_TIMEOUT_MS_DEFAULT, 1, 24 * 3600_000)
    this.pool = new Piscina<PageDiffTask, PageDiffResult>({
      filename: workerFilename(),
      // one thread stays; the others start under load and end after idle_timeout_ms
      minThreads: 1,
      maxThreads: this.threads,
      idleTimeout: idle_timeout_ms,
      // inflight_max already bounds what we submit; this is the backstop.
      maxQueue: this.inflight_max,
      execArgv: process.execArgv,
    })
  }

  /**
   * Diffs `pages` (each index once) of `memory` against `last_sent`, updating
   * `last_sent`. Resolves with the batches in page order and the summed counts.
   */
  async diff(memory: SharedArrayBuffer, last_sent: SharedArrayBuffer, pages: Uint32Array): Promise<PageDiffRound> {
    if (this.closed) throw new HvlabError('HVLAB_E_STATE', 'page diff pool is closed; create a new one')
    const chunks = Math.ceil(pages.length / this.chunk_pages)
    const batches: Uint8Array[] = new Array<Uint8Array>(chunks)
    const stats = emptyPageDiffStats()
    let next = 0
    let failed = false
    const lane = async (): Promise<void> => {
      while (!failed && next < chunks) {
        const c = next++
        // slice(), not subarray(): a view would clone its whole buffer to the worker.
        const task: PageDiffTask = { memory, last_sent, pages: pages.slice(c * this.chunk_pages, (c + 1) * this.chunk_pages) }
        await this.acquireSlot()
        try {
          const result = await this.pool.run(task)
          batches[c] = result.batch
          addPageDiffStats(stats, result.stats)
        } catch (e) {
          failed = true
          throw e
        } finally {
          this.releaseSlot()
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

  /** Waits until fewer than inflight_max chunks are in the pool, whoever submitted them. */
  private async acquireSlot(): Promise<void> {
    while (this.inflight >= this.inflight_max) await new Promise<void>((resolve) => this.slotWaiters.push(resolve))
    this.inflight++
  }

  private releaseSlot(): void {
    this.inflight--
    this.slotWaiters.shift()?.()
  }

  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    await this.pool.destroy()
  }
}
