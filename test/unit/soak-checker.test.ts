/**
 * The soak's checker on hand-made histories: a clean run passes with its figures (the
 * detection, the RTO the client saw, a migration's blackouts); each broken promise is
 * reported as its violation — a VM on two hosts, a lost and an invented write, a write
 * from a stale owner the array took, a VM that never answered again, two memberships at
 * the end, a crash, a leak — and a history file with a bad line is refused, naming it.
 */
import t from 'tap'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { checkHistory } from '../../scripts/soak/checker.js'
import { writeDigest } from '../../scripts/soak/disk-history.js'
import { eventMaker } from './soak-history-fixture.js'
import { historyOf, parseHistoryLine, readHistory, type History, type HistoryRecord, type RecordOf } from '../../scripts/soak/history.js'

const T0 = 1_800_000_000_000
const BS = 4096
const MIB = 1024 * 1024

function meta(): RecordOf<'meta'> {
  return {
    t: 'meta',
    format: 1,
    seed: 9,
    minutes: 1,
    topology: 'two-site.json',
    faults: ['kill'],
    vms: ['vm1'],
    reproduce: 'npm run soak -- --minutes 1 --seed 9',
    started_ms: T0,
    recovery_bound_ms: 10_000,
    block_size_bytes: BS,
    vm_memory_mib: 64,
    ping_interval_ms: 100,
  }
}

const { ev, restart } = eventMaker(T0)

/** vm1 pinged every 100 ms from 0 to `end` s, answering from `host` except within `gaps` ([from, to] in ms). */
function pings(end_ms: number, host: (at: number) => string, gaps: [number, number][] = []): RecordOf<'ping'>[] {
  const out: RecordOf<'ping'>[] = []
  for (let at = 0, s = 1; at <= end_ms; at += 100, s++) {
    const lost = gaps.some(([a, b]) => at >= a && at < b)
    out.push({
      t: 'ping',
      vm: 'vm1',
      seq: s,
      sent_ms: T0 + at,
      reply_ms: lost ? null : T0 + at + 2,
      host: lost ? null : host(at),
      outcome: lost ? 'lost' : 'reply',
    })
  }
  return out
}

interface Write {
  host: string
  epoch: number
  seq: number
  block: number
  at: number
  outcome: 'acked' | 'failed' | 'refused' | null
  done_at?: number
}

function disk(writes: Write[]): HistoryRecord[] {
  return writes.flatMap((w) => {
    const issued: RecordOf<'disk-issued'> = {
      t: 'disk-issued',
      vm: 'vm1',
      host: w.host,
      array: 'array-a',
      volume: 'vm1-disk0',
      epoch: w.epoch,
      seq: w.seq,
      block: w.block,
      value: w.seq * 7,
      at_ms: T0 + w.at,
    }
    if (w.outcome === null) return [issued]
    const done: RecordOf<'disk-done'> = {
      t: 'disk-done',
      vm: 'vm1',
      host: w.host,
      epoch: w.epoch,
      seq: w.seq,
      block: w.block,
      outcome: w.outcome,
      code: null,
      at_ms: T0 + (w.done_at ?? w.at + 5),
    }
    return [issued, done]
  })
}

const digestOf = (w: Write): string => writeDigest({ vm: 'vm1', seq: w.seq, epoch: w.epoch, block: w.block, value: w.seq * 7 }, BS)
const final = (block: number, sha256: string): RecordOf<'disk-final'> => ({
  t: 'disk-final',
  vm: 'vm1',
  array: 'array-a',
  volume: 'vm1-disk0',
  block,
  sha256,
})

const W1: Write = { host: 'host-a1', epoch: 1, seq: 1, block: 0, at: 1000, outcome: 'acked' }
const W2: Write = { host: 'host-a2', epoch: 2, seq: 0, block: 0, at: 9000, outcome: 'acked' }

