/**
 * `npm run bench`'s live-migration benchmark end to end, at a tiny size: two endpoint
 * processes come up, the raw transport and the migration stream are measured, every
 * dirty-rate run completes and is set next to the model, and both processes are gone
 * afterwards. It reads no speed: the numbers are only checked to exist.
 */
import t from 'tap'
import { formatMigrationReport, runMigrationBench } from '../../scripts/bench/migration.js'

t.test('the migration benchmark runs between two endpoint processes', async (t) => {
  const r = await runMigrationBench({ memory_mib: 16, raw_mib: 4, reps: 1, dirty_rates_mib_per_s: [0, 50], threads: 1 })
  t.match(r.endpoints, /two endpoint processes/)
  t.ok(
    r.raw_transport_bytes_per_s.median > 0 && r.raw_transport_bytes_per_s.best >= r.raw_transport_bytes_per_s.median,
    'raw transport measured',
  )
  t.ok(r.migration_stream_bytes_per_s.median > 0, 'migration stream measured')
  t.ok(r.stream_result.pages.scanned >= 16 * 256, "the idle VM's whole memory went in round 0")
  t.same(
    r.rows.map((x) => [x.dirty_mib_per_s, x.outcome]),
    [
      [0, 'completed'],
      [50, 'completed'],
    ],
    'every dirty-rate run completed',
  )
  t.ok(
    r.rows.every((x) => x.model_rounds >= 1),
    'each run is set next to the model',
  )
  t.match(formatMigrationReport(r), /raw transport .*\n.*migration stream/, 'the table prints')
})
