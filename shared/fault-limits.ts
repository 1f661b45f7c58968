/**
 * Bounds of the lab's faults (issue 13): beyond them a lab stops being a network or a
 * clock. A module of its own, without zod, so that the CLI shows them without loading the
 * protocol.
 */
import { HvlabError } from './errors.js'
export const LINK_LATENCY_MS_MAX = 10_000
export const LINK_MBIT_MAX = 100_000
export const LINK_LOSS_MAX = 0.5
/** A process's clock may be set this far ahead or behind the real clock, ms. */
export const CLOCK_OFFSET_MS_MAX = 600_000
/** …and run this much faster or slower (0.9: almost twice as fast, or a tenth as fast: a clock that all but stopped). */
export const CLOCK_DRIFT_MAX = 0.9
/** An array's fsync may be delayed this long (a slow disk), ms. */
export const DISK_FSYNC_DELAY_MS_MAX = 60_000

/** Refuses `value` of CLI option `option` (HVLAB_E_USAGE) unless it is a number from `min` to `max`. */
export function checkFaultOption(option: string, value: number, min: number, max: number): void {
  if (!(Number.isFinite(value) && value >= min && value <= max))
    throw new HvlabError('HVLAB_E_USAGE', `${option} must be a number from ${min} to ${max}, got ${value}`)
}
