/** Percentiles of durations for a soak's report (nearest rank). */
import type { DurationStats } from './report-types.js'

/** The value at percentile `p` (0–100) of sorted `xs`, nearest rank. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) throw new RangeError('percentile of no values')
  const rank = Math.ceil((p / 100) * sorted.length)
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1]!
}

/** Count, p50, p99 and max of `durations_ms` (rounded to whole ms); null when there are none. */
export function durationStats(durations_ms: readonly number[]): DurationStats | null {
  if (durations_ms.length === 0) return null
  const sorted = [...durations_ms].sort((a, b) => a - b)
  return {
    count: sorted.length,
    p50_ms: Math.round(percentile(sorted, 50)),
    p99_ms: Math.round(percentile(sorted, 99)),
    max_ms: Math.round(sorted.at(-1)!),
  }
}

/**
 * The largest of `values`, or `floor` when there are none or all are below it. A loop, not
 * Math.max(...values): a long soak's history has more values than a call may take arguments.
 */
export function largest(values: Iterable<number>, floor: number): number {
  let max = floor
  for (const v of values) if (v > max) max = v
  return max
}
