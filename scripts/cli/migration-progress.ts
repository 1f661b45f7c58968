/**
 * What `hvlab vm migrate` and `vm move --quick` show while a migration runs: the one-line
 * progress bar redrawn on a terminal, or the line printed per change elsewhere. The bar is
 * the share of memory already copied (pages left against the most pages left seen, i.e.
 * the whole memory in round 0, where the source reports the pages it has sent so far);
 * then the stage (a live migration's pre-copy round, or a quick migration's copy while the
 * VM is down), pages left, the rate memory is copied at, and for a live migration the
 * blackout the source expects if it switched over now. Pure formatting; the caller adds the `\r`.
 */
import { mibText } from './units.js'

export interface MigrationProgress {
  mode: 'live' | 'quick'
  stage: string
  round: number
  pages_left: number
  /** The most pages left seen so far (the whole memory at first); the bar's 100%. */
  pages_total: number
  /** Bytes on the wire per second (after zero pages and deltas), from the last round. */
  bandwidth_bytes_per_s: number
  /** Guest memory copied per second in the round being sent; absent from an older source. */
  copy_rate_bytes_per_s?: number
  expected_blackout_ms: number | null
}

const BAR_CELLS = 20

/** The stage as people read it: "precopy round 2" for a live migration; a quick one is "copying memory (vm down)". */
function stageText(p: MigrationProgress): string {
  if (p.stage === 'precopy') return p.mode === 'quick' ? 'copying memory (vm down)' : `precopy round ${p.round}`
  if (p.stage === 'blackout' && p.mode === 'quick') return 'copying the last pages (vm down)'
  return p.stage
}

/** The text after the bar (and the whole line off a terminal): stage, pages left, rate, expected blackout. */
export function progressText(p: MigrationProgress): string {
  const rate = p.copy_rate_bytes_per_s !== undefined && p.copy_rate_bytes_per_s > 0 ? p.copy_rate_bytes_per_s : p.bandwidth_bytes_per_s
  const parts = [stageText(p), `${p.pages_left} pages left`, `${mibText(rate)} MiB/s`]
  if (p.mode === 'live')
    parts.push(`expected blackout ${p.expected_blackout_ms === null ? '-' : `${Math.round(p.expected_blackout_ms)} ms`}`)
  return parts.join(', ')
}

/** The share of memory copied, 0..1. */
export function copiedShare(p: Pick<MigrationProgress, 'pages_left' | 'pages_total'>): number {
  const total = Math.max(p.pages_total, p.pages_left, 1)
  return Math.min(1, Math.max(0, 1 - p.pages_left / total))
}

export function formatProgressBar(p: MigrationProgress, columns = 100): string {
  const done = copiedShare(p)
  const filled = Math.round(done * BAR_CELLS)
  const bar = `[${'#'.repeat(filled)}${'.'.repeat(BAR_CELLS - filled)}] ${String(Math.floor(done * 100)).padStart(3)}%`
  const line = `${bar} ${progressText(p)}`
  const width = Math.max(20, columns - 1) // the last column would wrap on some terminals
  return line.length > width ? line.slice(0, width) : line.padEnd(width)
}
