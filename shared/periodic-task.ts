/**
 * Tasks run periodically on a process's Clock (a RealClock's timers are unref'd, so a
 * loop never keeps a process alive), in the two ways the lab runs them:
 * - `every`: a task that may be async, run at the grid instants of its interval (`nextTickAt`),
 *   first at the next one after the start, each next one at the first after the last run
 *   settled (runs never overlap: a run that overruns skips grid instants); a run that throws
 *   or rejects goes to `onError` and the loop goes on.
 * - `everyTick`: a synchronous tick, run inside the timer's callback, on the clock's grid of
 *   the interval (`nextTickAt`); a tick that throws ends the loop (the error goes to the
 *   timer's caller, as any bug does). Returns the function that cancels the next tick.
 *
 * Ticks on a grid: every periodic task of a process (the membership's, the roles' and the
 * VM agent's ticks, the CSV checks, the transport's liveness probe) falls due on one grid
 * and runs in one wake-up of the event loop instead of one each; an idle process's CPU
 * follows how often it wakes (a wake-up of a cold process costs about 0.5 ms of CPU on the
 * project's machine, whatever little it then does). A task of a longer interval that is a
 * multiple of the tick lands on ticks: its grid is shifted by the same offset in ms
 * (`gridPhase`). Each process's grid is shifted by its own phase (`tickPhaseOf` its name),
 * so the processes of a lab do not all wake at once: 16 hosts heartbeating in the same
 * millisecond queue up on 2 cores.
 */
import type { Clock } from './clock.js'

/** Runs `task` on the grid of `interval_ms` shifted by `offset_ms`; see the file's comment. */
export function every(
  clock: Clock,
  interval_ms: number,
  task: () => void | Promise<void>,
  onError: (e: unknown) => void,
  offset_ms = 0,
): void {
  const next = gridTimer(clock, interval_ms, gridPhase(offset_ms, interval_ms))
  const run = (): void => {
    Promise.resolve()
      .then(task)
      .catch(onError)
      .finally(() => next(run))
  }
  next(run)
}

/** The phase (a fraction of `interval_ms`) of the grid shifted by `offset_ms`: ticks of a shorter interval that divides it fall on it. */
export function gridPhase(offset_ms: number, interval_ms: number): number {
  return (((offset_ms % interval_ms) + interval_ms) % interval_ms) / interval_ms
}

/**
 * Where in each interval a process named `name` ticks, as a fraction in [0, 1): FNV-1a of
 * the name, then murmur3's finaliser, so names that differ in their last letter spread too.
 */
export function tickPhaseOf(name: string): number {
  let h = 0x811c9dc5
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193)
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b)
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35)
  return ((h ^ (h >>> 16)) >>> 0) / 2 ** 32
}

/** The first instant strictly after `now_ms` on the grid of `interval_ms` shifted by `phase` of it. */
export function nextTickAt(now_ms: number, interval_ms: number, phase = 0): number {
  const offset_ms = phase * interval_ms
  return (Math.floor((now_ms - offset_ms) / interval_ms) + 1) * interval_ms + offset_ms
}

/** Ticks `tick` on the grid; the function it returns cancels the next tick, also from inside a tick. */
export function everyTick(clock: Clock, interval_ms: number, tick: () => void, phase = 0): () => void {
  const next = gridTimer(clock, interval_ms, phase)
  let stopped = false
  const loop = (): void => {
    tick()
    if (!stopped) cancel = next(loop)
  }
  let cancel = next(loop)
  return () => {
    stopped = true
    cancel()
  }
}

/** Sets each function it is given for the first grid instant after now and after the instant it last set. */
function gridTimer(clock: Clock, interval_ms: number, phase: number): (fn: () => void) => () => void {
  let due_ms = -Infinity
  return (fn) => {
    // After the instant that was due, even if the clock reads a hair earlier when it fires.
    const now_ms = clock.now()
    due_ms = nextTickAt(Math.max(now_ms, due_ms), interval_ms, phase)
    return clock.setTimer(due_ms - now_ms, fn)
  }
}
