/**
 * Application-consistent cycles (agent/replica/app-consistent-cycles.ts) on a manual clock:
 * which cycles ask the guest to quiesce, an answer in time, a timeout that closes the cycle
 * crash-consistent, a late or foreign answer ignored; then the same through the primary's
 * sender machine (replica-sender.ts): the effects it asks of its shell, the shipment's
 * point kind, the timeline events and the count of timeouts in its status.
 */
import t from 'tap'
import { checkEventDetails } from '../../shared/timeline/events.js'
import { AppConsistentCycles, appConsistentOptions } from '../../agent/replica/app-consistent-cycles.js'
import { healthThresholds } from '../../agent/replica/replica-health.js'
import { ReplicaSender, type ReplicaSenderEffect } from '../../agent/replica/replica-sender.js'

const F = 300 // a cycle every 300 ms
const EVERY = 4 * F // an application-consistent one every fourth
const TIMEOUT = 100

t.test('the options: N times the point interval; the guest gets at most 10 s and half a cycle', async (t) => {
  t.same(appConsistentOptions(2, 3_600_000, 300_000), { every_ms: 7_200_000, timeout_ms: 10_000 })
  t.same(appConsistentOptions(1, 3000, 3000), { every_ms: 3000, timeout_ms: 1500 }, 'a short lab cycle: half of it')
  t.equal(appConsistentOptions(undefined, 3000, 3000), undefined, 'not set: none')
})

t.test('which cycles are application-consistent: the first, then one every every_ms', async (t) => {
  const a = new AppConsistentCycles({ every_ms: EVERY, timeout_ms: TIMEOUT }, 0)
  const app: number[] = []
  for (let cycle = 1; cycle <= 12; cycle++) {
    const now = cycle * F
    const start = a.atCycle(cycle, now)
    if (start.action === 'close') continue
    t.equal(start.deadline_ms, now + TIMEOUT, 'the ask times out after timeout_ms')
    t.same(a.answered(cycle, now + 10), { waited_ms: 10 })
    app.push(cycle)
  }
  t.same(app, [1, 5, 9], 'every fourth cycle from the first')
})

t.test('the quiesce: answered in time, timed out, a late answer and one for another cycle ignored', async (t) => {
  const a = new AppConsistentCycles({ every_ms: EVERY, timeout_ms: TIMEOUT }, 0)
  t.match(a.atCycle(1, 0), { action: 'quiesce' })
  t.equal(a.askedCycle, 1)
  t.equal(a.atCycle(2, 50).action, 'close', 'no second ask while one is under way')
  t.equal(a.answered(7, 40), null, 'an answer for another cycle')
  t.equal(a.timedOut(TIMEOUT - 1), null, 'not before its deadline')
  t.same(a.timedOut(TIMEOUT), { cycle: 1, waited_ms: TIMEOUT }, 'timed out at the deadline')
  t.equal(a.askedCycle, null)
  t.equal(a.answered(1, TIMEOUT + 5), null, 'the late answer is ignored')
  t.equal(a.atCycle(2, 2 * F).action, 'close', 'the next is every_ms after the ask, whatever became of it')
  t.match(a.atCycle(5, EVERY), { action: 'quiesce' })
  t.equal(a.answered(5, EVERY + TIMEOUT), null, 'an answer at the deadline is too late')
  t.equal(a.cancel(), 5, 'a cancel drops the ask')
  t.equal(a.deadlineMs, null)
})

const BS = 8
const ships = (fx: ReplicaSenderEffect[]) => fx.flatMap((f) => (f.kind === 'ship' ? [f.shipment] : []))
const only = (fx: ReplicaSenderEffect[], kind: 'quiesce' | 'thaw') => fx.filter((f) => f.kind === kind)
const kinds = (fx: ReplicaSenderEffect[]) => fx.flatMap((f) => (f.kind === 'emit' ? [f.event.kind] : []))

function sender() {
  let now = 0
  const thresholds = healthThresholds(F, 1)
  const s = new ReplicaSender(
    { vm: 'vm1', block_size_bytes: BS, disk_blocks: 64, thresholds, app_consistent: { every_ms: EVERY, timeout_ms: TIMEOUT } },
    now,
  )
  s.start()
  const step = (input: Parameters<ReplicaSender['step']>[0]) => s.step(input, now)
  const cycle = (at: number) => {
    now = at
    return step({ kind: 'timer' })
  }
  return {
    s,
    step,
    cycle,
    at: (ms: number) => (now = ms),
    write: (block: number) => step({ kind: 'write', block, data: new Uint8Array(BS) }),
  }
}

