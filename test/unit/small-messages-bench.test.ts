/**
 * `npm run bench`'s small-message benchmark at a tiny size, so it cannot break unnoticed:
 * every stage and every end-to-end row is measured (never how fast).
 */
import t from 'tap'
import { formatSmallMessageReport, runSmallMessageBench } from '../../scripts/bench/small-messages.js'

t.test('the small-message benchmark measures each stage and each end-to-end exchange', async (t) => {
  const r = await runSmallMessageBench({ messages: 200, reps: 1 })
  t.ok(r.heartbeat_bytes > 16, `a heartbeat frame has a size (${r.heartbeat_bytes} bytes)`)
  t.ok(r.stages.length >= 5 && r.stages.every((s) => s.cpu_us > 0), 'every stage measured')
  t.same(
    r.end_to_end.map((e) => e.cpu_us > 0 && e.wall_us > 0),
    r.end_to_end.map(() => true),
    'every exchange measured',
  )
  t.ok(r.end_to_end.length >= 4, 'heartbeats and requests, alone and in flight')
  t.match(formatSmallMessageReport(r), /heartbeat, one at a time/)
})
