/**
 * Hand-made soak histories for the checker's unit tests: timeline events numbered in the
 * order a test makes them, at times relative to the run's start.
 */
import type { RecordOf } from '../../scripts/soak/history.js'

export type MakeEvent = (at: number, source: string, kind: string, details: Record<string, unknown>) => RecordOf<'event'>

/** An event maker for a run started at `t0_ms`, and `restart` to number from 1 again. */
export function eventMaker(t0_ms: number): { ev: MakeEvent; restart: () => void } {
  let seq = 0
  return {
    ev: (at, source, kind, details) => ({ t: 'event', seq: ++seq, at_ms: t0_ms + at, kind, source, details }),
    restart: () => void (seq = 0),
  }
}