/** A clean run: vm1 on host-a1, host-a1 killed at 5 s, vm1 back on host-a2 at 8 s, then a live migration to host-b1 at 15 s. */
function cleanRecords(): HistoryRecord[] {
  restart()
  return [
    meta(),
    ev(0, 'host-a1', 'vm.started', { vm: 'vm1', op: 1, epoch: 1, by: 'host-a1' }),
    ev(100, 'host-a1', 'cluster.view-changed', { epoch: 1 }),
    { t: 'fault', id: 1, kind: 'kill', target: 'host-a1', phase: 'start', at_ms: T0 + 5000, processes: ['host-a1'] },
    ev(5001, 'lab', 'process.exited', { process: 'host-a1', requested: true }),
    ev(7500, 'host-a2', 'node.lost', { node: 'host-a1', epoch: 2 }),
    ev(7600, 'host-a2', 'role.failed-over', { role: 'vm1', from: 'host-a1', to: 'host-a2' }),
    ev(8000, 'host-a2', 'vm.started', { vm: 'vm1', op: 2, epoch: 2, by: 'host-a2' }),
    { t: 'fault', id: 1, kind: 'kill', target: 'host-a1', phase: 'heal', at_ms: T0 + 12_000, processes: ['host-a1'] },
    ev(15_000, 'host-a2', 'vm.migration-started', { vm: 'vm1', to: 'host-b1', mode: 'live', op: 3, migration_id: 'm1' }),
    ev(15_900, 'host-b1', 'vm.arrived', { vm: 'vm1', op: 3, epoch: 2, from: 'host-a2' }),
    ev(16_000, 'host-a2', 'vm.migration-ended', { vm: 'vm1', to: 'host-b1', mode: 'live', outcome: 'completed', blackout_ms: 40 }),
    ev(16_000, 'host-a2', 'vm.departed', { vm: 'vm1', to: 'host-b1' }),
    ev(20_000, 'host-a2', 'cluster.view-changed', { epoch: 3 }),
    ev(20_000, 'host-b1', 'cluster.view-changed', { epoch: 3 }),
    ev(20_000, 'host-a1', 'cluster.view-changed', { epoch: 3 }),
    ...pings(30_000, (at) => (at < 5000 ? 'host-a1' : at < 15_900 ? 'host-a2' : 'host-b1'), [
      [4990, 8010],
      [15_850, 15_950],
    ]),
    ...disk([W1, W2]),
    final(0, digestOf(W2)),
    { t: 'sample', at_ms: T0 + 1000, process: 'host-a2', role: 'host', rss_bytes: 200 * MIB, fds: 40 },
    { t: 'end', faults_stopped_ms: T0 + 20_000, ended_ms: T0 + 30_000 },
  ]
}

const check = (records: HistoryRecord[]) => checkHistory(historyOf(records, 'test'))
const kinds = (records: HistoryRecord[]) => check(records).violations.map((v) => v.kind)

t.test('a clean history passes, with its figures', async (t) => {
  const r = check(cleanRecords())
  t.same(r.violations, [])
  t.equal(r.verdict, 'pass')
  t.equal(r.faults[0]!.detection_ms, 2500, 'node.lost 2.5 s after the kill')
  t.equal(r.faults[0]!.failovers, 1)
  t.same(r.faults[0]!.rto_ms_by_vm, [{ vm: 'vm1', rto_ms: 3200 }], 'last reply 4.9 s, next 8.1 s')
  t.same(
    r.migrations.map((m) => [m.vm, m.from, m.to, m.ok, m.reported_blackout_ms, m.client_gap_ms]),
    [['vm1', 'host-a2', 'host-b1', true, 40, 200]],
  )
  t.equal(r.summary.disk_writes_acked, 2)
  t.equal(r.summary.acked_writes_lost, 0)
  t.match(r.faults[0], { writes_lost: 0, bytes_lost: 0, writes_lost_allowed: 0, bytes_lost_allowed: 0 }, 'no bytes lost')
  t.same(r.summary.rto, { count: 1, p50_ms: 3200, p99_ms: 3200, max_ms: 3200 })
  t.same(
    r.series[0]!.runs.map((x) => x[2]),
    ['host-a1', 'host-a2', 'host-b1'],
    'where vm1 ran',
  )
})

