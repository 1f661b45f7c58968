/** The bounds of a clock skew the lab sets on a process (`hvlab clock set`), checked with a message that says which option is out. */
import { HvlabError } from '../../shared/errors.js'
import { CLOCK_DRIFT_MAX, CLOCK_OFFSET_MS_MAX } from '../../shared/fault-limits.js'
import type { ClockSkew } from '../../shared/skewed-clock.js'

export function checkClockSkew(skew: ClockSkew): void {
  const within = (v: number, max: number): boolean => Number.isFinite(v) && Math.abs(v) <= max
  if (!within(skew.offset_ms, CLOCK_OFFSET_MS_MAX))
    throw new HvlabError(
      'HVLAB_E_USAGE',
      `--offset-ms must be a number from -${CLOCK_OFFSET_MS_MAX} to ${CLOCK_OFFSET_MS_MAX}, got ${skew.offset_ms}`,
    )
  if (!within(skew.drift, CLOCK_DRIFT_MAX))
    throw new HvlabError('HVLAB_E_USAGE', `--drift must be a number from -${CLOCK_DRIFT_MAX} to ${CLOCK_DRIFT_MAX}, got ${skew.drift}`)
}
