/**
 * Health checks of a running VM role from its guest heartbeats (WSFC's LooksAlive and
 * IsAlive). Pure: the shell polls `nextCheckAt`, passes the time of the last guest
 * heartbeat it saw, and acts on the verdict.
 *
 * - LooksAlive (cheap, every 5 s): is the last heartbeat younger than
 *   `heartbeat_timeout_ms`? If not, the VM is suspect and an IsAlive is due at once.
 * - IsAlive (thorough, every 60 s, or at once and then at every LooksAlive tick while
 *   suspect): has the guest been silent for `unresponsive_after_ms`? Then it is
 *   unresponsive, and the failover policy says restart, fail over or give up.
 * A VM that just started has `boot_grace_ms` before its silence starts counting.
 */
import { scaled } from '../../shared/clock.js'
import { HvlabError } from '../../shared/errors.js'
import { decideOnFailure, type FailoverPolicy, type FailureDecision, type FailureHistory } from './failover-policy.js'

export interface HealthCheckConfig {
  looks_alive_interval_ms: number
  is_alive_interval_ms: number
  /** LooksAlive fails when the last heartbeat is older than this. */
  heartbeat_timeout_ms: number
  /** IsAlive fails when the guest has been silent this long. */
  unresponsive_after_ms: number
  /** After a start, time the guest has before its first heartbeat counts as missing. */
  boot_grace_ms: number
}

export const DEFAULT_HEALTH_CHECK: Readonly<HealthCheckConfig> = Object.freeze({
  looks_alive_interval_ms: 5_000,
  is_alive_interval_ms: 60_000,
  heartbeat_timeout_ms: 10_000,
  unresponsive_after_ms: 30_000,
  boot_grace_ms: 120_000,
})

/** Checks the settings are coherent; throws HVLAB_E_USAGE naming the one to fix. */
export function checkHealthCheckConfig(config: HealthCheckConfig): HealthCheckConfig {
  for (const [key, value] of Object.entries(config)) {
    if (!Number.isFinite(value) || value <= 0) {
      throw new HvlabError('HVLAB_E_USAGE', `health check ${key} must be a positive number of milliseconds, got ${value}`)
    }
  }
  if (config.is_alive_interval_ms < config.looks_alive_interval_ms) {
    throw new HvlabError(
      'HVLAB_E_USAGE',
      `health check is_alive_interval_ms (${config.is_alive_interval_ms}) must not be shorter than looks_alive_interval_ms (${config.looks_alive_interval_ms})`,
    )
  }
  if (config.unresponsive_after_ms < config.heartbeat_timeout_ms) {
    throw new HvlabError(
      'HVLAB_E_USAGE',
      `health check unresponsive_after_ms (${config.unresponsive_after_ms}) must not be shorter than heartbeat_timeout_ms (${config.heartbeat_timeout_ms})`,
    )
  }
  return config
}

/** The long intervals (IsAlive period, boot grace) shrunk by the lab's timeScale; heartbeat-scale ones are kept. */
export function scaledHealthCheck(config: HealthCheckConfig, timeScale: number): HealthCheckConfig {
  return {
    ...config,
    is_alive_interval_ms: Math.max(config.looks_alive_interval_ms, scaled(config.is_alive_interval_ms, timeScale)),
    boot_grace_ms: scaled(config.boot_grace_ms, timeScale),
  }
}

export interface HealthCheckState {
  readonly started_at_ms: number
  readonly next_looks_alive_ms: number
  readonly next_is_alive_ms: number
  readonly suspect: boolean
  /** Set once IsAlive failed; the checks stop until the VM is started again. */
  readonly unresponsive: boolean
}

export type HealthCheckKind = 'looks_alive' | 'is_alive'
export type HealthVerdict = 'not_due' | 'healthy' | 'suspect' | 'unresponsive'

/** The checks of a VM that started (or restarted) at now_ms. */
export function startHealthCheck(config: HealthCheckConfig, now_ms: number): HealthCheckState {
  return {
    started_at_ms: now_ms,
    next_looks_alive_ms: now_ms + config.looks_alive_interval_ms,
    next_is_alive_ms: now_ms + config.is_alive_interval_ms,
    suspect: false,
    unresponsive: false,
  }
}

/** When the shell should call `runHealthCheck` next; Infinity once unresponsive. */
export function nextCheckAt(state: HealthCheckState): number {
  if (state.unresponsive) return Infinity
  return Math.min(state.next_looks_alive_ms, state.next_is_alive_ms)
}

/**
 * Runs whichever check is due at now_ms (IsAlive wins when both are). `last_heartbeat_ms`
 * is the newest guest heartbeat seen, or null if none since the start.
 */
export function runHealthCheck(
  state: HealthCheckState,
  config: HealthCheckConfig,
  last_heartbeat_ms: number | null,
  now_ms: number,
): { state: HealthCheckState; verdict: HealthVerdict; check: HealthCheckKind | null } {
  if (state.unresponsive) return { state, verdict: 'unresponsive', check: null }
  if (now_ms < nextCheckAt(state)) return { state, verdict: 'not_due', check: null }
  const silent_ms = now_ms - heardFrom(state, config, last_heartbeat_ms)
  if (now_ms >= state.next_is_alive_ms) {
    if (silent_ms >= config.unresponsive_after_ms) {
      return { state: { ...state, suspect: true, unresponsive: true }, verdict: 'unresponsive', check: 'is_alive' }
    }
    const suspect = silent_ms > config.heartbeat_timeout_ms
    const next_is_alive_ms = suspect ? now_ms + config.looks_alive_interval_ms : now_ms + config.is_alive_interval_ms
    const next = { ...state, suspect, next_is_alive_ms, next_looks_alive_ms: now_ms + config.looks_alive_interval_ms }
    return { state: next, verdict: suspect ? 'suspect' : 'healthy', check: 'is_alive' }
  }
  const next_looks_alive_ms = now_ms + config.looks_alive_interval_ms
  if (silent_ms > config.heartbeat_timeout_ms) {
    // LooksAlive failed: IsAlive runs at once (WSFC calls IsAlive when LooksAlive fails).
    return { state: { ...state, suspect: true, next_looks_alive_ms, next_is_alive_ms: now_ms }, verdict: 'suspect', check: 'looks_alive' }
  }
  return { state: { ...state, suspect: false, next_looks_alive_ms }, verdict: 'healthy', check: 'looks_alive' }
}

export type HealthAction = { readonly action: 'none'; readonly reason: string } | FailureDecision

/** What to do about a verdict: nothing, or the failover policy's restart / failover / fail. */
export function healthAction(
  verdict: HealthVerdict,
  history: FailureHistory,
  policy: FailoverPolicy,
  vm: { node: string; node_count: number },
  now_ms: number,
): HealthAction {
  if (verdict !== 'unresponsive') return { action: 'none', reason: verdict }
  return decideOnFailure(history, policy, { ...vm, node_lost: false }, now_ms)
}

/** When the guest was last heard from; before its first heartbeat, its silence counts from the end of the boot grace. */
function heardFrom(state: HealthCheckState, config: HealthCheckConfig, last_heartbeat_ms: number | null): number {
  if (last_heartbeat_ms === null || last_heartbeat_ms < state.started_at_ms) return state.started_at_ms + config.boot_grace_ms
  return last_heartbeat_ms
}
