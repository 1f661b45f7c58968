/**
 * The primary side of Replica (agent/replica/replica-sender.ts) as a transcript on a manual
 * clock: cycles ship the coalesced log, one in flight at a time and sent again until
 * answered; missed cycles turn the health to Warning and Critical; a refused gap or a log
 * past half of the disk asks for a resync, after which the writes it overlapped are shipped;
 * a flush ships at once.
 */
import t from 'tap'
import { healthThresholds } from '../../agent/replica/replica-health.js'
import { ReplicaSender, type ReplicaSenderEffect } from '../../agent/replica/replica-sender.js'

const BS = 8
const F = 300_000 // the 5-minute frequency
const th = healthThresholds(F, 1)
const data = (v: number) => new Uint8Array(BS).fill(v)
const ships = (fx: ReplicaSenderEffect[]) => fx.flatMap((f) => (f.kind === 'ship' ? [f.shipment] : []))
/** The timeline events, each flattened to its kind and details. */
const events = (fx: ReplicaSenderEffect[]) => fx.flatMap((f) => (f.kind === 'emit' ? [{ kind: f.event.kind, ...f.event.details }] : []))
const kinds = (fx: ReplicaSenderEffect[]) => events(fx).map((e) => e.kind)

function sender(disk_blocks = 64, begins_later = false) {
  let now = 0
  const s = new ReplicaSender({ vm: 'vm1', block_size_bytes: BS, disk_blocks, thresholds: th, begins_later }, now)
  return {
    s,
    at: (ms: number) => (now = ms),
    step: (input: Parameters<ReplicaSender['step']>[0]) => s.step(input, now),
    write: (block: number, v: number) => s.step({ kind: 'write', block, data: data(v) }, now),
    now: () => now,
  }
}

t.test('each cycle ships the latest write of each block; the next one waits for the answer', async (t) => {
  const l = sender()
  t.same(l.s.start(), [{ kind: 'set-timer', at_ms: F }])
  l.write(1, 1)
  l.write(1, 2)
  l.write(3, 3)
  l.at(F - 1)
  t.same(l.step({ kind: 'timer' }), [{ kind: 'set-timer', at_ms: F }], 'not before the cycle: a timer that fired early is set again')
  l.at(F)
  const fx = l.step({ kind: 'timer' })
  const [s1] = ships(fx)
  t.same(
    s1?.blocks.map((b) => [b.block, b.data[0]]),
    [
      [1, 2],
      [3, 3],
    ],
  )
  t.match(events(fx), [{ kind: 'replica.cycle-sent', cycle: 1, blocks: 2, bytes: 2 * BS, again: false }])
  t.ok(
    fx.some((f) => f.kind === 'set-timer' && f.at_ms === 2 * F),
    'the next cycle is timed',
  )
  l.write(3, 9)
  t.equal(l.s.status(l.now()).in_flight, 1)
  t.match(kinds(l.step({ kind: 'answer', cycle: 1, outcome: 'applied' })), ['replica.cycle-applied'])
  l.at(2 * F)
  const [s2] = ships(l.step({ kind: 'timer' }))
  t.same(
    s2?.blocks.map((b) => [b.block, b.data[0]]),
    [[3, 9]],
    'cycle 2 has what came after cycle 1 closed',
  )
  t.equal(s2?.cycle, 2)
  t.same(l.step({ kind: 'answer', cycle: 1, outcome: 'applied' }), [], 'a late answer for cycle 1 changes nothing')
})

t.test(
  'an unanswered shipment goes again at each cycle; missed cycles turn the health Warning, then Critical; an answer restores it',
  async (t) => {
    const l = sender()
    l.write(0, 1)
    l.at(F)
    l.step({ kind: 'timer' })
    l.step({ kind: 'send-failed', cycle: 1 })
    l.write(0, 2) // the next cycle's log
    l.at(2 * F)
    const again = l.step({ kind: 'timer' })
    t.same(
      ships(again).map((s) => [s.cycle, s.blocks[0]!.data[0]]),
      [[1, 1]],
      'cycle 1 again, unchanged',
    )
    t.match(events(again), [
      { kind: 'replica.cycle-missed', in_flight: 1 },
      { kind: 'replica.cycle-sent', cycle: 1, again: true },
      { kind: 'replica.health', health: 'Warning' },
    ])
    l.at(F + th.critical_after_ms - F)
    t.match(events(l.step({ kind: 'timer' })).at(-1), { kind: 'replica.health', health: 'Critical' })
    t.match(
      events(l.step({ kind: 'answer', cycle: 1, outcome: 'ignored' })),
      [
        { kind: 'replica.cycle-applied', cycle: 1 },
        { kind: 'replica.health', health: 'Normal' },
      ],
      'already applied counts as applied',
    )
    l.at(l.now() + F)
    t.same(
      ships(l.step({ kind: 'timer' })).map((s) => [s.cycle, s.blocks[0]!.data[0]]),
      [[2, 2]],
      'then cycle 2',
    )
  },
)

