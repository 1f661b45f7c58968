/**
 * The destination's piscina pool for page apply (page-apply.ts): batches are decoded into
 * the arriving VM's memory by worker threads, so a host receiving a busy VM keeps its
 * event loop for heartbeats and lease renewals. The pool starts on the first batch (a host
 * that never receives a VM runs no apply worker) and its idle workers end after
 * idle_timeout_ms. At most `inflight_max` batches are in the pool at once, over every
 * migration (shared/bounded-worker-pool.ts). An arrival's first task is the commit of its
 * memory (`commit`), in the migration's setup.
 *
 * Hand-over: guest memory is a SharedArrayBuffer (shared, never copied). A batch that is
 * the whole of its ArrayBuffer is moved to the worker (transferred, not cloned: detached
 * here); so is a view whose buffer the caller gives away (`views_movable`: a frame the
 * transport handed over, its header and tag around the batch). Any other is copied first
 * into a buffer of its own: a view into a receive buffer the transport owns, which may hold
 * other frames, must never be detached, and posting a view would clone its whole buffer.
 * PageApplyQueue keeps the frames the transport hands over and copies the others as they
 * arrive, so a hand-over moves the batches that waited without touching their bytes.
 */
import { move, transferableSymbol, valueSymbol } from 'piscina'
import { HvlabError } from '../../shared/errors.js'
import { stageTimes } from '../../shared/stage-times.js'
import { BoundedWorkerPool, checkPoolInt, workerModuleUrl, WORKER_IDLE_TIMEOUT_MS_DEFAULT } from '../../shared/bounded-worker-pool.js'
import type { GuestMemoryBuffers } from '../vm/guest-memory.js'
import { appliedCounts, type MemoryCommitTask, type PageApplyResult, type PageApplyTask } from './page-apply.js'
import type { ApplyCounts } from './page-batch.js'

export interface PageApplyPoolOptions {
  /** Worker threads (1–64). */
  threads: number
  /** How long an idle worker lives; piscina's default of 0 would end it at once. */
  idle_timeout_ms?: number
  /** Batches in the pool at once (running + queued); default 2 per thread. */
  inflight_max?: number
}

export const PAGE_APPLY_THREADS_MAX = 64
const WHAT = 'page apply pool'

/** The batch itself when it is the whole of its (non-shared) ArrayBuffer, else a copy that is. */
export function ownedBatch(batch: Uint8Array): Uint8Array {
  const whole = batch.byteOffset === 0 && batch.byteLength === batch.buffer.byteLength && batch.buffer instanceof ArrayBuffer
  return whole ? batch : new Uint8Array(batch)
}

/** The batch itself when its buffer may be moved (an ArrayBuffer), else (shared memory) a copy of its own. */
function movableBatch(batch: Uint8Array): Uint8Array {
  return batch.buffer instanceof ArrayBuffer ? batch : new Uint8Array(batch)
}

export class PageApplyPool {
  readonly threads: number
  private readonly options: PageApplyPoolOptions
  private pool: BoundedWorkerPool<unknown, PageApplyResult> | null = null
  private closed = false

  constructor(options: PageApplyPoolOptions) {
    this.threads = checkPoolInt(WHAT, 'threads', options.threads, 1, PAGE_APPLY_THREADS_MAX)
    if (options.inflight_max !== undefined) checkPoolInt(WHAT, 'inflight_max', options.inflight_max, 1, 16 * PAGE_APPLY_THREADS_MAX)
    checkPoolInt(WHAT, 'idle_timeout_ms', options.idle_timeout_ms ?? WORKER_IDLE_TIMEOUT_MS_DEFAULT, 1, 24 * 3600_000)
    this.options = options
  }

  /** Whether a worker was ever started (an arrival's memory commit starts the pool). */
  get started(): boolean {
    return this.pool !== null
  }

  /** Starts the pool's first worker now, if it has not started (a test, before it times anything). */
  warm(): void {
    this.workers()
  }

  /**
   * Applies `batches` to the memory in a worker, in their order. Rejects with the first
   * refused batch's HvlabError (HVLAB_E_PROTOCOL for a malformed one: it changed no memory,
   * the batches after it were not applied). Callers keep the order: a page's later batch
   * must not be given before the call with its earlier one has resolved. A batch that is
   * the whole of its ArrayBuffer is detached by the call; with `views_movable`, so is every
   * batch's buffer (the caller gives each away whole, whatever else it holds).
   */
  async apply(memory: GuestMemoryBuffers, batches: readonly Uint8Array[], views_movable = false): Promise<ApplyCounts> {
    const pool = this.workers()
    const own = views_movable ? batches.map(movableBatch) : batches.map(ownedBatch)
    const task: PageApplyTask = { memory, batches: own }
    // piscina adds the transferable to the task's transfer list with concat(): an array of buffers moves each one
    const buffers = [...new Set(own.map((b) => b.buffer))]
    const result = await pool.run(move({ [transferableSymbol]: buffers, [valueSymbol]: task }))
    stageTimes.add('apply_worker', result.worker_ms)
    return appliedCounts(result)
  }

  /**
   * Commits the arriving VM's memory in a worker (GuestMemory.commitPages): the pages
   * are the process's before the first batch writes them. Resolves with the worker's time, ms.
   */
  async commit(memory: GuestMemoryBuffers): Promise<number> {
    const result = await this.workers().run({ memory, commit: true } satisfies MemoryCommitTask)
    return result.worker_ms
  }

  private workers(): BoundedWorkerPool<unknown, PageApplyResult> {
    if (this.closed) throw new HvlabError('HVLAB_E_STATE', `${WHAT} is closed; create a new one`)
    if (this.pool) return this.pool
    const { inflight_max, idle_timeout_ms } = this.options
    this.pool = new BoundedWorkerPool<unknown, PageApplyResult>({
      what: WHAT,
      filename: workerModuleUrl(import.meta.url, 'page-apply-worker'),
      threads: this.threads,
      threads_max: PAGE_APPLY_THREADS_MAX,
      ...(inflight_max === undefined ? {} : { inflight_max }),
      ...(idle_timeout_ms === undefined ? {} : { idle_timeout_ms }),
      closed_hint: 'create a new one',
    })
    return this.pool
  }

  async close(): Promise<void> {
    this.closed = true
    await this.pool?.close()
  }
}
