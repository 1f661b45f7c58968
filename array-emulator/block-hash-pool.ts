/**
 * A small piscina pool that hashes blocks for resync comparison, so a full resync of a
 * large volume never blocks the array's event loop (host I/O and the partner's traffic
 * keep flowing). At most `inflight_max` tasks are in the pool at once, over every caller
 * (all groups of the array share one pool); a caller beyond that waits its turn.
 *
 * Worker loading follows agent/migration/page-diff-pool.ts: a .ts worker when this module
 * is TypeScript (it inherits the parent's loader through execArgv), .js once compiled.
 */
import { Piscina } from 'piscina'
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
export const BLOCK_HASH_IDLE_TIMEOUT_MS_DEFAULT = 30_000
/** Most bytes one task may carry (the largest resync batch is 256 blocks of 1 MiB). */
export const BLOCK_HASH_TASK_BYTES_MAX = 256 * 1024 * 1024

function workerFilename(): string {
  const ext = import.meta.url.endsWith('.ts') ? '.ts' : '.js'
  return new URL(`./block-hash-worker${ext}`, import.meta.url).href
}

function checkInt(name: string, value: number, min: number, max: number): number {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new HvlabError('HVLAB_E_USAGE', `block hash pool: ${name} must be an integer ${min}–${max}, got ${value}`)
  }
  return value
}

export class BlockHashPool {
  readonly threads: number
  readonly inflight_max: number
  private readonly pool: Piscina<BlockHashTask, Uint8Array>
  private closed = false
  private inflight = 0
  private readonly slotWaiters: (() => void)[] = []
  /** Blocks hashed so far (for tests and metrics). */
  blocks_hashed_total = 0

  constructor(options: BlockHashPoolOptions = {}) {
    this.threads = checkInt('threads', options.threads ?? BLOCK_HASH_THREADS_DEFAULT, 1, BLOCK_HASH_THREADS_MAX)
    this.inflight_max = checkInt('inflight_max', options.inflight_max ?? 2 * this.threads, 1, 16 * BLOCK_HASH_THREADS_MAX)
    const idle_timeout_ms = checkInt('idle_timeout_ms', options.idle_timeout_ms ?? BLOCK_HASH_IDLE_TIMEOUT_MS_DEFAULT, 1, 24 * 3600_000)
    this.pool = new Piscina<BlockHashTask, Uint8Array>({
      filename: workerFilename(),
      // one worker stays warm (starting one costs more than a batch); the others end after idle_timeout_ms
      minThreads: 1,
      maxThreads: this.threads,
      idleTimeout: idle_timeout_ms,
      maxQueue: this.inflight_max,
      execArgv: process.execArgv,
    })
  }

  /** sha256 of each block of `data` (whole blocks), BLOCK_HASH_BYTES each, computed in a worker. */
  async hash(data: Uint8Array, block_size_bytes: number): Promise<Uint8Array> {
    if (this.closed) throw new HvlabError('HVLAB_E_STATE', 'block hash pool is closed; the array is shutting down')
    if (data.length > BLOCK_HASH_TASK_BYTES_MAX) {
      throw new HvlabError('HVLAB_E_INTERNAL', `block hash task of ${data.length} bytes is over the ${BLOCK_HASH_TASK_BYTES_MAX}-byte limit; hash in batches`)
    }
    await this.acquireSlot()
    try {
      // A copy goes to the worker (structured clone): `data` may be a view of a shared pool buffer.
      const hashes = await this.pool.run({ data, block_size_bytes })
      this.blocks_hashed_total += data.length / block_size_bytes
      return hashes
    } finally {
      this.releaseSlot()
    }
  }

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
