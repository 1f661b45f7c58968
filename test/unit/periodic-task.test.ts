/**
 * The periodic tasks of shared/periodic-task.ts on a ManualClock: `every` runs a task on
 * the grid of its interval, at the first instant after the last run settled, never two at
 * once, and a failing run goes to onError while the loop goes on; `everyTick` ticks inside the timer on the grid of its
 * interval, can be cancelled, and a tick that throws ends the loop.
 */
import t from 'tap'
import { ManualClock } from '../../shared/clock.js'
import { every, everyTick, gridPhase, nextTickAt, tickPhaseOf } from '../../shared/periodic-task.js'

const flush = (): Promise<void> => new Promise((r) => setImmediate(r))

t.test('every: runs on the grid of its interval, the next at the first grid instant after the last settled', async (t) => {
  const clock = new ManualClock(30)
  const runs: number[] = []
  let release: (() => void) | undefined
  every(
    clock,
    100,
    () => {
      runs.push(clock.now())
      return new Promise<void>((r) => (release = r))
    },
    () => t.fail('no error expected'),
    25,
  )
  clock.advance(94)
  await flush()
  t.same(runs, [], 'not before the next grid instant (125: the grid of 100 shifted by 25)')
  clock.advance(1)
  await flush()
  t.same(runs, [125])
  clock.advance(500)
  await flush()
  t.same(runs, [125], 'no second run while the first has not settled')
  release?.()
  await flush()
  clock.advance(99)
  await flush()
  t.same(runs, [125], 'settled at 625, on the grid: the next instant is 725')
  clock.advance(1)
  await flush()
  t.same(runs, [125, 725], 'the first grid instant after it settled (at 625)')
  release?.()
  await flush()
  clock.advance(40)
  release?.()
  clock.advance(60)
  await flush()
  t.same(runs, [125, 725, 825], 'a run that settles within its interval keeps to every instant')
})

t.test('gridPhase: a longer interval shifted by the same ms lands on the shorter grid', async (t) => {
  const offset_ms = 0.37 * 125
  for (const at of [0, 1_000_003, 77]) {
    const tick = nextTickAt(at, 500, gridPhase(offset_ms, 500))
    t.equal((tick - offset_ms) % 125, 0, `the 500 ms grid's next instant after ${at} is a 125 ms tick`)
  }
  t.equal(gridPhase(-25, 100), 0.75, 'a negative offset wraps')
  t.equal(gridPhase(250, 100), 0.5)
})

t.test('every: a run that throws or rejects goes to onError, and the loop goes on', async (t) => {
  const clock = new ManualClock(0)
  const errors: string[] = []
  let n = 0
  every(
    clock,
    10,
    () => {
      n++
      if (n === 1) throw new Error('sync')
      if (n === 2) return Promise.reject(new Error('async'))
    },
    (e) => errors.push((e as Error).message),
  )
  for (let i = 0; i < 3; i++) {
    clock.advance(10)
    await flush()
  }
  t.same(errors, ['sync', 'async'])
  t.equal(n, 3)
})

t.test('everyTick: ticks inside the timer every interval until cancelled', async (t) => {
  const clock = new ManualClock(0)
  const ticks: number[] = []
  const cancel = everyTick(clock, 50, () => ticks.push(clock.now()))
  clock.advance(160)
  t.same(ticks, [50, 100, 150], 'synchronously, no event-loop turn needed')
  cancel()
  clock.advance(1000)
  t.same(ticks, [50, 100, 150])
  t.equal(clock.pendingTimers(), 0)
})

t.test('everyTick: on the grid of its interval, so ticks of one interval share a wake-up; never twice for one due time', async (t) => {
  const clock = new ManualClock(1003)
  const a: number[] = []
  const b: number[] = []
  everyTick(clock, 125, () => a.push(clock.now()))
  clock.advance(40)
  everyTick(clock, 125, () => b.push(clock.now()))
  clock.advance(300)
  t.same(a, [1125, 1250], 'the first tick at the next multiple of the interval')
  t.same(b, a, 'a loop started later ticks at the same instants')
  // A timer that fires a hair before its due time (one clock for timers, another read) must
  // not tick again for the same due time (nor loop at that instant).
  const early = { now: () => clock.now(), setTimer: (ms: number, fn: () => void) => clock.setTimer(Math.max(0, ms - 0.5), fn) }
  const c: number[] = []
  everyTick(early, 125, () => c.push(clock.now()))
  clock.advance(260)
  t.same(c, [1374.5, 1499.5], 'one tick per due time')
})

t.test('tick phases: a process ticks on its own shifted grid; names spread the processes over the interval', async (t) => {
  t.equal(nextTickAt(1000, 125, 0.5), 1062.5)
  t.equal(nextTickAt(1062.5, 125, 0.5), 1187.5, 'strictly after a due instant')
  const clock = new ManualClock(0)
  const ticks: number[] = []
  everyTick(clock, 100, () => ticks.push(clock.now()), 0.25)
  clock.advance(300)
  t.same(ticks, [25, 125, 225])
  const phases = Array.from({ length: 16 }, (_, i) => tickPhaseOf(`host-${i < 8 ? 'a' : 'b'}${(i % 8) + 1}`))
  t.ok(
    phases.every((p) => p >= 0 && p < 1),
    'each in [0, 1)',
  )
  t.equal(tickPhaseOf('host-a1'), tickPhaseOf('host-a1'), 'the same for a name every time')
  const eighths = new Set(phases.map((p) => Math.floor(p * 8)))
  t.ok(eighths.size >= 5, `16 host names fall in ${eighths.size} of 8 slices of the interval`)
})

t.test('everyTick: a tick that throws ends the loop, the error to the timer’s caller', async (t) => {
  const clock = new ManualClock(0)
  let n = 0
  everyTick(clock, 10, () => {
    if (++n === 2) throw new Error('bug')
  })
  clock.advance(10)
  t.throws(() => clock.advance(10), { message: 'bug' })
  clock.advance(100)
  t.equal(n, 2)
  t.equal(clock.pendingTimers(), 0)
})

t.test('everyTick: cancelled from inside a tick, it ticks no more and leaves no timer', async (t) => {
  const clock = new ManualClock(0)
  let ticks = 0
  const cancel: () => void = everyTick(clock, 100, () => {
    if (++ticks === 2) cancel()
  })
  clock.advance(1_000)
  t.equal(ticks, 2, 'the tick that cancelled was the last')
  t.equal(clock.pendingTimers(), 0, 'no timer left behind')
})
