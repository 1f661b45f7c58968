/**
 * The failover policy of a role (WSFC defaults): when a role fails on a node, restart it
 * there up to `restarts_max` times within `restart_period_ms`; after that fail it over to
 * another node, at most `failovers_max` times (default nodes − 1) within
 * `failover_period_ms`; after that the role is failed, and tried again
 * `retry_period_on_failure_ms` later. Each restart or failover after a failure on a live
 * node waits `restart_delay_ms` first. Failback to a preferred owner is allowed only
 * inside its window of hours. Pure: times are inputs.
 */
import { scaled } from '../../shared/clock.js'
import { HvlabError } from '../../shared/errors.js'

export interface FailoverPolicy {
  /** Restarts on the same node within `restart_period_ms` before failing over. */
  restarts_max: number
  restart_period_ms: number
  /** Failovers within `failover_period_ms`; null = nodes − 1 (WSFC's default). */
  failovers_max: number | null
  failover_period_ms: number
  /**
   * WSFC RestartDelay: after a failure on a node that is still up (a crash, a failed
   * health check, a start the node or its storage refused), the restart or failover waits
   * this long, so a start refused at once cannot spend the whole budget in a tight loop.
   * A failover from a node that is down does not wait.
   */
  restart_delay_ms: number
  /** WSFC RetryPeriodOnFailure: a role the policy failed is placed again this long after it failed. */
  retry_period_on_failure_ms: number
}

const MINUTE_MS = 60_000
const HOUR_MS = 60 * MINUTE_MS

export const DEFAULT_FAILOVER_POLICY: Readonly<FailoverPolicy> = Object.freeze({
  restarts_max: 3,
  restart_period_ms: 15 * MINUTE_MS,
  failovers_max: null,
  failover_period_ms: 6 * HOUR_MS,
  restart_delay_ms: 500,
  retry_period_on_failure_ms: HOUR_MS,
})

/** Upper bound on restarts_max/failovers_max, which also bounds each history list. */
export const POLICY_COUNT_MAX = 1000

/** The policy with its long periods shrunk by the lab's timeScale. */
export function scaledFailoverPolicy(policy: FailoverPolicy, timeScale: number): FailoverPolicy {
  return {
    ...policy,
    restart_period_ms: scaled(policy.restart_period_ms, timeScale),
    failover_period_ms: scaled(policy.failover_period_ms, timeScale),
    retry_period_on_failure_ms: scaled(policy.retry_period_on_failure_ms, timeScale),
  }
}

/** Throws HVLAB_E_USAGE naming the bad setting. */
export function checkFailoverPolicy(policy: FailoverPolicy): FailoverPolicy {
  const counts: Array<[string, number | null]> = [
    ['restarts_max', policy.restarts_max],
    ['failovers_max', policy.failovers_max],
  ]
  for (const [key, value] of counts) {
    if (value === null && key === 'failovers_max') continue
    if (!Number.isInteger(value) || (value as number) < 0 || (value as number) > POLICY_COUNT_MAX) {
      throw new HvlabError('HVLAB_E_USAGE', `failover policy ${key} must be a whole number from 0 to ${POLICY_COUNT_MAX}, got ${value}`)
    }
  }
  for (const key of ['restart_period_ms', 'failover_period_ms', 'retry_period_on_failure_ms'] as const) {
    const value = policy[key]
    if (!Number.isFinite(value) || value <= 0) {
      throw new HvlabError('HVLAB_E_USAGE', `failover policy ${key} must be a positive number of milliseconds, got ${value}`)
    }
  }
  if (!Number.isFinite(policy.restart_delay_ms) || policy.restart_delay_ms < 0) {
    throw new HvlabError(
      'HVLAB_E_USAGE',
      `failover policy restart_delay_ms must be zero or more milliseconds, got ${policy.restart_delay_ms}`,
    )
  }
  return policy
}

/** What happened recently to one role. Lists are pruned to their window and bounded. */
export interface FailureHistory {
  readonly restarts: ReadonlyArray<{ readonly node: string; readonly at_ms: number }>
  readonly failovers_ms: readonly number[]
}

export const EMPTY_HISTORY: FailureHistory = Object.freeze({ restarts: [], failovers_ms: [] })

export type FailureDecision =
  | { readonly action: 'restart'; readonly node: string; readonly reason: string }
  | { readonly action: 'failover'; readonly reason: string }
  | { readonly action: 'fail'; readonly reason: string }

/** How many failovers the policy allows in its period for a cluster of `node_count` nodes. */
export function failoversAllowed(policy: FailoverPolicy, node_count: number): number {
  return policy.failovers_max ?? Math.max(0, node_count - 1)
}

