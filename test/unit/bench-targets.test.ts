/**
 * The bench's target table (scripts/bench/targets.ts): each figure is set against its
 * same-run baseline, met only when the target holds, and a section that did not run
 * gives a row that says so rather than a figure.
 */
import t from 'tap'
import { formatTargets, targetRows } from '../../scripts/bench/targets.js'

const MiB = 1024 * 1024

t.test('ratios against the same run, and whether each target is met', async (t) => {
  const rows = targetRows({
    page_diff: {
      full_scan_gb_per_s: 10,
      pool_1_thread_gb_per_s: 4.5,
      pool_2_threads_gb_per_s: 7,
      full_scan_1_worker_gb_per_s: 10,
      full_scan_2_workers_gb_per_s: 12,
    },
    stream: { raw_bytes_per_s: 600 * MiB, stream_bytes_per_s: 300 * MiB, stream_with_setup_bytes_per_s: 240 * MiB },
    blackout: { client_gap_ms_max: 38, lost: 0, reported_vs_client_ms_max: 12 },
  })
  t.same(
    rows.map((r) => [r.figure === null ? null : Math.round(r.figure * 100) / 100, r.met]),
    [
      [0.45, true],
      [1.56, false],
      [1.2, null],
      [0.5, false],
      [0.4, false],
      [38, true],
      [12, false],
    ],
  )
  t.match(formatTargets(rows), /page-diff pool, 1 thread .* 0\.45× .* yes/)
  t.match(formatTargets(rows), /full scan, 2 threads \(the machine\) .* 1\.20× .* none .* n\/a/, 'the ceiling has no target')
})

t.test('a lost ping misses the gap target whatever the gap', async (t) => {
  const rows = targetRows({ page_diff: null, stream: null, blackout: { client_gap_ms_max: 5, lost: 1, reported_vs_client_ms_max: 0 } })
  t.equal(rows[5]?.met, false)
})

t.test('sections that did not run give rows without figures', async (t) => {
  const rows = targetRows({ page_diff: null, stream: null, blackout: null })
  t.ok(rows.every((r) => r.measured === null && r.figure === null && r.met === null))
  t.match(formatTargets(rows), /n\/a/)
})

t.test('a migration without a reported figure misses the agreement target', async (t) => {
  const rows = targetRows({ page_diff: null, stream: null, blackout: { client_gap_ms_max: 5, lost: 0, reported_vs_client_ms_max: null } })
  t.equal(rows[6]?.met, false)
  t.equal(rows[6]?.figure, null)
})
