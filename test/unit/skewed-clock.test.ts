/**
 * SkewedClock over a ManualClock: an offset shifts the reading, a drift makes it gain (or
 * lose) time and shortens (or stretches) its timers, a step back stands still until the
 * real clock catches up (never backwards), and skew() reports the offset drift included.
 */
import t from 'tap'
import { ManualClock } from '../../shared/clock.js'
import { SkewedClock } from '../../shared/skewed-clock.js'

t.test('no skew: the real clock as it is', async (t) => {
  const real = new ManualClock(1_000)
  const clock = new SkewedClock(real)
  t.equal(clock.now(), 1_000)
  real.advance(50)
  t.equal(clock.now(), 1_050)
  t.same(clock.skew(), { offset_ms: 0, drift: 0 })
})

t.test('an offset shifts the reading; a drift gains time from when it was set, and its timers fire sooner', async (t) => {
  const real = new ManualClock(1_000)
  const clock = new SkewedClock(real)
  clock.setSkew({ offset_ms: 300, drift: 0.25 })
  t.equal(clock.now(), 1_300)
  real.advance(1_000)
  t.equal(clock.now(), 2_550, '250 ms gained over a real second')
  t.same(clock.skew(), { offset_ms: 550, drift: 0.25 })
  let fired_real_ms = 0
  clock.setTimer(1_250, () => (fired_real_ms = real.now()))
  real.advance(1_000)
  t.equal(fired_real_ms, 3_000, 'a 1,250 ms timer of a clock 25 % fast fires after 1,000 real ms')
  clock.setSkew({ offset_ms: 0, drift: -0.5 })
  let slow_fired_ms = 0
  clock.setTimer(100, () => (slow_fired_ms = real.now()))
  real.advance(200)
  t.equal(slow_fired_ms, 3_200, 'a clock at half speed: a 100 ms timer takes 200 real ms')
})

t.test('a step back: the clock stands still until the real clock catches up, never backwards', async (t) => {
  const real = new ManualClock(10_000)
  const clock = new SkewedClock(real)
  t.equal(clock.now(), 10_000)
  clock.setSkew({ offset_ms: -500, drift: 0 })
  t.equal(clock.now(), 10_000, 'not 9,500')
  real.advance(300)
  t.equal(clock.now(), 10_000, 'still standing')
  real.advance(400)
  t.equal(clock.now(), 10_200, 'running again, 500 ms behind')
  t.same(clock.skew(), { offset_ms: -500, drift: 0 })
})