t.test('the sender: quiesce, the log closes when the guest answers, then thaw', async (t) => {
  const l = sender()
  l.write(1)
  const fx = l.cycle(F)
  t.same(only(fx, 'quiesce'), [{ kind: 'quiesce', cycle: 1 }], 'the first cycle asks the guest to quiesce')
  t.same(ships(fx), [], 'and does not close its log yet')
  t.ok(
    fx.some((f) => f.kind === 'set-timer' && f.at_ms === F + TIMEOUT),
    'the timer comes at the quiesce timeout, before the next cycle',
  )
  l.write(2) // the guest finishing its open transaction
  l.at(F + 30)
  const answered = l.step({ kind: 'quiesced', cycle: 1 })
  const [s1] = ships(answered)
  t.equal(s1?.point_kind, 'application', 'the log closed application-consistent')
  t.same(
    s1?.blocks.map((b) => b.block),
    [1, 2],
    'with every write the guest finished before it answered',
  )
  t.equal(s1?.closed_at_ms, F + 30, 'closed the instant the guest answered')
  t.same(only(answered, 'thaw'), [{ kind: 'thaw', cycle: 1 }])
  t.same(kinds(answered), ['replica.guest-quiesced', 'replica.cycle-sent'])
  l.step({ kind: 'answer', cycle: 1, outcome: 'applied' })
  const [s2] = ships(l.cycle(2 * F))
  t.equal(s2?.point_kind, undefined, 'the next cycle is crash-consistent')
})

t.test('the sender: a guest that does not answer in time gives a crash-consistent cycle and says so', async (t) => {
  const l = sender()
  l.write(1)
  t.equal(only(l.cycle(F), 'quiesce').length, 1)
  l.at(F + TIMEOUT - 1)
  t.same(ships(l.step({ kind: 'timer' })), [], 'still waiting just before the deadline')
  const fx = l.cycle(F + TIMEOUT)
  const [s1] = ships(fx)
  t.equal(s1?.cycle, 1)
  t.equal(s1?.point_kind, undefined, 'closed crash-consistent at the timeout')
  t.same(only(fx, 'thaw'), [{ kind: 'thaw', cycle: 1 }], 'the guest resumes')
  t.equal(kinds(fx)[0], 'replica.quiesce-timeout')
  t.equal(l.s.status(F + TIMEOUT).quiesce_timeouts, 1)
  l.at(F + TIMEOUT + 10)
  const late = l.step({ kind: 'quiesced', cycle: 1 })
  t.same(ships(late), [], 'a late answer closes nothing')
  t.same(only(late, 'thaw'), [{ kind: 'thaw', cycle: 1 }], 'but the guest it froze resumes')
})

t.test("the sender's quiesce events fit the timeline on a host's clock, whose ms have fractions: waited in whole ms", async (t) => {
  const events = (fx: ReplicaSenderEffect[]) =>
    fx.flatMap((f) => (f.kind === 'emit' && f.event.kind !== 'replica.cycle-sent' ? [f.event] : []))
  const l = sender()
  l.cycle(F + 0.25)
  l.at(F + 30.5)
  const quiesced = events(l.step({ kind: 'quiesced', cycle: 1 }))
  const late = sender()
  late.cycle(F + 0.25)
  const timedOut = events(late.cycle(F + TIMEOUT + 0.6))
  t.match(
    [...quiesced, ...timedOut],
    [
      { kind: 'replica.guest-quiesced', details: { cycle: 1, waited_ms: 30 } },
      { kind: 'replica.quiesce-timeout', details: { cycle: 1, waited_ms: TIMEOUT } },
    ],
  )
  for (const e of [...quiesced, ...timedOut])
    t.match(checkEventDetails(e.kind, e.details), { ok: true }, `${e.kind}: the timeline takes it`)
})

t.test('the sender: a flush or a resync drops the ask and thaws the guest', async (t) => {
  const l = sender()
  l.cycle(F)
  l.at(F + 10)
  const fx = l.step({ kind: 'flush' })
  t.same(only(fx, 'thaw'), [{ kind: 'thaw', cycle: 1 }])
  t.equal(ships(fx)[0]?.point_kind, undefined, 'the flush closes the log crash-consistent')
  l.step({ kind: 'answer', cycle: 1, outcome: 'refused', resync: true })
  t.same(ships(l.step({ kind: 'quiesced', cycle: 1 })), [], 'the answer after it closes nothing')
})
