/**
 * The textbook pre-copy model: round 0 sends all memory V_0; while round i's V_i bytes
 * cross the link at R bytes/s the guest dirties D bytes/s, so
 *
 *   V_i = V_0 · (D/R)^i        (never more than V_0: a page is dirty only once)
 *
 * Pre-copy stops at the first round n ≥ 1 whose V_n fits the downtime budget
 * (V_n / R ≤ budget) and is settled (convergence.ts: within a tenth of the budget, or
 * D/R above one half, where another round would not halve it), or at the round cap; V_n is
 * then sent with the guest paused. The live policy's rule, in pure arithmetic for the bench
 * table and for sanity-checking the live policy.
 */
import { HvlabError } from '../../shared/errors.js'
import { settled } from './convergence.js'

export interface PrecopyModelInput {
  readonly memory_bytes: number
  readonly bandwidth_bytes_per_s: number
  readonly dirty_rate_bytes_per_s: number
  readonly downtime_budget_ms: number
  readonly round_cap: number
}

export interface PrecopyModelRound {
  /** 0 = the first full pass. */
  readonly round: number
  readonly bytes: number
  readonly duration_ms: number
}

export interface PrecopyModelResult {
  /** True when the final set fits the budget (false: stopped by the round cap). */
  readonly converges: boolean
  /** Pre-copy rounds run with the guest live (≥ 1). */
  readonly precopy_rounds: number
  readonly rounds: PrecopyModelRound[]
  readonly precopy_bytes: number
  readonly blackout_bytes: number
  readonly blackout_ms: number
  /** Pre-copy plus blackout. */
  readonly total_ms: number
  readonly total_bytes: number
}

export const PRECOPY_ROUND_CAP_MAX = 10_000

/** V_i = V_0·(D/R)^i, capped at V_0. */
export function precopyVolumeBytes(
  memory_bytes: number,
  dirty_rate_bytes_per_s: number,
  bandwidth_bytes_per_s: number,
  round: number,
): number {
  return Math.min(memory_bytes, memory_bytes * Math.pow(dirty_rate_bytes_per_s / bandwidth_bytes_per_s, round))
}

function checkInput(m: PrecopyModelInput): void {
  const bad = (name: string, v: number): never => {
    throw new HvlabError('HVLAB_E_USAGE', `pre-copy model: ${name} of ${v} is not valid`)
  }
  if (!(Number.isFinite(m.memory_bytes) && m.memory_bytes > 0)) bad('memory_bytes', m.memory_bytes)
  if (!(Number.isFinite(m.bandwidth_bytes_per_s) && m.bandwidth_bytes_per_s > 0)) bad('bandwidth_bytes_per_s', m.bandwidth_bytes_per_s)
  if (!(Number.isFinite(m.dirty_rate_bytes_per_s) && m.dirty_rate_bytes_per_s >= 0)) bad('dirty_rate_bytes_per_s', m.dirty_rate_bytes_per_s)
  if (!(Number.isFinite(m.downtime_budget_ms) && m.downtime_budget_ms > 0)) bad('downtime_budget_ms', m.downtime_budget_ms)
  if (!(Number.isInteger(m.round_cap) && m.round_cap >= 1 && m.round_cap <= PRECOPY_ROUND_CAP_MAX)) bad('round_cap', m.round_cap)
}

export function modelPrecopy(m: PrecopyModelInput): PrecopyModelResult {
  checkInput(m)
  const ms = (bytes: number): number => (bytes / m.bandwidth_bytes_per_s) * 1000
  const volume = (i: number): number => precopyVolumeBytes(m.memory_bytes, m.dirty_rate_bytes_per_s, m.bandwidth_bytes_per_s, i)
  const rounds: PrecopyModelRound[] = []
  let precopy_bytes = 0
  let precopy_ms = 0
  let n = 0
  for (;;) {
    const bytes = volume(n)
    rounds.push({ round: n, bytes, duration_ms: ms(bytes) })
    precopy_bytes += bytes
    precopy_ms += ms(bytes)
    n++
    const copy_ms = ms(volume(n))
    if (n >= m.round_cap) break
    if (copy_ms <= m.downtime_budget_ms && settled({ ...m, copy_ms })) break
  }
  const blackout_bytes = volume(n)
  const blackout_ms = ms(blackout_bytes)
  return {
    converges: blackout_ms <= m.downtime_budget_ms,
    precopy_rounds: n,
    rounds,
    precopy_bytes,
    blackout_bytes,
    blackout_ms,
    total_ms: precopy_ms + blackout_ms,
    total_bytes: precopy_bytes + blackout_bytes,
  }
}

/**
 * Closed form of the rounds needed to fit without a cap: the least n ≥ 1 with
 * V_0·(D/R)^n / R ≤ budget; Infinity when D ≥ R and V_0 does not fit. (The model may go
 * on past it while another round still halves the blackout: settled() in convergence.ts.)
 */
export function precopyRoundsToFit(m: Omit<PrecopyModelInput, 'round_cap'>): number {
  const fit_bytes = (m.bandwidth_bytes_per_s * m.downtime_budget_ms) / 1000
  if (m.dirty_rate_bytes_per_s === 0) return 1
  if (m.dirty_rate_bytes_per_s >= m.bandwidth_bytes_per_s) return m.memory_bytes <= fit_bytes ? 1 : Number.POSITIVE_INFINITY
  const n = Math.ceil(Math.log(fit_bytes / m.memory_bytes) / Math.log(m.dirty_rate_bytes_per_s / m.bandwidth_bytes_per_s))
  return Math.max(1, n)
}
