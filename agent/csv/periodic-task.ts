/**
 * A task run every `interval_ms` on the process's Clock: the first run one interval after
 * the start, each next one an interval after the last one settled (runs never overlap). A
 * run that throws or rejects goes to `onError` and the loop goes on.
 */
import type { Clock } from '../../shared/clock.js'

export function every(clock: Clock, interval_ms: number, task: () => void | Promise<void>, onError: (e: unknown) => void): void {
  const run = (): void => {
    Promise.resolve()
      .then(task)
      .catch(onError)
      .finally(() => clock.setTimer(interval_ms, run))
  }
  clock.setTimer(interval_ms, run)
}
