/**
 * `npm run bench`'s live-migration benchmark end to end, at a tiny size: two endpoint
 * processes come up, the raw transport and the migration stream are measured, every
 * dirty-rate run completes and is set next to the model, both processes' event-loop lag is
 * reported idle and during the runs, and both processes are gone afterwards. It reads no
 * speed: the numbers are only checked to exist.
 */
import t from 'tap'
import { formatMigrationReport, runMigrationBench } from '../../scripts/bench/migration.js'

t.test('the migration benchmark runs between two endpoint processes', async (t) => {
  const r = await runMigrationBench({ memory_mib: 16, raw_mib: 4, reps: 1, dirty_rates_mib_per_s: [0, 50], threads: 1, idle_lag_ms: 300 })
  t.match(r.endpoints, /two endpoint processes/)
  t.ok(
    r.raw_transport_bytes_per_s.median > 0 && r.raw_transport_bytes_per_s.best >= r.raw_transport_bytes_per_s.median,
    'raw transport measured',
  )
  t.ok(r.migration_stream_bytes_per_s.median > 0, 'migration stream measured')
  t.ok(r.migration_stream_setup_ms > 0, 'its setup (the destination commits the memory) measured')
  t.ok(
    r.migration_stream_with_setup_bytes_per_s.median > 0 &&
      r.migration_stream_with_setup_bytes_per_s.median <= r.migration_stream_bytes_per_s.median,
    'counted from the setup, the same bytes took longer',
  )
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
  const sane = (f: { p50_ms: number; p99_ms: number; max_ms: number; samples: number } | null): boolean =>
    f !== null && f.samples > 0 && f.p50_ms >= 0 && f.p99_ms >= f.p50_ms && f.max_ms >= f.p99_ms
  const lag = r.event_loop_lag
  t.ok(sane(lag.idle.source) && sane(lag.idle.destination), `idle lag of both processes: ${JSON.stringify(lag.idle)}`)
  t.ok(sane(lag.stream.source) && sane(lag.stream.destination), `lag during the stream: ${JSON.stringify(lag.stream)}`)
  t.equal(lag.stream_runs, 1, 'the timed stream run, not the warm-up')
  t.ok(
    r.rows.every((x) => (x.lag_p99_ms.source ?? -1) >= 0 && (x.lag_p99_ms.destination ?? -1) >= 0),
    'each dirty-rate run has both processes’ lag p99',
  )
  t.ok(r.stream_vs_raw > 0, 'stream_vs_raw: the ratio of the medians')
  const { raw, stream } = r.time_per_mib
  t.ok(raw.source.stages.seal > 0 && raw.destination.stages.open > 0, 'the raw runs: the source sealed, the destination opened')
  t.ok(
    stream.source.stages.diff_wait > 0 && stream.destination.stages.apply_worker > 0 && stream.destination.stages.apply > 0,
    'the stream: the source waited for its diff workers, the destination applied in its worker',
  )
  t.ok(
    stream.source.cpu_us > 0 && stream.destination.loop_busy_us > 0 && stream.destination.wall_us > 0,
    'and each process’s CPU and busy loop',
  )
  t.ok(
    r.frame_auth.aes_256_gcm_seal_1mib_bytes_per_s > 0 && r.frame_auth.fresh_memory_touch_us_per_mib > 0,
    'the other cipher and fresh memory measured',
  )
  const text = formatMigrationReport(r)
  t.match(
    text,
    /where each process spent its time.*\n.*raw src +raw dst +stream src +stream dst\n/,
    'the time table prints, raw next to stream',
  )
  t.match(text, /raw transport .*\n.*migration stream/, 'the table prints')
  t.match(
    text,
    /event-loop lag .*\n.*\nidle .* source .*\n .* destination .*\nmigration stream \(worst of 1 run\) +source/,
    'and the lag table',
  )
})
