import t from 'tap'
import { ManualClock, RealClock, scaled } from '../../shared/clock.js'

t.test('ManualClock moves only when told to', async (t) => {
  const c = new ManualClock(500)
  t.equal(c.now(), 500)
  t.equal(new ManualClock().now(), 0, 'starts at 0 by default')
  c.advance(0)
  t.equal(c.now(), 500)
  c.advance(250)
  t.equal(c.now(), 750)
})

t.test('timers fire in time order, ties in the order they were set, at their own time', async (t) => {
  const c = new ManualClock(1000)
  const fired: string[] = []
  const at = (label: string) => () => fired.push(`${label}@${c.now()}`)
  c.setTimer(30, at('c'))
  c.setTimer(10, at('a1'))
  c.setTimer(20, at('b'))
  c.setTimer(10, at('a2'))
  c.setTimer(100, at('late'))
  t.equal(c.pendingTimers(), 5)
  c.advance(9)
  t.same(fired, [], 'nothing is due yet')
  c.advance(21)
  t.same(fired, ['a1@1010', 'a2@1010', 'b@1020', 'c@1030'], 'due exactly at the end counts')
  t.equal(c.now(), 1030)
  t.equal(c.pendingTimers(), 1)
  c.advance(1000)
  t.same(fired.at(-1), 'late@1100')
  t.equal(c.now(), 2030, 'time ends where it was sent, not at the last timer')
  t.equal(c.pendingTimers(), 0)
})

t.test('a timer set by a timer fires within the same advance if it falls due', async (t) => {
  const c = new ManualClock()
  const fired: number[] = []
  const tick = (): void => {
    fired.push(c.now())
    if (fired.length < 10) c.setTimer(100, tick)
  }
  c.setTimer(100, tick)
  c.advance(350)
  t.same(fired, [100, 200, 300])
  t.equal(c.pendingTimers(), 1)
  c.setTimer(0, () => fired.push(-c.now()))
  c.advance(0)
  t.same(fired.at(-1), -350, 'a zero delay fires on the next advance, even advance(0)')
})

t.test('cancel, and negative delays', async (t) => {
  const c = new ManualClock()
  let n = 0
  const cancel = c.setTimer(10, () => n++)
  c.setTimer(10, () => (n += 10))
  cancel()
  cancel()
  t.equal(c.pendingTimers(), 1, 'cancel is idempotent and removes only its timer')
  c.advance(10)
  t.equal(n, 10)
  c.setTimer(-50, () => (n += 100))
  c.advance(0)
  t.equal(n, 110, 'a negative delay is due now')
  let inner = 0
  const cancelLater = c.setTimer(20, () => inner++)
  c.setTimer(10, () => cancelLater())
  c.advance(100)
  t.equal(inner, 0, 'a timer cancelled by an earlier one does not fire')
})

t.test('ManualClock never goes backwards', async (t) => {
  const c = new ManualClock(100)
  t.throws(() => c.advance(-1), RangeError)
  t.throws(() => c.advance(Number.NaN), RangeError)
  t.throws(() => c.advance(Number.POSITIVE_INFINITY), RangeError)
  t.equal(c.now(), 100)
})

t.test('RealClock', async (t) => {
  const c = new RealClock()
  const a = c.now()
  t.ok(Math.abs(a - Date.now()) < 60_000, 'close to wall-clock time')
  t.ok(c.now() >= a, 'monotonic')
  // RealClock's timers do not keep the process alive (unref); this test must, while it waits.
  const keepAlive = setTimeout(() => {}, 10_000)
  t.teardown(() => clearTimeout(keepAlive))
  await new Promise<void>((resolve) => c.setTimer(1, resolve))
  let fired = false
  const cancel = c.setTimer(0, () => (fired = true))
  cancel()
  await new Promise((r) => setTimeout(r, 20))
  t.notOk(fired, 'a cancelled timer does not fire')
})

t.test('scaled', async (t) => {
  t.equal(scaled(300_000, 1), 300_000)
  t.equal(scaled(300_000, 0.01), 3000)
  t.equal(scaled(1000, 0.0015), 2, 'rounds')
  t.equal(scaled(1000, 0.0001), 1, 'never below 1 ms')
  t.equal(scaled(0, 1), 1)
  for (const bad of [0, -0.5, Number.NaN, Number.POSITIVE_INFINITY]) {
    t.throws(() => scaled(1000, bad), { name: 'RangeError', message: /timeScale/ }, `timeScale ${bad}`)
  }
})
