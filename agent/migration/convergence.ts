/**
 * The pre-copy convergence policy: after each round, switch over, go again, or go again
 * with the guest throttled harder. Pure: numbers in, a decision out.
 *
 * - Switch over when the pages still dirty would cross the link within the downtime
 *   budget at the measured bandwidth (QEMU's default budget is 300 ms; ours is 100 ms),
 *   unless another round still pays (Xen's pre-copy, Clark et al. 2005, iterates while the
 *   dirty set shrinks): while the guest dirties at most half as fast as the link, a round
 *   leaves at most half the pages, so while the copy is above a tenth of the budget, one
 *   more round halves the blackout for about that copy's time with the guest running.
 *   QEMU switches at the first fit, so its blackout fills the budget; the client sees it.
 * - Switch over anyway once the round cap is reached (Hyper-V 2008 R2 stops after 10
 *   passes): the blackout is then longer than the budget, and the decision says by how
 *   much.
 * - Auto-converge (QEMU): from the second round on, when the guest dirties memory at
 *   least `throttle_trigger_ratio` of the link's bandwidth (QEMU's
 *   throttle-trigger-threshold is 50%), slow the guest: 20% first, then +10% per
 *   step, at most 99%.
 */
import { HvlabError } from '../../shared/errors.js'
import { PAGE_SIZE_BYTES } from '../../shared/protocol/page-size.js'

export interface ThrottlePolicy {
  /** Dirty rate / bandwidth at or above which the guest is throttled. */
  readonly throttle_trigger_ratio: number
  readonly throttle_initial_pct: number
  readonly throttle_step_pct: number
  readonly throttle_max_pct: number
  /** Fixed cost of the switch-over (pause, device state, resume) added to the blackout. */
  readonly switchover_overhead_ms: number
  /** A copy expected within this fraction of the budget is small enough: switch over. */
  readonly settle_fraction: number
  /** Another round is worth it while dirty rate / bandwidth is at most this (the round leaves at most this share of the pages). */
  readonly shrink_ratio_max: number
}

export const DEFAULT_THROTTLE_POLICY: ThrottlePolicy = {
  throttle_trigger_ratio: 0.5,
  throttle_initial_pct: 20,
  throttle_step_pct: 10,
  throttle_max_pct: 99,
  switchover_overhead_ms: 0,
  settle_fraction: 0.1,
  shrink_ratio_max: 0.5,
}

export const DOWNTIME_BUDGET_MS_DEFAULT = 100
export const ROUND_CAP_DEFAULT = 10

export interface ConvergenceInput {
  /** Pre-copy rounds completed so far (the first full pass is round 1). */
  readonly round: number
  readonly remaining_dirty_pages: number
  /** Measured over the last round. */
  readonly bandwidth_bytes_per_s: number
  /** Measured over the last round, with the current throttle applied. */
  readonly dirty_rate_bytes_per_s: number
  readonly downtime_budget_ms: number
  readonly round_cap: number
  /** 0 when the guest is not throttled. */
  readonly throttle_pct: number
}

export type ConvergenceDecision =
  | { readonly action: 'switch_over'; readonly reason: 'fits_budget' | 'round_cap'; readonly expected_blackout_ms: number }
  | { readonly action: 'next_round'; readonly throttle_pct: number; readonly expected_blackout_ms: number }
  | { readonly action: 'throttle'; readonly throttle_pct: number; readonly expected_blackout_ms: number }

function check(name: string, value: number, ok: boolean): void {
  if (!ok) throw new HvlabError('HVLAB_E_INTERNAL', `convergence policy: ${name} of ${value} is not valid`)
}

