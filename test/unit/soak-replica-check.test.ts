/**
 * The soak checker's Hyper-V Replica rule on hand-made histories (scripts/soak/replica-check.ts):
 * vm1 writes a block every 500 ms on host-a1 and replicates to replica-dr1 every 3 s (RPO
 * 6 s: a cycle to close, a cycle to be applied). A clean run passes with its figures; a
 * cycle applied late with nothing on the path is an RPO breach; the same lag under a WAN
 * fault on the DR link is allowed and reported with its cause and measured lag; a replica
 * block that lacks the primary's write is a lost write, one no write explains an invented
 * one; a replication that never caught up is a breach. The deliveries follow the log: a
 * host's cycle carries only its own writes acknowledged before it closed and after its
 * last log drop, a resync every write acknowledged before it began.
 */
import t from 'tap'
import { checkHistory } from '../../scripts/soak/checker.js'
import { writeDigest, zeroDigest } from '../../scripts/soak/disk-history.js'
import { eventMaker } from './soak-history-fixture.js'
import { historyOf, type HistoryRecord, type RecordOf } from '../../scripts/soak/history.js'
import { carries, deliveries, logDrops } from '../../scripts/soak/replica-deliveries.js'

const T0 = 1_800_000_000_000
const BS = 4096
const FREQ = 3000
const END = 40_000

const { ev, restart } = eventMaker(T0)

const meta: RecordOf<'meta'> = {
  t: 'meta',
  format: 1,
  seed: 3,
  minutes: 1,
  topology: 'two-site-dr.json',
  faults: ['wan'],
  vms: ['vm1'],
  reproduce: 'npm run soak -- --minutes 1 --seed 3',
  started_ms: T0,
  recovery_bound_ms: 60_000,
  block_size_bytes: BS,
  vm_memory_mib: 64,
  ping_interval_ms: 100,
}

/** Write n (block n) acknowledged by host-a1 at 1000 + 500 n ms, for n < 40 (the last at 20.5 s). */
const WRITES = Array.from({ length: 40 }, (_, n) => ({ n, acked: 1000 + 500 * n }))
const digestOf = (n: number): string => writeDigest({ vm: 'vm1', seq: n, epoch: 1, block: n, value: n }, BS)

/** Write n (to block n) issued by host-a1 at `at` ms and ended `outcome` at `done` ms. */
function write(n: number, at: number, done: number, outcome: 'acked' | 'failed'): HistoryRecord[] {
  const key = { vm: 'vm1', host: 'host-a1', epoch: 1, seq: n, block: n }
  return [
    { t: 'disk-issued', ...key, array: 'array-a', volume: 'vm1-disk0', value: n, at_ms: T0 + at },
    { t: 'disk-done', ...key, outcome, code: outcome === 'acked' ? null : 'HVLAB_E_CLOSED', at_ms: T0 + done },
  ]
}

const writeRecords = (): HistoryRecord[] => WRITES.flatMap(({ n, acked }) => write(n, acked - 5, acked, 'acked'))

/** Cycle c closes at c × 3 s and is applied 200 ms later. */
function cycles(): RecordOf<'event'>[] {
  return cyclesAt(Array.from({ length: 9 }, (_, i) => [(i + 1) * FREQ, (i + 1) * FREQ + 200]))
}

/** Cycle i + 1 closes at closes[i][0] and is applied at closes[i][1]. */
function cyclesAt(closes: [number, number][]): RecordOf<'event'>[] {
  return closes.flatMap(([closed, applied], i) => [
    ev(closed, 'host-a1', 'replica.cycle-sent', { vm: 'vm1', cycle: i + 1, blocks: 6, bytes: 6 * BS, again: false }),
    ev(applied, 'host-a1', 'replica.cycle-applied', { vm: 'vm1', cycle: i + 1 }),
  ])
}

/**
 * Cycle 3 (closed at 9 s) is applied only at 17 s; the cycles due at 12 and 15 s are missed
 * (one shipment in flight at a time), so cycle 4 closes at 18 s.
 */
const SLOW = (): RecordOf<'event'>[] =>
  cyclesAt([
    [3000, 3200],
    [6000, 6200],
    [9000, 17_000],
    ...[18_000, 21_000, 24_000, 27_000, 30_000].map((c): [number, number] => [c, c + 200]),
  ])

