/**
 * A piscina pool with a bound on the tasks in it at once (running + queued), counted over
 * every caller: a caller beyond `inflight_max` waits for a slot, so neither piscina's queue
 * nor the data waiting for it grows without bound. The page-diff pool of live migration
 * and the block-hash pool of array resync are both one of these.
 *
 * Worker loading: the worker is a TypeScript file when the module that names it is (tap's
 * TypeScript loader runs the sources in unit tests), and the worker's bundle in dist/ when
 * the module is a bundle there (every lab process: scripts/build/build.mjs). Workers get
 * the parent's `process.execArgv`, which carries tap's loader, so a .ts worker loads the
 * same way the parent's modules did.
 */
import { workerExecArgv } from './lab-runtime.js'
import { Piscina } from 'piscina'
import { HvlabError } from './errors.js'

export const WORKER_IDLE_TIMEOUT_MS_DEFAULT = 30_000

export interface BoundedWorkerPoolOptions {
  /** What the pool is for, in error messages ("page diff pool"). */
  what: string
  /** The worker module, from workerModuleUrl(). */
  filename: string
  threads: number
  threads_max: number
  /** Tasks in the pool at once; default 2 per thread. */
  inflight_max?: number
  /** How long an idle worker lives; piscina's default of 0 would end it at once. */
  idle_timeout_ms?: number
  /** Why run() refuses once closed (what to do instead). */
  closed_hint: string
}

/** The URL of worker `basename` next to the module at `module_url`, .ts or .js like it. */
export function workerModuleUrl(module_url: string, basename: string): string {
  const ext = module_url.endsWith('.ts') ? '.ts' : '.js'
  return new URL(`./${basename}${ext}`, module_url).href
}

export function checkPoolInt(what: string, name: string, value: number, min: number, max: number): number {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new HvlabError('HVLAB_E_USAGE', `${what}: ${name} must be an integer ${min}–${max}, got ${value}`)
  }
  return value
}

export class BoundedWorkerPool<Task, Result> {
  readonly threads: number
  readonly inflight_max: number
  private readonly pool: Piscina<Task, Result>
  private closed = false
  /** Tasks in the pool now, over every caller. */
  private inflight = 0
  private readonly slotWaiters: (() => void)[] = []

  constructor(private readonly options: BoundedWorkerPoolOptions) {
    const { what } = options
    this.threads = checkPoolInt(what, 'threads', options.threads, 1, options.threads_max)
    this.inflight_max = checkPoolInt(what, 'inflight_max', options.inflight_max ?? 2 * this.threads, 1, 16 * options.threads_max)
    const idle_timeout_ms = checkPoolInt(
      what,
      'idle_timeout_ms',
      options.idle_timeout_ms ?? WORKER_IDLE_TIMEOUT_MS_DEFAULT,
      1,
      24 * 3600_000,
    )
    this.pool = new Piscina<Task, Result>({
      filename: options.filename,
      // one worker stays warm (starting one costs more than a task); the others start
      // under load and end after idle_timeout_ms
      minThreads: 1,
      maxThreads: this.threads,
      idleTimeout: idle_timeout_ms,
      // inflight_max already bounds what is submitted; this is the backstop.
      maxQueue: this.inflight_max,
      // A worker refuses process-wide options such as the lab's --expose-gc (shared/lab-runtime.ts).
      execArgv: workerExecArgv(process.execArgv),
    })
  }

  get isClosed(): boolean {
    return this.closed
  }

  /** Runs one task in a worker once a slot is free; `transfer` lists buffers of the task moved to the worker, not copied. */
  async run(task: Task, transfer?: ArrayBuffer[]): Promise<Result> {
    this.assertOpen()
    await this.acquireSlot()
    try {
      return await this.pool.run(task, transfer === undefined ? undefined : { transferList: transfer })
    } finally {
      this.releaseSlot()
    }
  }

  assertOpen(): void {
    if (this.closed) throw new HvlabError('HVLAB_E_STATE', `${this.options.what} is closed; ${this.options.closed_hint}`)
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