t.test('a VM on two hosts at once', async (t) => {
  const records = cleanRecords()
  // host-a1 comes back from a pause still running vm1 while host-a2 runs it.
  records.push(ev(9000, 'lab', 'process.signalled', { process: 'host-b2', signal: 'SIGCONT' }))
  records.push(ev(9000, 'host-b2', 'vm.started', { vm: 'vm1', op: 9, epoch: 1, by: 'host-b2' }))
  records.push(ev(9400, 'host-b2', 'vm.stopped', { vm: 'vm1', op: 9, reason: 'x' }))
  const v = check(records).violations
  t.same(
    v.map((x) => x.kind),
    ['double-owner'],
  )
  t.match(v[0]!.summary, /vm1 ran on host-a2 and host-b2 at once for 400 ms/)
  t.ok(v[0]!.events_around.length > 0, 'with the events around it')
})

t.test('a lost write, and an invented one', async (t) => {
  const lost = cleanRecords().map((r) => (r.t === 'disk-final' ? final(0, digestOf(W1)) : r))
  t.same(kinds(lost), ['write-lost'], 'the block holds the older write')
  const r = check(lost)
  t.equal(r.summary.acked_writes_lost, 1)
  t.equal(r.summary.acked_bytes_lost, BS)
  t.match(
    r.faults[0],
    { writes_lost: 1, bytes_lost: BS, writes_lost_allowed: 0, bytes_lost_allowed: 0 },
    'W2, acknowledged at 9 s while host-a1 was down, goes to the kill',
  )
  t.same(kinds(cleanRecords().map((r) => (r.t === 'disk-final' ? final(0, 'f'.repeat(64)) : r))), ['write-invented'])
  const inDoubt = cleanRecords().filter((r) => !(r.t === 'disk-done' && r.epoch === 2))
  t.same(kinds(inDoubt.map((r) => (r.t === 'disk-final' ? final(0, digestOf(W1)) : r))), [], 'W2 never acknowledged: W1 may be there')
})

t.test('a VM with two disks: each its own seqs and blocks, checked on its own', async (t) => {
  /** The same writes on disk 1 (its own write sequence: the same seqs and blocks as disk 0's). */
  const onDisk1 = (records: HistoryRecord[]): HistoryRecord[] =>
    records.flatMap((r) => (r.t === 'disk-issued' || r.t === 'disk-done' ? [{ ...r, disk: 1 }] : []))
  const disk1Final = (sha256: string): RecordOf<'disk-final'> => ({ ...final(0, sha256), disk: 1, volume: 'vm1-disk1' })
  const two = [...cleanRecords(), ...onDisk1(disk([W1, W2])), disk1Final(digestOf(W2))]
  t.same(kinds(two), [], 'both disks hold their last acknowledged write: the same seqs on two disks are no duplicate')
  const lostOn1 = [...cleanRecords(), ...onDisk1(disk([W1, W2])), disk1Final(digestOf(W1))]
  t.same(kinds(lostOn1), ['write-lost'], 'disk 1 holds the older write, disk 0 the newer')
  t.match(check(lostOn1).violations[0]?.summary, /^vm vm1 disk 1 block 0: an acknowledged write is gone/)
  const oneDone = [...cleanRecords(), ...onDisk1(disk([W1, W2])).filter((r) => !(r.t === 'disk-done' && r.epoch === 2))]
  t.same(
    kinds([...oneDone, disk1Final(digestOf(W1))]),
    [],
    "W2 never acknowledged on disk 1: its completion on disk 0 is not disk 1's (W1 may be there)",
  )
})