function records(
  o: { cycleEvents?: RecordOf<'event'>[]; extra?: HistoryRecord[]; replicaHolds?: (n: number) => string; caught_up?: boolean } = {},
): HistoryRecord[] {
  restart()
  const holds = o.replicaHolds ?? digestOf
  return [
    meta,
    { t: 'replica', vm: 'vm1', server: 'replica-dr1', frequency_ms: FREQ, enabled_ms: T0 + 500 },
    ev(0, 'host-a1', 'vm.started', { vm: 'vm1', op: 1, epoch: 1, by: 'host-a1' }),
    ...(o.cycleEvents ?? cycles()),
    ...writeRecords(),
    ...WRITES.map(({ n }): HistoryRecord => ({
      t: 'disk-final',
      vm: 'vm1',
      array: 'array-a',
      volume: 'vm1-disk0',
      block: n,
      sha256: digestOf(n),
    })),
    ...WRITES.map(({ n }): HistoryRecord => ({ t: 'replica-final', vm: 'vm1', server: 'replica-dr1', block: n, sha256: holds(n) })),
    { t: 'replica-end', vm: 'vm1', server: 'replica-dr1', caught_up_ms: o.caught_up === false ? null : T0 + 30_000 },
    ...(o.extra ?? []),
    { t: 'end', faults_stopped_ms: T0 + 25_000, ended_ms: T0 + END },
  ]
}

const check = (r: HistoryRecord[]) => checkHistory(historyOf(r, 'test'))
const replicaViolations = (r: HistoryRecord[]) =>
  check(r)
    .violations.filter((v) => v.kind.startsWith('replica-'))
    .map((v) => v.kind)

t.test('a clean replication passes, with its figures', async (t) => {
  const r = check(records())
  t.same(replicaViolations(records()), [])
  const [x] = r.replication
  t.match(x, { vm: 'vm1', server: 'replica-dr1', rpo_ms: 2 * FREQ, cycles_applied: 9, resyncs: 0, writes_judged: 40, late: [] })
  t.equal(x!.blocks_compared, 40)
  t.equal(x!.blocks_differing, 0)
  // write 0 (1.0 s) goes with cycle 1 (closed 3 s, applied 3.2 s): 2.2 s; write 4 (3.0 s) with cycle 2: 3.2 s
  t.equal(x!.lag!.max_ms, 3200, 'a write acknowledged as a log closes waits for the next one')
})

t.test('a cycle applied late with nothing on the path is an RPO breach', async (t) => {
  // writes acknowledged from 6 to 9 s wait for cycle 3 up to 11 s; those from 9 to 12 s for cycle 4 (18.2 s) up to 9.2 s
  const slow = records({ cycleEvents: SLOW() })
  t.same(replicaViolations(slow), ['replica-rpo-breached', 'replica-rpo-breached'])
  const r = check(slow)
  t.match(r.replication[0]!.late, [
    { from_ms: T0 + 6000, to_ms: T0 + 8500, writes: 6, lag_max_ms: 11_000, reached_ms: T0 + 17_000, cause: null },
    { from_ms: T0 + 9000, to_ms: T0 + 12_000, writes: 7, lag_max_ms: 9200, reached_ms: T0 + 18_200, cause: null },
  ])
  t.match(
    r.violations[0]!.summary,
    /vm vm1: 6 acknowledged write\(s\) reached its replica on replica-dr1 up to 11000 ms .* beyond the RPO of 6000 ms/,
  )
})

