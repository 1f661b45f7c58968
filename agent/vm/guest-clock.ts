/**
 * The clock a host's guests run on: the host's clock, but every guest timer (heartbeat,
 * memory workload, disk writes) first runs `gate` — the VM agent's lease check — and is
 * dropped when the gate stopped its VM. A host woken from a pause (SIGSTOP) runs all its
 * overdue timers at once, in the order they fell due: with this, the first guest timer to
 * fire stops the host's VMs if its lease ran out while it slept, so no guest runs a single
 * step on a lapsed lease, whatever the order of the host's own timers.
 */
import type { Clock } from '../../shared/clock.js'

export function gatedClock(clock: Clock, gate: () => void): Clock {
  return {
    now: () => clock.now(),
    setTimer(delay_ms: number, fn: () => void): () => void {
      let cancelled = false
      const cancel = clock.setTimer(delay_ms, () => {
        gate()
        if (!cancelled) fn()
      })
      return () => {
        cancelled = true
        cancel()
      }
    },
  }
}