t.test("an array that took a stale owner's write", async (t) => {
  const stale: Write = { host: 'host-a1', epoch: 1, seq: 2, block: 1, at: 9500, outcome: 'acked' }
  const records = [...cleanRecords(), ...disk([stale]), final(1, digestOf(stale))]
  const v = check(records).violations
  t.same(
    v.map((x) => x.kind),
    ['stale-write-accepted'],
  )
  t.match(v[0]!.summary, /epoch 1, from host-a1.*epoch 2/)
  const refused = [
    ...cleanRecords(),
    ...disk([{ ...stale, outcome: 'refused' }]),
    final(1, writeDigest({ vm: 'x', seq: 0, epoch: 0, block: 1, value: 0 }, BS)),
  ]
  t.same(kinds(refused), ['write-invented'], 'a refused write is no acceptance (and the invented block is still caught)')
})

t.test('a write acknowledged while its synchronous group was out of sync may be lost: reported, no violation', async (t) => {
  const records = cleanRecords().map((r) => (r.t === 'disk-final' ? final(0, digestOf(W1)) : r))
  // W2 was acknowledged at 9.005 s by array-a while rc-vm1's link was down there (8.5 s to 9.5 s).
  records.push(ev(100, 'host-a1', 'clx.checked', { vm: 'vm1', group: 'rc-vm1' }))
  records.push(ev(8500, 'array-a', 'rc.link-down', { group: 'rc-vm1', role: 'primary', pending_sync_writes: 0 }))
  records.push(ev(9500, 'array-a', 'rc.synced', { group: 'rc-vm1', role: 'primary', cycle: 1 }))
  const r = check(records)
  t.same(r.violations, [], 'allowed')
  t.equal(r.summary.writes_lost_allowed, 1, 'and reported')
  t.equal(r.summary.acked_writes_lost, 0)
  t.match(r.faults[0], { writes_lost: 0, bytes_lost: 0, writes_lost_allowed: 1, bytes_lost_allowed: BS }, 'per fault, as allowed')
  const synced = records.filter((x) => !(x.t === 'event' && x.kind === 'rc.link-down'))
  t.same(kinds(synced), ['write-lost'], 'acknowledged while in sync: a violation')
})

t.test(
  'asynchronous replication: a failover may lose what came after the consistent point, within the RPO; later than the RPO is a breach',
  async (t) => {
    // vm1's disk is in a periodic group (1 s period: RPO 2 s). W2 (acknowledged by array-a at
    // 9.005 s) is lost: array-b was failed over at 9.5 s with its copy as of its last cycle.
    const withConsistentPoint = (consistent_at: number) => {
      const records = cleanRecords().map((r) => (r.t === 'disk-final' ? final(0, digestOf(W1)) : r))
      records.push(
        ev(50, 'host-a1', 'clx.disk-provisioned', {
          vm: 'vm1',
          group: 'rc-vm1',
          volume: 'vm1-disk0',
          size_bytes: BS,
          primary: 'array-a',
          secondary: 'array-b',
          mode: 'periodic',
          period_ms: 1000,
        }),
        ev(consistent_at + 100, 'array-b', 'rc.synced', {
          group: 'rc-vm1',
          role: 'secondary',
          cycle: 3,
          consistent_at_ms: T0 + consistent_at,
        }),
        ev(9500, 'array-b', 'rc.failover', { group: 'rc-vm1', from: 'secondary', to: 'primary-rev', rolled_back: false }),
      )
      return check(records)
    }
    const within = withConsistentPoint(8000)
    t.same(within.violations, [], 'acknowledged 1 s after the consistent point: within the RPO')
    t.equal(within.summary.writes_lost_allowed, 1, 'and reported')
    const late = withConsistentPoint(6000)
    t.same(
      late.violations.map((v) => v.kind),
      ['rpo-breached'],
      'acknowledged 3 s after the consistent point: replication was further behind than the RPO',
    )
    t.match(late.violations[0]!.summary, /later than the RPO/)
    t.same(
      withConsistentPoint(9100).violations.map((v) => v.kind),
      ['write-lost'],
      'acknowledged before the consistent point: the cycle had it, so its loss is a plain loss',
    )
  },
)

