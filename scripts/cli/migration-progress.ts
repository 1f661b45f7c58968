/**
 * The one-line progress bar `hvlab vm migrate` redraws on a terminal: the bar is the share
 * of memory already copied (pages left against the most pages left seen, i.e. the whole
 * memory in round 0), then stage and round, pages left, the measured rate and the blackout
 * the source expects if it switched over now. Pure formatting; the caller adds the `\r`.
 */
import { mibText } from './units.js'

export interface MigrationProgress {
  stage: string
  round: number
  pages_left: number
  /** The most pages left seen so far (the whole memory at first); the bar's 100%. */
  pages_total: number
  bandwidth_bytes_per_s: number
  expected_blackout_ms: number | null
}

const BAR_CELLS = 20

export function formatProgressBar(p: MigrationProgress, columns = 100): string {
  const total = Math.max(p.pages_total, p.pages_left, 1)
  const done = Math.min(1, Math.max(0, 1 - p.pages_left / total))
  const filled = Math.round(done * BAR_CELLS)
  const bar = `[${'#'.repeat(filled)}${'.'.repeat(BAR_CELLS - filled)}] ${String(Math.floor(done * 100)).padStart(3)}%`
  const blackout = p.expected_blackout_ms === null ? '-' : `${Math.round(p.expected_blackout_ms)} ms`
  const line = `${bar} ${p.stage} round ${p.round}, ${p.pages_left} pages left, ${mibText(p.bandwidth_bytes_per_s)} MiB/s, expected blackout ${blackout}`
  const width = Math.max(20, columns - 1) // the last column would wrap on some terminals
  return line.length > width ? line.slice(0, width) : line.padEnd(width)
}
