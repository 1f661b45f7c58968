/**
 * "How much bandwidth will you need? … measure how much change there is to your customers'
 * VMs every 5 minutes" (seed 002), PURE: from the guest writes measured over a while, the
 * bandwidth each replication frequency needs. Only the latest write of each block in a
 * cycle travels (replica-log.ts), so a cycle costs its distinct blocks, not its writes; a
 * cycle's shipment must cross the link before the next one closes, so a frequency needs
 * the busiest cycle's bytes per frequency (peak), and at least the mean to keep up at all.
 * A hot block rewritten all the time costs once per cycle: longer frequencies need less.
 *
 * This is the whole-list form (the writes at hand): it plays them, in time order, into a
 * ChurnRecorder (churn-recorder.ts), which a host fills as the writes happen. Cycles are
 * cut from the first write's time; a last cycle shorter than the frequency is left out of
 * the peak (it did not fill) unless it is the only one, and counted in the mean.
 */
import { ChurnRecorder, type FrequencySizing } from './churn-recorder.js'

export type { FrequencySizing }

export interface MeasuredWrite {
  readonly at_ms: number
  readonly block: number
}

export interface SizingInput {
  readonly writes: readonly MeasuredWrite[]
  readonly block_size_bytes: number
  /** How long the churn was measured (at least the span of the writes). */
  readonly measured_ms: number
  readonly frequencies_ms: readonly number[]
}

export function sizeBandwidth(i: SizingInput): FrequencySizing[] {
  const writes = [...i.writes].sort((a, b) => a.at_ms - b.at_ms)
  const recorder = new ChurnRecorder({
    start_ms: writes[0]?.at_ms ?? 0,
    measured_ms: i.measured_ms,
    block_size_bytes: i.block_size_bytes,
    disk_blocks: writes.reduce((n, w) => Math.max(n, w.block + 1), 0),
    frequencies_ms: i.frequencies_ms,
  })
  for (const w of writes) recorder.record(w.block, w.at_ms)
  return recorder.result()
}