/** Restarts on `node` inside the window ending at now_ms (window is (now − period, now]). */
export function restartsInWindow(history: FailureHistory, policy: FailoverPolicy, node: string, now_ms: number): number {
  return history.restarts.filter((r) => r.node === node && r.at_ms > now_ms - policy.restart_period_ms).length
}

export function failoversInWindow(history: FailureHistory, policy: FailoverPolicy, now_ms: number): number {
  return history.failovers_ms.filter((at) => at > now_ms - policy.failover_period_ms).length
}

/**
 * The role failed on `node` (unresponsive, crashed, or would not start): restart it there,
 * fail it over, or give up. `node_lost` = the node itself is down, so restarting there is
 * impossible and the decision is between failover and fail.
 */
export function decideOnFailure(
  history: FailureHistory,
  policy: FailoverPolicy,
  failure: { node: string; node_count: number; node_lost: boolean },
  now_ms: number,
): FailureDecision {
  const restarts = restartsInWindow(history, policy, failure.node, now_ms)
  if (!failure.node_lost && restarts < policy.restarts_max) {
    return {
      action: 'restart',
      node: failure.node,
      reason: `restart ${restarts + 1} of ${policy.restarts_max} on ${failure.node} within ${minutes(policy.restart_period_ms)}`,
    }
  }
  const allowed = failoversAllowed(policy, failure.node_count)
  const failovers = failoversInWindow(history, policy, now_ms)
  const why = failure.node_lost
    ? `${failure.node} is down`
    : `${restarts} restarts on ${failure.node} within ${minutes(policy.restart_period_ms)}`
  if (failovers < allowed) {
    return { action: 'failover', reason: `${why}; failover ${failovers + 1} of ${allowed} within ${hours(policy.failover_period_ms)}` }
  }
  return {
    action: 'fail',
    reason: `${why}, and it already failed over ${failovers} times within ${hours(policy.failover_period_ms)} (limit ${allowed}); start it again by hand once the cause is fixed`,
  }
}

/** The history after a decision was carried out at now_ms (old entries pruned). */
export function recordDecision(history: FailureHistory, policy: FailoverPolicy, decision: FailureDecision, now_ms: number): FailureHistory {
  const restarts = history.restarts.filter((r) => r.at_ms > now_ms - policy.restart_period_ms)
  const failovers_ms = history.failovers_ms.filter((at) => at > now_ms - policy.failover_period_ms)
  if (decision.action === 'restart') restarts.push({ node: decision.node, at_ms: now_ms })
  if (decision.action === 'failover') failovers_ms.push(now_ms)
  // Bounded: a decision only records while under its limit, and limits are ≤ POLICY_COUNT_MAX.
  return {
    restarts: restarts.slice(-(POLICY_COUNT_MAX * 64)),
    failovers_ms: failovers_ms.slice(-POLICY_COUNT_MAX),
  }
}

/**
 * True if `hour_of_day` (0–23, local time of the cluster) is inside the failback window
 * [start_hour, end_hour); a window may wrap midnight (22 → 6). null = any hour.
 */
export function inFailbackWindow(window: { start_hour: number; end_hour: number } | null, hour_of_day: number): boolean {
  if (!Number.isInteger(hour_of_day) || hour_of_day < 0 || hour_of_day > 23) {
    throw new HvlabError('HVLAB_E_INTERNAL', `hour_of_day must be a whole hour 0–23, got ${hour_of_day}`)
  }
  if (window === null) return true
  const { start_hour, end_hour } = window
  if (start_hour < end_hour) return hour_of_day >= start_hour && hour_of_day < end_hour
  return hour_of_day >= start_hour || hour_of_day < end_hour
}

/** A policy's interval for people: "15 min", "2.5 s", "1 h". */
export function policyInterval(ms: number): string {
  return hours(ms)
}

function minutes(ms: number): string {
  return ms >= MINUTE_MS ? `${Math.round(ms / MINUTE_MS)} min` : `${Math.round(ms / 100) / 10} s`
}

function hours(ms: number): string {
  const h = ms / HOUR_MS
  return h >= 1 ? `${Math.round(h * 10) / 10} h` : minutes(ms)
}

/**
 * The cluster's policy with a role's own failover threshold and period (WSFC group
 * properties), where it has them; the role's period is scaled by the lab's timeScale, as
 * the cluster's own periods are (scaledFailoverPolicy).
 */
export function rolePolicy(
  policy: FailoverPolicy,
  role: { failover_threshold?: number | null; failover_period_h?: number },
  timeScale = 1,
): FailoverPolicy {
  return {
    ...policy,
    ...(role.failover_threshold != null ? { failovers_max: role.failover_threshold } : {}),
    ...(role.failover_period_h !== undefined ? { failover_period_ms: scaled(role.failover_period_h * HOUR_MS, timeScale) } : {}),
  }
}
