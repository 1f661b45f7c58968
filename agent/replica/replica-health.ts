/**
 * The health of one VM's replication (Hyper-V Replica's Normal / Warning / Critical, seed
 * 002), PURE: the log is replayed on the replica every cycle (the frequency, 30 s, 5 min
 * or 15 min). When a cycle has been missed (nothing applied for a whole cycle after the one
 * that was due) the health is Warning; when replication has still not caught up within the
 * long window (the seed's 5 minutes plus another 25 at the 5-minute frequency: the
 * frequency plus 25 minutes) it is Critical and needs someone to look. A resynchronisation
 * under way is Critical until it ends. Every interval is scaled by the lab's timeScale.
 */
import { scaled } from '../../shared/clock.js'
import { REPLICATION_FREQUENCIES_MS } from '../../shared/protocol/replica-messages.js'

export type ReplicationHealth = 'Normal' | 'Warning' | 'Critical'

/** The frequencies Replica offers. */
export { REPLICATION_FREQUENCIES_MS }
/** After the cycle that was due, how much longer replication may lag before it is Critical (seed: 25 minutes). */
export const CRITICAL_GRACE_MS = 25 * 60_000

export interface HealthThresholds {
  /** The cycle, as the lab runs it. */
  readonly frequency_ms: number
  /** Nothing applied for this long: Warning (a cycle missed). */
  readonly warning_after_ms: number
  /** Nothing applied for this long: Critical. */
  readonly critical_after_ms: number
}

/** The thresholds of a frequency, scaled by the lab's timeScale. */
export function healthThresholds(frequency_ms: number, timeScale: number): HealthThresholds {
  const frequency = scaled(frequency_ms, timeScale)
  return {
    frequency_ms: frequency,
    warning_after_ms: 2 * frequency,
    critical_after_ms: frequency + scaled(CRITICAL_GRACE_MS, timeScale),
  }
}

export interface ReplicationProgress {
  /** When the replica last applied a cycle (or finished the initial replication). */
  readonly last_applied_ms: number
  readonly resyncing: boolean
}

/** The health at `now_ms`. */
export function replicationHealth(p: ReplicationProgress, t: HealthThresholds, now_ms: number): ReplicationHealth {
  if (p.resyncing) return 'Critical'
  const lag_ms = now_ms - p.last_applied_ms
  if (lag_ms >= t.critical_after_ms) return 'Critical'
  if (lag_ms >= t.warning_after_ms) return 'Warning'
  return 'Normal'
}

/** When the health next gets worse if nothing is applied (null: it cannot: already Critical). */
export function nextHealthChangeMs(p: ReplicationProgress, t: HealthThresholds, now_ms: number): number | null {
  const h = replicationHealth(p, t, now_ms)
  if (h === 'Critical') return null
  return p.last_applied_ms + (h === 'Normal' ? t.warning_after_ms : t.critical_after_ms)
}
