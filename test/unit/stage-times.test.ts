/**
 * The bench's stage times (shared/stage-times.ts): off, nothing is recorded and no clock
 * is read; on, each stage sums its calls' time and counts them; reset starts again.
 */
import t from 'tap'
import { STREAM_STAGES, StageTimes } from '../../shared/stage-times.js'

t.test('off by default: nothing is recorded', async (t) => {
  const s = new StageTimes()
  t.equal(s.start(), 0, 'no clock read while off')
  s.end('seal', 0)
  s.add('apply_worker', 5)
  t.same(s.read(), StageTimes.empty())
  t.same(Object.keys(s.read()), [...STREAM_STAGES], 'every stage is there, at zero')
})

t.test('on: each stage sums its time and counts its calls; reset clears; read is a copy', async (t) => {
  const s = new StageTimes()
  s.enabled = true
  const started = s.start()
  t.ok(started > 0, 'the clock is read')
  s.end('seal', started - 2)
  s.add('apply_worker', 3)
  s.add('apply_worker', 4)
  const r = s.read()
  t.ok(r.seal.ms >= 2 && r.seal.calls === 1, 'seal: one call of at least 2 ms')
  t.same(r.apply_worker, { ms: 7, calls: 2 })
  r.apply_worker.ms = 100
  t.equal(s.read().apply_worker.ms, 7, 'what read() returned is not the live figure')
  s.reset()
  t.same(s.read(), StageTimes.empty())
})