t.test('the same lag under a WAN fault on the DR link is allowed, with its measured lag', async (t) => {
  const wan: HistoryRecord[] = [
    {
      t: 'fault',
      id: 4,
      kind: 'wan',
      target: 'site-a ↔ site-dr 60±10 ms 20 Mbit/s loss 0.02',
      phase: 'start',
      at_ms: T0 + 8000,
      processes: [],
    },
    ev(8000, 'lab', 'network.link-set', {
      a: ['host-a1', 'host-a2', 'array-a'],
      b: ['replica-dr1'],
      one_way: false,
      latency_ms: 60,
      jitter_ms: 10,
      mbit: 20,
      loss: 0.02,
    }),
    ev(14_000, 'lab', 'network.healed', { partitionsRemoved: 0, linksCleared: 2 }),
    { t: 'fault', id: 4, kind: 'wan', target: 'site-a ↔ site-dr', phase: 'heal', at_ms: T0 + 14_000, processes: [] },
  ]
  const withWan = records({ cycleEvents: SLOW(), extra: wan })
  t.same(replicaViolations(withWan), [])
  const cause = 'network.link-set host-a1 ↔ replica-dr1'
  t.match(
    check(withWan).replication[0]!.late,
    [
      { writes: 6, lag_max_ms: 11_000, cause },
      { writes: 7, lag_max_ms: 9200, cause },
    ],
    'reported as allowed, with the measured lag',
  )
  const elsewhere = wan.map((x) =>
    x.t === 'event' && x.kind === 'network.link-set' ? { ...x, details: { ...x.details, a: ['host-b1'] } } : x,
  )
  t.same(
    replicaViolations(records({ cycleEvents: SLOW(), extra: elsewhere })),
    ['replica-rpo-breached', 'replica-rpo-breached'],
    'a WAN fault off the path excuses nothing',
  )
})

t.test('writes held back by a resync are allowed, with the resync as the cause', async (t) => {
  // host-a1's log grows past half the disk at 9.5 s: it drops it and resyncs until 18 s; cycles go on from 21 s
  const resync = (): RecordOf<'event'>[] => [
    ...cyclesAt([
      [3000, 3200],
      [6000, 6200],
      [9000, 9200],
    ]),
    ev(9500, 'host-a1', 'replica.resync-needed', { vm: 'vm1', why: 'log-over-half-disk' }),
    ev(18_000, 'host-a1', 'replica.resynced', { vm: 'vm1', blocks_compared: 4096, blocks_sent: 20 }),
    ...[21_000, 24_000, 27_000, 30_000]
      .map((c, i) => [
        ev(c, 'host-a1', 'replica.cycle-sent', { vm: 'vm1', cycle: 4 + i, blocks: 6, bytes: 6 * BS, again: false }),
        ev(c + 200, 'host-a1', 'replica.cycle-applied', { vm: 'vm1', cycle: 4 + i }),
      ])
      .flat(),
  ]
  const r = check(records({ cycleEvents: resync() }))
  t.same(replicaViolations(records({ cycleEvents: resync() })), [])
  t.match(r.replication[0], { resyncs: 1, cycles_applied: 7 })
  t.match(
    r.replication[0]!.late,
    [
      { from_ms: T0 + 9000, to_ms: T0 + 9500, writes: 2, lag_max_ms: 9000, reached_ms: T0 + 18_000, cause: 'resync by host-a1' },
      { from_ms: T0 + 10_000, to_ms: T0 + 15_000, writes: 11, lag_max_ms: 11_200, reached_ms: T0 + 21_200, cause: 'resync by host-a1' },
    ],
    'the writes of 9 s (as cycle 3 closed) and 9.5 s (as the log was dropped) went with the resync; those after it with the first cycle after it',
  )
})

t.test('a lost write, an invented one, and a replication that never caught up', async (t) => {
  const lost = records({ replicaHolds: (n) => (n === 7 ? zeroDigest(BS) : digestOf(n)) })
  t.same(replicaViolations(lost), ['replica-write-lost'])
  t.match(
    check(lost).violations[0]!.summary,
    /1 block\(s\) \(first: block 7\) of its replica on replica-dr1 lack what the primary's disk holds/,
  )
  t.same(replicaViolations(records({ replicaHolds: (n) => (n === 9 ? 'a'.repeat(64) : digestOf(n)) })), ['replica-write-invented'])
  t.same(replicaViolations(records({ caught_up: false })), ['replica-rpo-breached'])
  const failed: HistoryRecord[] = [
    ...write(40, 21_000, 21_100, 'failed'),
    { t: 'disk-final', vm: 'vm1', array: 'array-a', volume: 'vm1-disk0', block: 40, sha256: zeroDigest(BS) },
    { t: 'replica-final', vm: 'vm1', server: 'replica-dr1', block: 40, sha256: digestOf(40) },
  ]
  const inDoubt = records({ extra: failed })
  t.same(replicaViolations(inDoubt), [], 'a write that failed on the array yet reached the replica log is in doubt: no violation')
  t.match(check(inDoubt).replication[0], { blocks_compared: 41, blocks_differing: 0, blocks_in_doubt: 1 }, 'and reported')
  const unread = records().filter((x) => !(x.t === 'replica-final' && x.block >= 30))
  t.same(replicaViolations(unread), ['replica-write-lost'], 'blocks the read-back lacks are lost')
  t.match(check(unread).replication[0], { blocks_compared: 40, blocks_differing: 10 })
})

