import { createHistogram } from 'node:perf_hooks'
import { setTimeout as sleep } from 'node:timers/promises'
import { Registry } from 'prom-client'
import t from 'tap'
import { RealClock, sleepOn } from '../../shared/clock.js'
import {
  EVENT_LOOP_LAG_RESOLUTION_MS,
  EventLoopLag,
  LagInterval,
  LagWindow,
  lagFigures,
  parseLagFigures,
  registerEventLoopLag,
} from '../../shared/event-loop-lag.js'

const PERIOD_MS = 10
const ms = (v: number): number => Math.round(v * 1e6)
/** What the native monitor records: the time between two ticks, in ns. */
const ticks = (h: { record(v: number): void }, delay_ms: number, count: number): void => {
  for (let i = 0; i < count; i++) h.record(ms(delay_ms))
}
const near = (actual: number | undefined, expected: number): boolean => actual !== undefined && Math.abs(actual - expected) < 0.1

t.test('lagFigures: percentiles and max of tick delays, less the tick period, in ms', async (t) => {
  const h = createHistogram()
  t.equal(lagFigures(h, PERIOD_MS), null, 'no tick yet: no figures')
  ticks(h, 10, 97)
  ticks(h, 9, 1) // a tick a little early reads as no lag, never negative
  ticks(h, 60, 1)
  ticks(h, 110, 1)
  const f = lagFigures(h, PERIOD_MS)!
  t.equal(f.samples, 100)
  t.ok(near(f.p50_ms, 0), `p50 of an idle loop is about 0, not the period (${f.p50_ms})`)
  t.ok(near(f.p99_ms, 50), `p99 is the 99th of 100 ticks: 60 − 10 ms (${f.p99_ms})`)
  t.ok(near(f.max_ms, 100), `max: 110 − 10 ms (${f.max_ms})`)
  const early = createHistogram()
  ticks(early, 9, 3)
  t.same(lagFigures(early, PERIOD_MS), { p50_ms: 0, p99_ms: 0, max_ms: 0, samples: 3 }, 'clamped at 0')
})

t.test('LagWindow: the older of two histograms reset in turn; ticks older than two windows drop out', async (t) => {
  const a = createHistogram()
  const b = createHistogram()
  const both = (delay_ms: number, count: number): void => {
    ticks(a, delay_ms, count) // the native monitors both tick all the time
    ticks(b, delay_ms, count)
  }
  const w = new LagWindow(a, b, PERIOD_MS)
  t.equal(w.read(), null, 'nothing recorded')
  both(12, 5)
  t.equal(w.read()?.samples, 5, 'before the first rotation: everything so far')
  w.rotate()
  both(40, 3)
  const one = w.read()!
  t.equal(one.samples, 8, 'after one rotation: the first window and the current one')
  t.ok(near(one.max_ms, 30), `the 40 ms ticks are in (${one.max_ms})`)
  w.rotate()
  both(10, 2)
  const two = w.read()!
  t.equal(two.samples, 5, 'after two: the first window is gone, the second and current remain')
  t.ok(near(two.max_ms, 30))
  t.ok(near(two.p50_ms, 30), `3 of 5 ticks were 40 ms (${two.p50_ms})`)
  w.rotate()
  const three = w.read()!
  t.equal(three.samples, 2, 'after three: only the 10 ms ticks')
  t.ok(near(three.max_ms, 0))
})

t.test('parseLagFigures accepts only the four non-negative numbers', async (t) => {
  const good = { p50_ms: 0.12, p99_ms: 3.4, max_ms: 12, samples: 900 }
  t.same(parseLagFigures({ ...good, window_ms: 10_000 }), good, 'extra fields are dropped')
  for (const bad of [
    undefined,
    null,
    'fast',
    42,
    { ...good, p99_ms: -1 },
    { ...good, p50_ms: Number.NaN },
    { ...good, max_ms: '12' },
    { ...good, samples: 1.5 },
    { p50_ms: 1, p99_ms: 2, max_ms: 3 },
    { window_ms: 10_000, resolution_ms: 10 },
  ])
    t.equal(parseLagFigures(bad), null, `refused: ${JSON.stringify(bad)}`)
})

/** Keeps this event loop busy for `block_ms` of wall-clock time: no timer can fire meanwhile. */
function blockLoop(block_ms: number): void {
  const until = performance.now() + block_ms
  while (performance.now() < until) {
    // busy
  }
}

t.test('LagInterval sees a stall of this event loop, at least its length less the resolution', async (t) => {
  const lag = new LagInterval()
  t.teardown(() => lag.stop())
  lag.reset()
  await sleep(3 * EVENT_LOOP_LAG_RESOLUTION_MS) // after a reset, the first tick only marks the time
  blockLoop(80)
  await sleep(3 * EVENT_LOOP_LAG_RESOLUTION_MS)
  const f = lag.read()!
  t.ok(f.samples >= 1, 'ticks recorded')
  t.ok(f.max_ms >= 80 - EVENT_LOOP_LAG_RESOLUTION_MS, `max ${f.max_ms} ms after an 80 ms stall`)
  lag.reset()
  t.equal(lag.read(), null, 'reset: nothing since')
})

t.test(
  "EventLoopLag: how late this process's RealClock timers fired, exported as hvlab_event_loop_lag_{p50,p99,max}_seconds",
  async (t) => {
    const lag = new EventLoopLag()
    t.teardown(() => lag.stop())
    const registry = new Registry()
    registerEventLoopLag(registry, lag)
    const clock = new RealClock()
    const keepAlive = setInterval(() => {}, 1_000) // RealClock timers are unref'd: this keeps the test's process up
    t.teardown(() => clearInterval(keepAlive))
    await sleep(60)
    t.equal(lag.read(), null, 'no RealClock timer fired: no sample (it adds no timer of its own)')
    for (let i = 0; i < 5; i++) await sleepOn(clock, 5)
    const quiet = lag.read()!
    t.equal(quiet.samples, 5, 'one sample per timer fired')
    t.ok(quiet.p50_ms >= 0 && quiet.p99_ms >= quiet.p50_ms && quiet.max_ms >= quiet.p99_ms, JSON.stringify(quiet))
    // a timer due in the middle of a stall fires late by what is left of it
    const fired = sleepOn(clock, 10)
    blockLoop(80)
    await fired
    const stalled = lag.read()!
    t.equal(stalled.samples, 6)
    t.ok(stalled.max_ms >= 70, `a timer due 10 ms into an 80 ms stall reads ≥ 70 ms late (${stalled.max_ms})`)
    const text = await registry.metrics()
    for (const q of ['p50', 'p99', 'max']) {
      const m = text.match(new RegExp(`^hvlab_event_loop_lag_${q}_seconds (\\S+)$`, 'm'))
      t.ok(m && Number(m[1]) >= 0, `hvlab_event_loop_lag_${q}_seconds is a number ≥ 0 (${m?.[1]})`)
    }
    lag.stop()
    await sleepOn(clock, 5)
    t.equal(lag.read()!.samples, 6, 'stopped: timers are no longer observed')
  },
)
