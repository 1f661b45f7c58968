/**
 * The one driver of the lab's state machines: it feeds a machine its inputs one at a
 * time and carries out each step's effects in order, each through the handler for its
 * kind (effect.ts). A handler that returns a promise is awaited before the next effect
 * runs, so a `persist` is durable before anything after it; a handler that returns
 * nothing lets the next effect run at once. When every handler is synchronous the
 * driver is too: `feed` has stepped the machine and carried out every effect before it
 * returns, with no event-loop turn (the deterministic simulator in test/sim relies on it).
 *
 * What differs between machines is an option, not a copy of this loop:
 * - `step_at`: 'turn' (default) steps the machine when every earlier input's effects are
 *   done (a machine whose step reads what its effects wrote); 'admission' steps it inside
 *   `feed` and only its effects wait (the cluster machines: their state is in memory, and
 *   a refusal throws to the caller at once).
 * - `defer_start`: a real process starts carrying out from the next microtask, so that
 *   inputs arriving in the same turn are stepped first and their persists coalesce.
 * - `at_once`: with step_at 'admission', effects it picks (sends that depend on no write:
 *   effect.ts `liveness`) are carried out inside `feed`, before the queue, with a handler
 *   that must not return a promise; the rest wait their turn as usual.
 * - `coalesce_persists`: a persist writes the newest record of any step admitted so far,
 *   and a persist whose record is already written is skipped. Safe only for records that
 *   only ever grow (a newer one includes what an older one promised).
 * - `bound` and `admits()`: inputs admitted and not yet carried out, at most; the owner
 *   asks `admits()` before it feeds, and drops or refuses beyond it.
 * - failures: with `onFatal`, a failed effect (a persist that could not be written) stops
 *   the driver for good; with `onFailed`, a failed step or effect is reported and the next
 *   input runs; with neither, the promise `feedSettled` returned rejects.
 */
import type { MachineEffect } from './effect.js'

/** Carries out one effect; a promise makes the driver wait for it. */
export type EffectHandler<X> = (effect: X) => void | PromiseLike<void>

/** One handler per effect kind of the machine. */
export type EffectHandlers<E extends MachineEffect> = {
  readonly [K in E['kind']]: EffectHandler<Extract<E, { readonly kind: K }>>
}

export interface InputBound {
  /** Inputs admitted and not yet carried out, at most (they wait behind a persist, an fsync). */
  batches_max: number
  log?: { warn(o: object, msg: string): void }
}

export interface MachineDriverOptions<I, E extends MachineEffect> {
  /** Steps the machine with one input (at its clock's now); returns its effects. */
  step(input: I): readonly E[]
  handlers: EffectHandlers<E>
  step_at?: 'admission' | 'turn'
  defer_start?: boolean
  coalesce_persists?: boolean
  /** With step_at 'admission': effects carried out as the machine steps, not behind the queue. */
  at_once?(effect: E): boolean
  bound?: InputBound
  /** An effect failed: nothing more runs, then or later (the process must not go on). */
  onFatal?(error: unknown): void
  /** A step or an effect failed: the rest of its effects are skipped and the next input runs. */
  onFailed?(error: unknown, input: I | undefined): void
  /** `stop()` was called: cancel what the handlers armed (timers). */
  onStop?(): void
}

/** One input (or one batch of effects) waiting; `settle` when someone waits for it. */
interface Job<I, E> {
  readonly input: I | undefined
  readonly effects: readonly E[] | undefined
  readonly settle: { resolve(): void; reject(error: unknown): void } | undefined
}

const NONE: unique symbol = Symbol('none')

export class MachineDriver<I, E extends MachineEffect> {
  private readonly jobs: Job<I, E>[] = []
  private busy = false
  private stopped = false
  private under_way: Promise<void> = Promise.resolve()
  private queued = 0
  private inputs_dropped = 0
  private latest: unknown = NONE
  private written: unknown = NONE

  constructor(private readonly o: MachineDriverOptions<I, E>) {}

  /** Inputs admitted and not yet carried out. */
  get backlog(): number {
    return this.queued
  }

  /**
   * Whether the owner may feed one more input. At the bound it may not: a peer's message
   * is then dropped, as a lost packet (the protocols resend what matters), and a command
   * is refused. The first drop of a run and the count of a run are logged once each.
   */
  admits(): boolean {
    const bound = this.o.bound
    if (bound === undefined || this.queued < bound.batches_max) {
      if (this.inputs_dropped > 0)
        bound?.log?.warn({ inputs_dropped: this.inputs_dropped }, 'inputs admitted again; the effect queue has room')
      this.inputs_dropped = 0
      return true
    }
    if (this.inputs_dropped++ === 0)
      bound.log?.warn({ batches_max: bound.batches_max }, 'effect queue full (its persists are slow); dropping inputs until it drains')
    return false
  }

  /**
   * Feeds one input, nobody waiting: a failure goes to onFatal or onFailed (without
   * either it is thrown to whoever runs the queue). With step_at 'admission' a step that
   * throws (a refusal) throws here, before anything is queued.
   */
  feed(input: I): void {
    if (this.stopped) return
    if (this.o.step_at !== 'admission') return this.enqueue(input, undefined, undefined)
    const effects = this.runAtOnce(this.o.step(input))
    this.notePersists(effects)
    this.enqueue(undefined, effects, undefined)
  }

