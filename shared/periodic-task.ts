/**
 * Tasks run periodically on a process's Clock (a RealClock's timers are unref'd, so a
 * loop never keeps a process alive), in the two ways the lab runs them:
 * - `every`: a task that may be async, first run one interval after the start, each next
 *   one an interval after the last one settled (runs never overlap); a run that throws or
 *   rejects goes to `onError` and the loop goes on.
 * - `everyTick`: a synchronous tick, run inside the timer's callback, the next one armed
 *   an interval after it returns; a tick that throws ends the loop (the error goes to the
 *   timer's caller, as any bug does). Returns the function that cancels the next tick.
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

export function everyTick(clock: Clock, interval_ms: number, tick: () => void): () => void {
  let cancel: () => void
  const loop = (): void => {
    tick()
    cancel = clock.setTimer(interval_ms, loop)
  }
  cancel = clock.setTimer(interval_ms, loop)
  return () => cancel()
}
