import t from 'tap'
import { ManualClock } from '../../shared/clock.js'
import { GuestMemory } from '../../agent/vm/guest-memory.js'
import { GuestWorkload, TICK_CATCH_UP_MS_MAX } from '../../agent/vm/guest-workload.js'
import type { Clock } from '../../shared/clock.js'

const PAGES = 4096 // 16 MiB

t.test('dirties pages at the given rate, hot pages taking their share of the writes', async (t) => {
  const memory = GuestMemory.create(PAGES)
  const w = new GuestWorkload(memory, new ManualClock(), { dirty_mib_per_s: 4, hot_fraction: 0.05, hot_write_share: 0.8, seed: 7 })
  t.equal(w.touches_per_s, 1024, '4 MiB/s is 1024 page touches a second')
  const perPage = new Array<number>(PAGES).fill(0)
  let touched = 0
  for (let i = 0; i < 100; i++) {
    touched += w.advance(10)
    for (const p of memory.takeDirty()) perPage[p] = (perPage[p] ?? 0) + 1
  }
  t.equal(touched, 1024, 'one second of ticks writes one second of touches (fractions carried)')
  const hot = Math.round(PAGES * 0.05)
  const hotDirty = perPage.slice(0, hot).reduce((a, b) => a + b, 0)
  const coldDirty = perPage.slice(hot).reduce((a, b) => a + b, 0)
  t.ok(hotDirty > coldDirty, `the 5% hot pages are dirtied more often (${hotDirty} vs ${coldDirty})`)
  t.equal(w.stats.bytes_written, 1024 * 64)
})

t.test('throttle removes that share of the writes; pause stops them all', async (t) => {
  const memory = GuestMemory.create(PAGES)
  const w = new GuestWorkload(memory, new ManualClock(), { dirty_mib_per_s: 4, seed: 1 })
  w.setThrottle(50)
  t.equal(w.advance(1000), 512)
  w.pause()
  memory.takeDirty()
  t.equal(w.advance(1000), 0)
  t.equal(memory.dirtyCount(), 0, 'a paused guest dirties nothing')
  w.resume()
  w.setThrottle(0)
  t.equal(w.advance(1000), 1024)
  t.throws(() => w.setThrottle(100), { code: 'HVLAB_E_USAGE' })
  t.throws(() => w.setLoad({ dirty_mib_per_s: -1 }), { code: 'HVLAB_E_USAGE' })
})

t.test('runs on the clock until stopped, and is deterministic for a seed', async (t) => {
  const run = (seed: number): string => {
    const clock = new ManualClock()
    const memory = GuestMemory.create(256)
    const w = new GuestWorkload(memory, clock, { dirty_mib_per_s: 1, seed, tick_ms: 5 })
    w.start()
    clock.advance(500)
    w.stop()
    const after = w.stats.touches
    clock.advance(500)
    t.equal(w.stats.touches, after, 'nothing after stop')
    t.ok(after >= 120 && after <= 128, `about half a second of touches (${after})`)
    return memory.sha256()
  }
  t.equal(run(3), run(3))
  t.not(run(3), run(4))
})

t.test('a tick that fires late writes at most TICK_CATCH_UP_MS_MAX of the workload, not the time it missed', async (t) => {
  let now_ms = 0
  let due: (() => void) | null = null
  const lateClock: Clock = { now: () => now_ms, setTimer: (_delay_ms, fn) => ((due = fn), () => (due = null)) }
  const w = new GuestWorkload(GuestMemory.create(PAGES), lateClock, { dirty_mib_per_s: 100, seed: 5, tick_ms: 5 })
  w.start()
  now_ms += 1000 // the event loop was stalled for a second: the 5 ms tick fires once, late
  ;(due as (() => void) | null)?.()
  const per_ms = w.touches_per_s / 1000
  t.equal(
    w.stats.touches,
    Math.floor(per_ms * TICK_CATCH_UP_MS_MAX),
    `${TICK_CATCH_UP_MS_MAX} ms of touches, not a second's ${per_ms * 1000}`,
  )
  now_ms += 5
  ;(due as (() => void) | null)?.()
  t.equal(w.stats.touches, Math.floor(per_ms * (TICK_CATCH_UP_MS_MAX + 5)), 'the next tick on time writes its 5 ms')
  w.stop()
})