  /** Carries out the effects `at_once` picks (synchronously); returns the others, in order. */
  private runAtOnce(effects: readonly E[]): readonly E[] {
    const pick = this.o.at_once
    if (pick === undefined || !effects.some(pick)) return effects
    const rest: E[] = []
    for (const e of effects) {
      if (!pick(e)) {
        rest.push(e)
        continue
      }
      const handler = this.o.handlers[e.kind as E['kind']] as EffectHandler<E>
      void handler(e)
    }
    return rest
  }

  /** Feeds one input; the promise settles when its effects are done, or rejects with its failure (see options). */
  feedSettled(input: I): Promise<void> {
    if (this.stopped) return Promise.resolve()
    if (this.o.step_at === 'admission') return this.run(this.runAtOnce(this.o.step(input)))
    return this.enqueueSettled(input, undefined)
  }

  /** Carries out effects the owner got from the machine itself (its `start`), after every earlier input's. */
  run(effects: readonly E[]): Promise<void> {
    if (this.stopped) return Promise.resolve()
    this.notePersists(effects)
    return this.enqueueSettled(undefined, effects)
  }

  /** Runs nothing more; resolves once an effect under way (a write) has finished. */
  stop(): Promise<void> {
    this.stopped = true
    this.o.onStop?.()
    return this.under_way
  }

  /** Enqueues outside the promise's executor, so that an error of a synchronous drain reaches the caller. */
  private enqueueSettled(input: I | undefined, effects: readonly E[] | undefined): Promise<void> {
    let settle!: Job<I, E>['settle']
    const done = new Promise<void>((resolve, reject) => (settle = { resolve, reject }))
    this.enqueue(input, effects, settle)
    return done
  }

  private enqueue(input: I | undefined, effects: readonly E[] | undefined, settle: Job<I, E>['settle']): void {
    this.queued++
    this.jobs.push({ input, effects, settle })
    if (this.busy) return
    this.busy = true
    if (this.o.defer_start) queueMicrotask(() => this.drain())
    else this.drain()
  }

  /** Runs the jobs waiting, synchronously until a handler makes it wait. An error here (onFatal threw) goes to the caller. */
  private drain(): void {
    try {
      for (let job = this.jobs.shift(); job !== undefined; job = this.jobs.shift()) {
        const pending = this.runJob(job)
        if (pending !== undefined) {
          this.under_way = pending.then(() => this.drain())
          return
        }
      }
    } catch (e) {
      this.busy = false
      throw e
    }
    this.busy = false
  }

  /** Steps (in turn) and carries out one job; a promise when a handler made it wait. */
  private runJob(job: Job<I, E>): Promise<void> | undefined {
    let pending: Promise<void> | undefined
    try {
      if (this.stopped) return void this.settle(job)
      const effects = job.effects ?? this.stepInTurn(job.input as I)
      pending = this.carryOut(effects, 0)
    } catch (e) {
      return void this.fail(job, e)
    }
    if (pending === undefined) return void this.settle(job)
    return pending.then(
      () => this.settle(job),
      (e: unknown) => this.fail(job, e),
    )
  }

  private stepInTurn(input: I): readonly E[] {
    const effects = this.o.step(input)
    this.notePersists(effects)
    return effects
  }

  private carryOut(effects: readonly E[], from: number): Promise<void> | undefined {
    for (let i = from; i < effects.length; i++) {
      if (this.stopped) return undefined
      const r = this.carryOutOne(effects[i]!)
      if (isThenable(r)) return Promise.resolve(r).then(() => this.carryOut(effects, i + 1))
    }
    return undefined
  }

  private carryOutOne(effect: E): void | PromiseLike<void> {
    const handler = (this.o.handlers as unknown as Record<string, EffectHandler<E> | undefined>)[effect.kind]
    if (handler === undefined) throw new Error(`no handler for effect kind ${effect.kind}`)
    if (effect.kind !== 'persist' || !this.o.coalesce_persists) return handler(effect)
    if (this.latest === NONE || this.latest === this.written) return
    const record = this.latest
    const r = handler((effect as unknown as { record: unknown }).record === record ? effect : { ...effect, record })
    if (!isThenable(r)) {
      this.written = record
      return
    }
    return Promise.resolve(r).then(() => {
      this.written = record
    })
  }

  private notePersists(effects: readonly E[]): void {
    if (!this.o.coalesce_persists) return
    for (const e of effects) if (e.kind === 'persist') this.latest = (e as unknown as { record: unknown }).record
  }

  private settle(job: Job<I, E>): void {
    this.queued--
    job.settle?.resolve()
  }

  private fail(job: Job<I, E>, error: unknown): void {
    this.queued--
    if (this.o.onFatal) {
      void this.stop()
      this.o.onFatal(error)
      job.settle?.resolve()
    } else if (this.o.onFailed) {
      this.o.onFailed(error, job.input)
      job.settle?.resolve()
    } else if (job.settle) job.settle.reject(error)
    else throw error
  }
}

function isThenable(r: unknown): r is PromiseLike<void> {
  return typeof r === 'object' && r !== null && typeof (r as { then?: unknown }).then === 'function'
}
