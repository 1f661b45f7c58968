/**
 * The data plane's targets (issue 15), read off the sections of one `npm run bench` run:
 * each measured figure next to its baseline measured in the same run, the ratio or
 * difference, the target, and whether this run meets it. The figures the issue was filed
 * with are printed too, as "when filed", for reading against; nothing here is measured
 * twice or made up: a section that did not run gives a row that says so.
 *
 *   page diff:  pool of 1 thread vs native `Buffer.compare` full scan of the same pages (≥ 0.4×),
 *               pool of 2 threads vs 1 thread (≥ 1.8×), next to the full scan itself in 2
 *               worker threads vs 1 (no target: what this machine's memory allows)
 *   stream:     migration stream round 0 vs raw transport between the same two processes,
 *               both with per-frame authentication (≥ 0.8×), medians
 *   blackout:   the client's longest gap between replies over a live migration (≤ 40 ms,
 *               0 lost), and the reported blackout within 10 ms of what the client saw
 */

export interface TargetRow {
  readonly what: string
  /** The figure measured, in `unit`; null when its section did not run. */
  readonly measured: number | null
  /** What it is set against in the same run (its unit in `baseline_unit`); null when there is none. */
  readonly baseline: number | null
  readonly baseline_what: string
  /** measured / baseline for ratios; the figure itself for bounds. */
  readonly figure: number | null
  readonly unit: string
  readonly target: string
  readonly when_filed: string
  /** null when the section did not run. */
  readonly met: boolean | null
}

/** Page-diff figures: GB/s medians of one run. */
export interface PageDiffFigures {
  readonly full_scan_gb_per_s: number
  readonly pool_1_thread_gb_per_s: number
  readonly pool_2_threads_gb_per_s: number | null
  /** The Buffer.compare full scan in 1 and 2 worker threads: the machine's own ceiling for 2 threads reading pages. */
  readonly full_scan_1_worker_gb_per_s: number | null
  readonly full_scan_2_workers_gb_per_s: number | null
}

/** Stream figures: bytes/s medians of one run, both authenticated. */
export interface StreamFigures {
  readonly raw_bytes_per_s: number
  readonly stream_bytes_per_s: number
  /** The same runs counted from their setup's start (the destination commits the VM's memory there). */
  readonly stream_with_setup_bytes_per_s: number
}

/** Blackout figures over the migrations of one run: the worst of each. */
export interface BlackoutFigures {
  readonly client_gap_ms_max: number
  readonly lost: number
  /** The largest |reported blackout − client's gap across the move| over the migrations; null when a migration had no figure. */
  readonly reported_vs_client_ms_max: number | null
}

export interface TargetInputs {
  readonly page_diff: PageDiffFigures | null
  readonly stream: StreamFigures | null
  readonly blackout: BlackoutFigures | null
}

const MiB = 1024 * 1024

const ratioRow = (
  what: string,
  measured: number | null,
  baseline: number | null,
  baseline_what: string,
  unit: string,
  at_least: number,
  when_filed: string,
): TargetRow => {
  const figure = measured !== null && baseline !== null && baseline > 0 ? measured / baseline : null
  return {
    what,
    measured,
    baseline,
    baseline_what,
    figure,
    unit,
    target: `≥ ${at_least}×`,
    when_filed,
    met: figure === null ? null : figure >= at_least,
  }
}

/** The page diff's rows: the pool against the full scan, 2 threads against 1, and the machine's own ceiling for that. */
function pageDiffRows(pd: PageDiffFigures | null): TargetRow[] {
  return [
    ratioRow(
      'page-diff pool, 1 thread',
      pd?.pool_1_thread_gb_per_s ?? null,
      pd?.full_scan_gb_per_s ?? null,
      'Buffer.compare full scan',
      'GB/s',
      0.4,
      '0.08×',
    ),
    ratioRow(
      'page-diff pool, 2 threads',
      pd?.pool_2_threads_gb_per_s ?? null,
      pd?.pool_1_thread_gb_per_s ?? null,
      'pool, 1 thread',
      'GB/s',
      1.8,
      '—',
    ),
    // The machine's ceiling for the row above, no target of its own: two threads that only read the pages.
    {
      ...ratioRow(
        '  full scan, 2 threads (the machine)',
        pd?.full_scan_2_workers_gb_per_s ?? null,
        pd?.full_scan_1_worker_gb_per_s ?? null,
        'full scan, 1 thread',
        'GB/s',
        0,
        '—',
      ),
      target: 'none',
      met: null,
    },
  ]
}

export function targetRows(i: TargetInputs): TargetRow[] {
  const s = i.stream
  const b = i.blackout
  const streamRow = (what: string, bytes_per_s: number | undefined, when_filed: string): TargetRow =>
    ratioRow(
      what,
      s ? (bytes_per_s as number) / MiB : null,
      s ? s.raw_bytes_per_s / MiB : null,
      'raw transport, frame auth',
      'MiB/s',
      0.8,
      when_filed,
    )
  const rows: TargetRow[] = [
    ...pageDiffRows(i.page_diff),
    streamRow('migration stream, round 0', s?.stream_bytes_per_s, '0.14×'),
    streamRow('  the same, with its setup', s?.stream_with_setup_bytes_per_s, '—'),
  ]
  const blackoutRow = (what: string, figure: number | null, target: string, when_filed: string, met: boolean): TargetRow => ({
    what,
    measured: b ? figure : null,
    baseline: null,
    baseline_what: '',
    figure: b ? figure : null,
    unit: 'ms',
    target,
    when_filed,
    met: b ? met : null,
  })
  rows.push(
    blackoutRow(
      "client's longest gap, live migration",
      b?.client_gap_ms_max ?? null,
      '≤ 40 ms, 0 lost',
      '64–132 ms, 0 lost',
      b !== null && b.client_gap_ms_max <= 40 && b.lost === 0,
    ),
    blackoutRow(
      'reported blackout vs client',
      b?.reported_vs_client_ms_max ?? null,
      'within 10 ms',
      '9–31 vs 64–132 ms',
      b !== null && b.reported_vs_client_ms_max !== null && b.reported_vs_client_ms_max <= 10,
    ),
  )
  return rows
}

const num = (v: number | null, digits: number): string => (v === null ? '-' : v.toFixed(digits))

export function formatTargets(rows: readonly TargetRow[]): string {
  const lines = [
    "issue 15's targets, this run (ratios of medians measured side by side in this run)",
    `${'what'.padEnd(38)} ${'measured'.padStart(10)} ${'baseline (same run)'.padStart(38)} ${'figure'.padStart(9)} ${'target'.padStart(16)} ${'when filed'.padStart(18)} ${'met'.padStart(4)}`,
  ]
  for (const r of rows) {
    const measured = r.measured === null ? '-' : `${num(r.measured, r.unit === 'ms' ? 1 : 2)} ${r.unit}`
    const baseline = r.baseline === null ? '' : `${r.baseline_what} ${num(r.baseline, 2)} ${r.unit}`
    const figure = r.figure === null ? '-' : r.baseline === null ? `${num(r.figure, 1)} ms` : `${num(r.figure, 2)}×`
    const met = r.met === null ? 'n/a' : r.met ? 'yes' : 'NO'
    lines.push(
      `${r.what.padEnd(38)} ${measured.padStart(10)} ${baseline.padStart(38)} ${figure.padStart(9)} ${r.target.padStart(16)} ${r.when_filed.padStart(18)} ${met.padStart(4)}`,
    )
  }
  return lines.join('\n')
}
