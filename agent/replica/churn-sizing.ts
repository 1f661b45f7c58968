/**
 * "How much bandwidth will you need? … measure how much change there is to your customers'
 * VMs every 5 minutes" (seed 002), PURE: from the guest writes measured over a while, the
 * bandwidth each replication frequency needs. Only the latest write of each block in a
 * cycle travels (replica-log.ts), so a cycle costs its distinct blocks, not its writes; a
 * cycle's shipment must cross the link before the next one closes, so a frequency needs
 * the busiest cycle's bytes per frequency (peak), and at least the mean to keep up at all.
 * A hot block rewritten all the time costs once per cycle: longer frequencies need less.
 *
 * Cycles are cut from the first write's time; a last cycle shorter than the frequency is
 * left out of the peak (it did not fill) unless it is the only one, and counted in the mean.
 */
import { HvlabError } from '../../shared/errors.js'

export interface MeasuredWrite {
  readonly at_ms: number
  readonly block: number
}

export interface FrequencySizing {
  readonly frequency_ms: number
  /** Cycles the measurement covered (the last may be partial). */
  readonly cycles: number
  /** Distinct blocks of the busiest full cycle, in bytes. */
  readonly peak_cycle_bytes: number
  /** Bytes a second the busiest full cycle needs (its bytes over the frequency). */
  readonly peak_bytes_per_s: number
  /** Bytes a second over the whole measurement, cycle by cycle. */
  readonly mean_bytes_per_s: number
}

export interface SizingInput {
  readonly writes: readonly MeasuredWrite[]
  readonly block_size_bytes: number
  /** How long the churn was measured (at least the span of the writes). */
  readonly measured_ms: number
  readonly frequencies_ms: readonly number[]
}

export function sizeBandwidth(i: SizingInput): FrequencySizing[] {
  if (!(i.measured_ms > 0)) throw new HvlabError('HVLAB_E_USAGE', `a churn measurement needs a positive duration, got ${i.measured_ms} ms`)
  return i.frequencies_ms.map((f) => sizeFrequency(i, f))
}

function sizeFrequency(i: SizingInput, frequency_ms: number): FrequencySizing {
  if (!(frequency_ms > 0)) throw new HvlabError('HVLAB_E_USAGE', `a replication frequency must be positive, got ${frequency_ms} ms`)
  const start_ms = i.writes[0]?.at_ms ?? 0
  const cycles = Math.max(1, Math.ceil(i.measured_ms / frequency_ms))
  const full_cycles = Math.floor(i.measured_ms / frequency_ms)
  const distinct = Array.from({ length: cycles }, () => new Set<number>())
  for (const w of i.writes) {
    const c = Math.min(cycles - 1, Math.max(0, Math.floor((w.at_ms - start_ms) / frequency_ms)))
    distinct[c]!.add(w.block)
  }
  const bytes = distinct.map((s) => s.size * i.block_size_bytes)
  const peak = Math.max(0, ...bytes.slice(0, Math.max(1, full_cycles)))
  const total = bytes.reduce((a, b) => a + b, 0)
  return {
    frequency_ms,
    cycles,
    peak_cycle_bytes: peak,
    peak_bytes_per_s: (peak / frequency_ms) * 1000,
    mean_bytes_per_s: (total / i.measured_ms) * 1000,
  }
}