t.test('a refused gap asks for a resync; the writes during it are shipped after it', async (t) => {
  const l = sender()
  l.write(0, 1)
  l.at(F)
  l.step({ kind: 'timer' })
  const fx = l.step({ kind: 'answer', cycle: 1, outcome: 'refused', refusal: 'cycle-gap', resync: true })
  t.ok(fx.some((f) => f.kind === 'resync'))
  t.match(events(fx), [
    { kind: 'replica.resync-needed', why: 'cycles-missing' },
    { kind: 'replica.health', health: 'Critical' },
  ])
  l.write(5, 7) // lands during the resync
  l.at(2 * F)
  t.same(ships(l.step({ kind: 'timer' })), [], 'no cycle while resyncing')
  t.equal(l.s.status(l.now()).resyncing, true)
  const next = l.s.nextCycle
  l.step({ kind: 'resynced' })
  t.equal(l.s.status(l.now()).health, 'Normal')
  l.at(3 * F)
  const [s] = ships(l.step({ kind: 'timer' }))
  t.equal(s?.cycle, next, 'the replica is told the cycle that comes next')
  t.same(
    s?.blocks.map((b) => b.block),
    [5],
    'the write that overlapped the resync',
  )
})

t.test('a log past half of the disk asks for a resync; a flush ships at once', async (t) => {
  const l = sender(4)
  l.write(0, 1)
  l.write(1, 1)
  const fx = l.write(1, 2)
  t.match(events(fx), [
    { kind: 'replica.resync-needed', why: 'log-over-half-disk' },
    { kind: 'replica.health', health: 'Critical' },
  ])
  l.step({ kind: 'resynced' })
  const m = sender()
  m.write(2, 4)
  m.at(10)
  const [flushed] = ships(m.step({ kind: 'flush' }))
  t.match(flushed, { cycle: 1, closed_at_ms: 10 })
  t.same(ships(m.step({ kind: 'flush' })), [], 'not while one is in flight')
})

t.test(
  'an initial resync first: writes meanwhile are logged and the first cycle after it carries them, numbered from the replica',
  async (t) => {
    const s = new ReplicaSender({ vm: 'vm1', block_size_bytes: BS, disk_blocks: 64, thresholds: th, first_cycle: 8 }, 0)
    const fx = s.start(true)
    t.match(fx, [
      { kind: 'set-timer', at_ms: F },
      { kind: 'resync' },
      { kind: 'emit', event: { kind: 'replica.resync-needed', details: { why: 'initial' } } },
    ])
    t.equal(s.status(0).health, 'Critical', 'critical until the resync is done')
    s.step({ kind: 'write', block: 2, data: data(5) }, 10)
    t.equal(s.nextCycle, 8, 'the replica is told the cycle after the one it applied')
    t.same(ships(s.step({ kind: 'timer' }, F)), [], 'no cycle while the resync runs')
    s.step({ kind: 'resynced' }, F + 1)
    const [first] = ships(s.step({ kind: 'timer' }, 2 * F))
    t.same([first?.cycle, first?.blocks.map((b) => [b.block, b.data[0]])], [8, [[2, 5]]])
  },
)

t.test('a moved VM: logged before the replica server answers, that log goes on as the next cycle with no resync', async (t) => {
  const l = sender(64, true) // created at 0, as the VM resumed here
  t.same(l.step({ kind: 'timer' }), [], 'nothing but logging before it knows where the replica stands')
  l.at(100)
  l.write(3, 1)
  l.write(3, 2)
  l.write(9, 9)
  t.same(l.step({ kind: 'flush' }), [], 'not even a flush')
  t.notOk(l.s.begun)
  l.at(2_000)
  const fx = l.step({ kind: 'begun', first_cycle: 8, moved: { from: 'host-a1', to: 'host-a2' } })
  t.notOk(
    fx.some((f) => f.kind === 'resync'),
    'no resync',
  )
  t.same(events(fx), [{ kind: 'replica.primary-moved', vm: 'vm1', from: 'host-a1', to: 'host-a2', cycle: 7 }])
  t.same(
    fx.filter((f) => f.kind === 'set-timer'),
    [{ kind: 'set-timer', at_ms: F }],
    'its first cycle one frequency after the log opened',
  )
  t.match(l.s.status(2_000), { resyncing: false, health: 'Normal' })
  l.at(F)
  const [first] = ships(l.step({ kind: 'timer' }))
  t.same(
    [first?.cycle, first?.writes_logged, first?.blocks.map((b) => [b.block, b.data[0]])],
    [
      8,
      3,
      [
        [3, 2],
        [9, 9],
      ],
    ],
    'every write since the VM resumed here, as cycle 8',
  )
  t.same(l.step({ kind: 'begun', first_cycle: 20 }), [], 'it begins once')
})

t.test('begun without a clean move: the log kept so far is not trusted, a resync comes first', async (t) => {
  const l = sender(64, true)
  l.write(3, 1)
  l.at(500)
  const fx = l.step({ kind: 'begun', first_cycle: 4 })
  t.match(fx, [
    { kind: 'set-timer', at_ms: 500 + F },
    { kind: 'resync' },
    { kind: 'emit', event: { kind: 'replica.resync-needed', details: { why: 'initial' } } },
  ])
  t.equal(l.s.nextCycle, 4, 'the replica is told the cycle after the one it applied')
  t.notOk(events(fx).some((e) => e.kind === 'replica.primary-moved'))
})

t.test('a moved VM whose log grew past half of the disk before it began resyncs instead', async (t) => {
  const l = sender(4, true)
  for (let i = 0; i < 3; i++) l.write(i, i + 1)
  t.match(
    events(l.step({ kind: 'begun', first_cycle: 2, moved: { from: 'host-a1', to: 'host-a2' } })),
    [{ kind: 'replica.resync-needed', why: 'log-over-half-disk' }],
    'its log is not worth shipping: it does not go on from it',
  )
})
