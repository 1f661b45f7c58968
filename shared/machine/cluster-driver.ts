/**
 * The MachineDriver set up for the cluster state machines — a host's Membership and the
 * witness's Arbiter — in a real process (ClusterService, the witness's shell) and in the
 * simulator (test/sim/network.ts) alike: sends go to peers, the one tick timer is re-armed
 * by each set-timer (the one before is cancelled), a persist is written BEFORE any effect
 * after it runs, and events go to the timeline. A failed effect is fatal.
 *
 * The machine steps as soon as an input is admitted; only its effects wait, except its
 * `liveness` sends (heartbeats, lease requests, grants and acks that claim no write),
 * which leave at once: a host whose fsync is slow still heartbeats and renews. Persists
 * coalesce: when several records are waiting, the newest one is written once. That is
 * safe because a record only ever grows (a newer one includes what an older one
 * promised), and it keeps fsyncs off the heartbeat path when leases renew quickly.
 */
import type { Clock } from '../clock.js'
import type { ClusterEvent, ClusterInput, Effect, TimerToken } from '../consensus/cluster-effects.js'
import type { ClusterMessage } from '../protocol/cluster-messages.js'
import { MachineDriver, type InputBound } from './driver.js'
import { TimerSlot } from './timer-slot.js'

export interface ClusterSinks<R> {
  /** Calls `fn` at `at_ms` on the machine's clock; returns a cancel function (see `timerOn`). */
  armTimer(at_ms: number, fn: () => void): () => void
  send(to: string, message: ClusterMessage): void
  /** Durable when it resolves (or at once, when it returns nothing: the simulator). */
  persist(record: R): void | Promise<void>
  emit(event: ClusterEvent): void
  /** The timer fired: step the state machine with it. */
  onTimer(token: TimerToken): void
  /** An effect failed (a persist): the process must not go on (it could break a promise it made). */
  onFatal(error: unknown): void
}

export interface ClusterDriverOptions {
  bound?: InputBound
  /** A real process: effects start from the next microtask (see driver.ts). The simulator leaves it off. */
  defer_start?: boolean
}

export type ClusterDriver<R> = MachineDriver<ClusterInput, Effect<R>>

/** `armTimer` on a Clock. */
export function timerOn(clock: Clock): (at_ms: number, fn: () => void) => () => void {
  return (at_ms, fn) => clock.setTimer(at_ms - clock.now(), fn)
}

export function clusterDriver<R>(
  step: (input: ClusterInput) => readonly Effect<R>[],
  sinks: ClusterSinks<R>,
  options: ClusterDriverOptions = {},
): ClusterDriver<R> {
  const tick = new TimerSlot(sinks.armTimer)
  return new MachineDriver<ClusterInput, Effect<R>>({
    step,
    step_at: 'admission',
    coalesce_persists: true,
    at_once: (e) => e.kind === 'send' && e.liveness === true,
    ...(options.defer_start === true ? { defer_start: true } : {}),
    ...(options.bound ? { bound: options.bound } : {}),
    handlers: {
      send: (e) => sinks.send(e.to, e.message),
      'set-timer': (e) => tick.set(e.at_ms, () => sinks.onTimer(e.token)),
      persist: (e) => sinks.persist(e.record),
      emit: (e) => sinks.emit(e.event),
    },
    onFatal: (e) => sinks.onFatal(e),
    onStop: () => tick.cancel(),
  })
}
