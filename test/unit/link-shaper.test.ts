/**
 * LinkShaper on a ManualClock: a clear link writes at once; latency delays every frame;
 * jitter never reorders; a bandwidth cap spaces frames by their bits; a lost frame comes
 * one retransmission timeout late and holds up those behind it; a cleared shaper writes nothing.
 */
import t from 'tap'
import { ManualClock } from '../../shared/clock.js'
import { LINK_SHAPE_CLEAR, LinkShaper, RETRANSMIT_TIMEOUT_MS_MIN } from '../../shared/transport/link-shaper.js'

function shaperOn(random: () => number = () => 0.5): { clock: ManualClock; shaper: LinkShaper; written: [string, number][] } {
  const clock = new ManualClock(1_000)
  return { clock, shaper: new LinkShaper(clock, random), written: [] }
}

const push = (s: ReturnType<typeof shaperOn>, name: string, bytes = 100): void =>
  s.shaper.push(bytes, () => void s.written.push([name, s.clock.now() - 1_000]))

t.test('a clear link writes each frame at once, holding nothing', async (t) => {
  const s = shaperOn()
  push(s, 'a')
  push(s, 'b')
  t.same(s.written, [
    ['a', 0],
    ['b', 0],
  ])
  t.equal(s.shaper.held, 0)
})

t.test('latency delays every frame by that much; a clear link again writes new frames after the held ones', async (t) => {
  const s = shaperOn()
  s.shaper.setShape({ ...LINK_SHAPE_CLEAR, latency_ms: 40 })
  push(s, 'a')
  s.clock.advance(10)
  push(s, 'b')
  s.shaper.setShape(LINK_SHAPE_CLEAR)
  push(s, 'c') // not before b: order is kept
  t.same(s.written, [])
  s.clock.advance(30)
  t.same(s.written, [['a', 40]])
  s.clock.advance(10)
  t.same(s.written, [
    ['a', 40],
    ['b', 50],
    ['c', 50],
  ])
  push(s, 'd')
  t.same(s.written.at(-1), ['d', 50], 'nothing held: written at once')
})

t.test('jitter varies the delay but never reorders frames', async (t) => {
  const draws = [1, 0, 0.5] // +jitter, -jitter, none
  const s = shaperOn(() => draws.shift() ?? 0.5)
  s.shaper.setShape({ ...LINK_SHAPE_CLEAR, latency_ms: 20, jitter_ms: 10 })
  push(s, 'a') // 30 ms
  push(s, 'b') // 10 ms, but not before a
  push(s, 'c') // 20 ms, not before b
  s.clock.advance(100)
  t.same(s.written, [
    ['a', 30],
    ['b', 30],
    ['c', 30],
  ])
})

t.test('a bandwidth cap spaces frames by their bits: 1 Mbit/s carries 125 bytes a ms', async (t) => {
  const s = shaperOn()
  s.shaper.setShape({ ...LINK_SHAPE_CLEAR, mbit: 1 })
  push(s, 'a', 12_500) // 100 ms on the wire
  push(s, 'b', 12_500) // waits for a's bits, then 100 ms more
  s.clock.advance(1_000)
  t.same(s.written, [
    ['a', 100],
    ['b', 200],
  ])
  push(s, 'c', 125) // the wire has been free for 800 ms
  s.clock.advance(1)
  t.same(s.written.at(-1), ['c', 1001])
})

t.test('loss: a lost frame comes a retransmission timeout late and holds up the frames behind it', async (t) => {
  const draws = [0.5, 0.0, 0.9, 0.5, 0.9] // a: jitter draw, lost once, then delivered; b: jitter draw, delivered
  const s = shaperOn(() => draws.shift() ?? 0.5)
  s.shaper.setShape({ ...LINK_SHAPE_CLEAR, latency_ms: 10, loss: 0.1 })
  push(s, 'a')
  push(s, 'b')
  s.clock.advance(1_000)
  t.same(s.written, [
    ['a', 10 + RETRANSMIT_TIMEOUT_MS_MIN],
    ['b', 10 + RETRANSMIT_TIMEOUT_MS_MIN],
  ])
})

t.test('a cleared shaper writes nothing it held', async (t) => {
  const s = shaperOn()
  s.shaper.setShape({ ...LINK_SHAPE_CLEAR, latency_ms: 5 })
  push(s, 'a')
  t.equal(s.shaper.held, 1)
  s.shaper.clear()
  s.clock.advance(100)
  t.same(s.written, [])
  t.equal(s.shaper.held, 0)
})
