/**
 * Tasks run periodically on a process's Clock (a RealClock's timers are unref'd, so a
 * loop never keeps a process alive), in the two ways the lab runs them:
 * - `every`: a task that may be async, first run one interval after the start, each next
 *   one an interval after the last one settled (runs never overlap); a run that throws or
 *   rejects goes to `onError` and the loop goes on.
 * - `everyTick`: a synchronous tick, run inside the timer's callback, on the clock's grid of
 *   the interval (`nextTickAt`); a tick that throws ends the loop (the error goes to the
 *   timer's caller, as any bug does). Returns the function that cancels the next tick.
 *
 * Ticks on a grid: every tick of one interval in a process (the membership's, the roles',
 * the VM agent's) falls due at the same instant and runs in one wake-up of the event loop
 * instead of one each; an idle process's CPU follows how often it wakes. Each process's
 * grid is shifted by its own phase (`tickPhaseOf` its name), so the processes of a lab do
 * not all wake at once: 16 hosts heartbeating in the same millisecond queue up on 2 cores.
 */
import type { Clock } from './clock.js'

export function every(clock: Clock, interval_ms: number, task: () => void | Promise<void>, onError: (e: unknown) => void): void {
  const run = (): void => {
    Promise.resolve()
      .then(task)
      .catch(onError)
      .finally(() => clock.setTimer(interval_ms, run))
  }
  clock.setTimer(interval_ms, run)
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

export function everyTick(clock: Clock, interval_ms: number, tick: () => void, phase = 0): () => void {
  let cancel: () => void
  let due_ms = -Infinity
  const arm = (): void => {
    // After the tick that was due, even if the clock reads a hair earlier when it fires.
    const now_ms = clock.now()
    due_ms = nextTickAt(Math.max(now_ms, due_ms), interval_ms, phase)
    cancel = clock.setTimer(due_ms - now_ms, loop)
  }
  const loop = (): void => {
    tick()
    arm()
  }
  arm()
  return () => cancel()
}
