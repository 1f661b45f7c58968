/**
 * A small piscina pool that hashes blocks for resync comparison, so a full resync of a
 * large volume never blocks the array's event loop (host I/O and the partner's traffic
 * keep flowing). At most `inflight_max` tasks are in the pool at once, over every caller
 * (all groups of the array share one pool); a caller beyond that waits its turn
 * (shared/bounded-worker-pool.ts).
 */
import { BoundedWorkerPool, workerModuleUrl, WORKER_IDLE_TIMEOUT_MS_DEFAULT } from '../shared/bounded-worker-pool.js'
import { HvlabError } from '../shared/errors.js'
import type { BlockHashTask } from './block-hash.js'

export interface BlockHashPoolOptions {
  /** Worker threads (1–BLOCK_HASH_THREADS_MAX). */
  threads?: number
  /** How long an idle worker lives; piscina's default of 0 would end it at once. */
  idle_timeout_ms?: number
  /** Tasks in the pool at once (running + queued); default 2 per thread. */
  inflight_max?: number
}

export const BLOCK_HASH_THREADS_DEFAULT = 2
export const BLOCK_HASH_THREADS_MAX = 16
export const BLOCK_HASH_IDLE_TIMEOUT_MS_DEFAULT = WORKER_IDLE_TIMEOUT_MS_DEFAULT
/** Most bytes one task may carry (the largest resync batch is 256 blocks of 1 MiB). */
export const BLOCK_HASH_TASK_BYTES_MAX = 256 * 1024 * 1024

export class BlockHashPool {
  readonly threads: number
  readonly inflight_max: number
  private readonly pool: BoundedWorkerPool<BlockHashTask, Uint8Array>
  /** Blocks hashed so far (for tests and metrics). */
  blocks_hashed_total = 0

  constructor(options: BlockHashPoolOptions = {}) {
    this.pool = new BoundedWorkerPool<BlockHashTask, Uint8Array>({
      what: 'block hash pool',
      filename: workerModuleUrl(import.meta.url, 'block-hash-worker'),
      threads: options.threads ?? BLOCK_HASH_THREADS_DEFAULT,
      threads_max: BLOCK_HASH_THREADS_MAX,
      ...(options.inflight_max === undefined ? {} : { inflight_max: options.inflight_max }),
      ...(options.idle_timeout_ms === undefined ? {} : { idle_timeout_ms: options.idle_timeout_ms }),
      closed_hint: 'the array is shutting down',
    })
    this.threads = this.pool.threads
    this.inflight_max = this.pool.inflight_max
  }

  /** sha256 of each block of `data` (whole blocks), BLOCK_HASH_BYTES each, computed in a worker. */
  async hash(data: Uint8Array, block_size_bytes: number): Promise<Uint8Array> {
    this.pool.assertOpen()
    if (data.length > BLOCK_HASH_TASK_BYTES_MAX) {
      throw new HvlabError(
        'HVLAB_E_INTERNAL',
        `block hash task of ${data.length} bytes is over the ${BLOCK_HASH_TASK_BYTES_MAX}-byte limit; hash in batches`,
      )
    }
    // A copy goes to the worker (structured clone): `data` may be a view of a shared pool buffer.
    const hashes = await this.pool.run({ data, block_size_bytes })
    this.blocks_hashed_total += data.length / block_size_bytes
    return hashes
  }

  async close(): Promise<void> {
    await this.pool.close()
  }
}