t.test("a host's cycle carries its own writes since its last log drop; a resync every write before it", async (t) => {
  restart()
  const events = [
    ev(3000, 'host-a1', 'replica.cycle-sent', { vm: 'vm1', cycle: 1, blocks: 1, bytes: BS, again: false }),
    ev(3100, 'host-a1', 'replica.cycle-applied', { vm: 'vm1', cycle: 1 }),
    ev(4000, 'host-a1', 'replica.resync-needed', { vm: 'vm1', why: 'log-over-half-disk' }),
    ev(4500, 'host-a1', 'replica.resynced', { vm: 'vm1', blocks_compared: 10, blocks_sent: 2 }),
    ev(6000, 'host-a1', 'replica.cycle-sent', { vm: 'vm1', cycle: 2, blocks: 1, bytes: BS, again: false }),
    ev(6050, 'host-a1', 'replica.cycle-sent', { vm: 'vm1', cycle: 2, blocks: 1, bytes: BS, again: true }),
    ev(6100, 'host-a1', 'replica.cycle-applied', { vm: 'vm1', cycle: 2 }),
  ]
  const ds = deliveries(events, 'vm1')
  t.same(
    ds.map((d) => [d.kind, d.cycle, d.carries_before_ms - T0, d.reached_ms - T0]),
    [
      ['cycle', 1, 3000, 3100],
      ['resync', 0, 4000, 4500],
      ['cycle', 2, 6000, 6100],
    ],
    'a resent cycle keeps the time its log closed',
  )
  const drops = logDrops(events, 'vm1')
  const w = (host: string, at: number) => ({ host, acked_ms: T0 + at })
  t.ok(carries(ds[0]!, w('host-a1', 2000), drops))
  t.notOk(carries(ds[0]!, w('host-b1', 2000), drops), "another host's write is not in this host's log")
  t.notOk(carries(ds[2]!, w('host-a1', 3500), drops), 'the log dropped at 4 s no longer holds a write of 3.5 s')
  t.ok(carries(ds[1]!, w('host-b1', 3500), drops), 'the resync carries it, whoever acknowledged it')
  t.ok(carries(ds[2]!, w('host-a1', 5000), drops), 'a write after the drop is in the next cycle')
})

t.test("writes held back by a move's handover are allowed, with the move as the cause", async (t) => {
  // vm1 arrived on host-a1 at 0.5 s; host-b1's end came late, so host-a1's log went on only at 8 s, as its first cycle
  const handover = (): RecordOf<'event'>[] => [
    ev(500, 'host-a1', 'vm.arrived', { vm: 'vm1', op: 2, epoch: 1, from: 'host-b1' }),
    ev(8000, 'host-a1', 'replica.primary-moved', { vm: 'vm1', from: 'host-b1', to: 'host-a1', cycle: 0 }),
    ...cyclesAt([8000, 11_000, 14_000, 17_000, 20_000, 23_000, 26_000].map((c): [number, number] => [c, c + 200])),
  ]
  t.same(replicaViolations(records({ cycleEvents: handover() })), [])
  t.match(check(records({ cycleEvents: handover() })).replication[0]!.late, [
    { from_ms: T0 + 1000, to_ms: T0 + 2000, writes: 3, lag_max_ms: 7200, reached_ms: T0 + 8200, cause: 'move to host-a1' },
  ])
  const unexcused = handover().filter((e) => e.kind !== 'vm.arrived')
  t.same(replicaViolations(records({ cycleEvents: unexcused })), ['replica-rpo-breached'], 'the same lag with no move is a breach')
})