function checkInput(input: ConvergenceInput, policy: ThrottlePolicy): void {
  const finiteNonNeg = (v: number): boolean => Number.isFinite(v) && v >= 0
  check('round', input.round, Number.isInteger(input.round) && input.round >= 1)
  check(
    'remaining_dirty_pages',
    input.remaining_dirty_pages,
    Number.isInteger(input.remaining_dirty_pages) && input.remaining_dirty_pages >= 0,
  )
  check('bandwidth_bytes_per_s', input.bandwidth_bytes_per_s, finiteNonNeg(input.bandwidth_bytes_per_s))
  check('dirty_rate_bytes_per_s', input.dirty_rate_bytes_per_s, finiteNonNeg(input.dirty_rate_bytes_per_s))
  check('downtime_budget_ms', input.downtime_budget_ms, Number.isFinite(input.downtime_budget_ms) && input.downtime_budget_ms > 0)
  check('round_cap', input.round_cap, Number.isInteger(input.round_cap) && input.round_cap >= 1)
  check('throttle_pct', input.throttle_pct, finiteNonNeg(input.throttle_pct) && input.throttle_pct <= policy.throttle_max_pct)
}

/** How long sending `pages` takes at `bandwidth_bytes_per_s`, plus the fixed overhead. */
export function expectedBlackoutMs(pages: number, bandwidth_bytes_per_s: number, overhead_ms = 0): number {
  if (pages === 0) return overhead_ms
  if (bandwidth_bytes_per_s <= 0) return Number.POSITIVE_INFINITY
  return overhead_ms + ((pages * PAGE_SIZE_BYTES) / bandwidth_bytes_per_s) * 1000
}

/** The next auto-converge step: 0 → initial, then +step, capped at max. */
export function nextThrottlePct(current_pct: number, policy: ThrottlePolicy = DEFAULT_THROTTLE_POLICY): number {
  if (current_pct <= 0) return policy.throttle_initial_pct
  return Math.min(policy.throttle_max_pct, current_pct + policy.throttle_step_pct)
}

/** What decides whether a blackout that fits the budget is taken now: the shape of the next round. */
export interface SettleInput {
  /** The remaining copy alone, without the fixed overhead. */
  readonly copy_ms: number
  readonly dirty_rate_bytes_per_s: number
  readonly bandwidth_bytes_per_s: number
  readonly downtime_budget_ms: number
}

/**
 * True when a blackout that fits the budget should be taken now: its copy is already within
 * settle_fraction of the budget, or another round would not shrink it to shrink_ratio_max
 * or less (the guest dirties too fast for that). Shared with the pre-copy model.
 */
export function settled(
  s: SettleInput,
  policy: Pick<ThrottlePolicy, 'settle_fraction' | 'shrink_ratio_max'> = DEFAULT_THROTTLE_POLICY,
): boolean {
  if (s.copy_ms <= policy.settle_fraction * s.downtime_budget_ms) return true
  return s.bandwidth_bytes_per_s <= 0 || s.dirty_rate_bytes_per_s > policy.shrink_ratio_max * s.bandwidth_bytes_per_s
}

export function decideConvergence(input: ConvergenceInput, policy: ThrottlePolicy = DEFAULT_THROTTLE_POLICY): ConvergenceDecision {
  checkInput(input, policy)
  const expected_blackout_ms = expectedBlackoutMs(input.remaining_dirty_pages, input.bandwidth_bytes_per_s, policy.switchover_overhead_ms)
  const at_cap = input.round >= input.round_cap
  if (expected_blackout_ms <= input.downtime_budget_ms) {
    const copy_ms = expected_blackout_ms - policy.switchover_overhead_ms
    if (at_cap || settled({ ...input, copy_ms }, policy)) return { action: 'switch_over', reason: 'fits_budget', expected_blackout_ms }
    return { action: 'next_round', throttle_pct: input.throttle_pct, expected_blackout_ms }
  }
  if (at_cap) return { action: 'switch_over', reason: 'round_cap', expected_blackout_ms }
  const rate_high =
    input.dirty_rate_bytes_per_s > 0 && input.dirty_rate_bytes_per_s >= policy.throttle_trigger_ratio * input.bandwidth_bytes_per_s
  if (input.round >= 2 && rate_high && input.throttle_pct < policy.throttle_max_pct) {
    return { action: 'throttle', throttle_pct: nextThrottlePct(input.throttle_pct, policy), expected_blackout_ms }
  }
  return { action: 'next_round', throttle_pct: input.throttle_pct, expected_blackout_ms }
}
