/**
 * Carries out a cluster state machine's effects in order, for a real process (a host's
 * ClusterService and the witness's shell both drive their machine through it): sends go
 * to peers, the tick timer goes on the clock, a persist is written durably BEFORE any
 * effect after it runs, and events go to the timeline. Batches run one after another.
 *
 * Persists coalesce: when several records are waiting, the newest one is written once.
 * That is safe because a record only ever grows (a newer one includes what an older one
 * promised), and it keeps fsyncs off the heartbeat path when leases renew quickly.
 */
import type { Clock } from '../clock.js'
import type { ClusterEvent, Effect, TimerToken } from '../consensus/cluster-effects.js'
import type { ClusterMessage } from '../protocol/cluster-messages.js'
import { SerialQueue } from '../serial-queue.js'

export interface EffectSinks<R> {
  clock: Clock
  send(to: string, message: ClusterMessage): void
  persist(record: R): Promise<void>
  emit(event: ClusterEvent): void
  /** The timer fired: step the state machine with it. */
  onTimer(token: TimerToken): void
  /** A persist failed: the process must not go on (it could break a promise it made). */
  onFatal(error: unknown): void
}

export interface InputBound {
  batches_max: number
  log?: { warn(o: object, msg: string): void }
}

export class EffectRunner<R> {
  private readonly queue = new SerialQueue()
  private latest: R | undefined
  private written: R | undefined
  private cancelTick: (() => void) | undefined
  private stopped = false
  private batches_queued = 0
  private inputs_dropped = 0

  /** `bound`: batches queued at most (they wait behind a persist, an fsync); see `admits`. */
  constructor(
    private readonly sinks: EffectSinks<R>,
    private readonly bound: InputBound = { batches_max: Number.MAX_SAFE_INTEGER },
  ) {}

  /** Batches queued and not yet carried out. */
  get backlog(): number {
    return this.batches_queued
  }

  /**
   * Whether the owner may step its machine with one more input. At the bound it may not:
   * a peer's message is then dropped, as a lost packet (the protocols resend what
   * matters), and a command is refused. The first drop of a run and the count of a run
   * are logged once each, not per message.
   */
  admits(): boolean {
    if (this.batches_queued < this.bound.batches_max) {
      if (this.inputs_dropped > 0)
        this.bound.log?.warn({ inputs_dropped: this.inputs_dropped }, 'inputs admitted again; the effect queue has room')
      this.inputs_dropped = 0
      return true
    }
    if (this.inputs_dropped++ === 0)
      this.bound.log?.warn(
        { batches_max: this.bound.batches_max },
        'effect queue full (its persists are slow); dropping inputs until it drains',
      )
    return false
  }

  /** Queues one step's effects; they run after every earlier batch. */
  run(effects: readonly Effect<R>[]): Promise<void> {
    for (const e of effects) if (e.kind === 'persist') this.latest = e.record
    this.batches_queued++
    return this.queue
      .run(() => this.carryOut(effects))
      .catch((e: unknown) => {
        void this.stop()
        this.sinks.onFatal(e)
      })
      .finally(() => this.batches_queued--)
  }

  /** Runs nothing more; resolves once a write under way has finished. */
  stop(): Promise<void> {
    this.stopped = true
    this.cancelTick?.()
    return this.queue.run(async () => {})
  }

  private async carryOut(effects: readonly Effect<R>[]): Promise<void> {
    for (const e of effects) {
      if (this.stopped) return
      switch (e.kind) {
        case 'persist':
          if (this.latest !== undefined && this.written !== this.latest) {
            const record = this.latest
            await this.sinks.persist(record)
            this.written = record
          }
          break
        case 'send':
          this.sinks.send(e.to, e.message)
          break
        case 'set-timer': {
          this.cancelTick?.()
          const token = e.token
          this.cancelTick = this.sinks.clock.setTimer(e.at_ms - this.sinks.clock.now(), () => {
            if (!this.stopped) this.sinks.onTimer(token)
          })
          break
        }
        case 'emit':
          this.sinks.emit(e.event)
          break
      }
    }
  }
}