t.test('not recovered, two memberships, a crash, a leak', async (t) => {
  const silent = cleanRecords().filter((r) => !(r.t === 'ping' && r.sent_ms >= T0 + 20_000))
  t.same(kinds(silent), ['not-recovered'], 'no answer after the faults stopped')
  const split = [...cleanRecords(), ev(21_000, 'host-b1', 'cluster.view-changed', { epoch: 4 })]
  t.same(kinds(split), ['split-membership'])
  const crash = [...cleanRecords(), ev(3000, 'lab', 'process.crashed', { process: 'array-b', code: 1, signal: null, requested: false })]
  t.same(kinds(crash), ['crash'])
  const leak: HistoryRecord[] = [
    ...cleanRecords(),
    { t: 'sample', at_ms: T0 + 2000, process: 'witness', role: 'witness', rss_bytes: 900 * MIB, fds: 2000 },
  ]
  t.same(kinds(leak), ['resource-leak', 'resource-leak'], 'memory and open files')
  const hostMemory: HistoryRecord[] = [
    ...cleanRecords(),
    { t: 'sample', at_ms: T0 + 2000, process: 'host-b1', role: 'host', rss_bytes: 800 * MIB, fds: 40 },
  ]
  t.same(kinds(hostMemory), [], "a host's bound includes the VMs' memory")
  const grow = (process: string, role: string, to_mib: number): HistoryRecord[] => [
    ...cleanRecords(),
    ...[0, 1, 2, 3, 4, 5, 6].map((m): HistoryRecord => ({
      t: 'sample',
      at_ms: T0 + m * 60_000,
      process,
      role,
      rss_bytes: (m < 6 ? 100 : to_mib) * MIB,
      fds: 40,
    })),
  ]
  t.same(kinds(grow('witness', 'witness', 400)), ['resource-leak'], 'a witness that grows from 100 to 400 MiB over 6 min leaks')
  t.same(kinds(grow('host-b1', 'host', 400)), [], 'a host may grow by twice its VMs (guest memory and a migration copy)')
  t.same(kinds(grow('host-b1', 'host', 500)), ['resource-leak'], 'not beyond')
})

t.test('a history file is validated line by line', async (t) => {
  const dir = t.testdir()
  const good = join(dir, 'good.jsonl')
  writeFileSync(
    good,
    cleanRecords()
      .map((r) => JSON.stringify(r))
      .join('\n') + '\n',
  )
  const h: History = await readHistory(good)
  t.equal(h.pings.length, 301)
  const bad = join(dir, 'bad.jsonl')
  writeFileSync(bad, [JSON.stringify(meta()), '{"t":"ping","vm":"vm1","seq":-1}'].join('\n'))
  await t.rejects(readHistory(bad), { code: 'HVLAB_E_USAGE', message: /bad\.jsonl line 2: .*seq/ })
  const noMeta = join(dir, 'nometa.jsonl')
  writeFileSync(noMeta, JSON.stringify({ t: 'end', faults_stopped_ms: 1, ended_ms: 2 }) + '\n')
  await t.rejects(readHistory(noMeta), { code: 'HVLAB_E_USAGE', message: /meta/ })
  await t.rejects(readHistory(join(dir, 'none.jsonl')), { code: 'HVLAB_E_NOT_FOUND' })
  writeFileSync(bad, 'not json\n')
  await t.rejects(readHistory(bad), { message: /line 1: not JSON/ })
  const op = { t: 'op', kind: 'quick-move', target: 'vm1 → host-b1', start_ms: 1, end_ms: 2, ok: false, error_code: null }
  t.equal(
    parseHistoryLine(JSON.stringify({ ...op, said: 'move failed: the destination refused' }), 3, 'h').t,
    'op',
    "a failed action's message is kept",
  )
  t.throws(
    () => parseHistoryLine(JSON.stringify({ ...op, said: 'x'.repeat(301) }), 3, 'h'),
    { code: 'HVLAB_E_USAGE' },
    'up to 300 characters',
  )
  const [checked] = check([meta(), { ...op, said: 'it said why' } as HistoryRecord]).operator_actions
  t.equal(checked?.said, 'it said why', 'and carried into the report')
})
