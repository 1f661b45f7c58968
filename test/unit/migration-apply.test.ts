/**
 * The destination applies page batches in its worker pool, off the event loop, over the
 * real transport with a hand-driven source: a round is acknowledged, and the blackout
 * prepared, only once every batch before it is in memory (a later round's deltas decode
 * against the earlier round's pages); a malformed batch in a later round, or more bytes
 * waiting than allowed, abort the arrival and refuse the source's next request.
 */
import { createHash } from 'node:crypto'
import t from 'tap'
import { silentLogger } from '../../shared/log.js'
import type { PeerConnection } from '../../shared/transport/peer-connection.js'
import { GuestMemory } from '../../agent/vm/guest-memory.js'
import { PAGE_SIZE_BYTES } from '../../shared/protocol/page-size.js'
import type { LabVm } from '../../agent/migration/migratable-vm.js'
import type { MigrationEvent } from '../../agent/migration/migration-events.js'
import { MigrationService, type MigrationServiceOptions } from '../../agent/migration/migration-service.js'
import { PageApplyPool } from '../../agent/migration/page-apply-pool.js'
import { PageBatchBuilder } from '../../agent/migration/page-batch.js'
import { encodeDeltaToBytes } from '../../agent/migration/page-delta.js'
import { PageDiffPool } from '../../agent/migration/page-diff-pool.js'
import { connect, startServer, until, type TapTest } from './transport-helpers.js'

const PAGE = PAGE_SIZE_BYTES
const PAGES = 64
const pool = new PageDiffPool({ threads: 1 })
const apply_pool = new PageApplyPool({ threads: 1, idle_timeout_ms: 5_000 })
t.teardown(() => Promise.all([pool.close(), apply_pool.close()]))
// A worker that loads TypeScript through tap's loader can take seconds to start on a busy
// machine: started here, so no request below waits on it past its timeout.
await apply_pool.apply(GuestMemory.create(1).buffers, [new PageBatchBuilder(1).finish()])

interface Destination {
  conn: PeerConnection
  arrived: LabVm[]
  events: MigrationEvent[]
}

async function destination(tt: TapTest, over: Partial<MigrationServiceOptions> = {}): Promise<Destination> {
  const arrived: LabVm[] = []
  const events: MigrationEvent[] = []
  const service = new MigrationService({
    host: 'server-a',
    log: silentLogger(),
    pool,
    apply_pool,
    onArrived: (vm) => arrived.push(vm),
    onEvent: (e) => events.push(e),
    ...over,
  })
  const limits = { dead_after_ms: 30_000 }
  const server = await startServer(tt, { onPeer: (c) => service.attach(c), limits })
  return { conn: await connect(tt, server.port, { limits }), arrived, events }
}

const begin = (conn: PeerConnection, migration_id: string, verify = false) =>
  conn.request({ t: 'migration-begin', migration_id, vm: `vm-${migration_id}`, page_count: PAGES, storage: 'csv', verify })

/** Round 0: every page whole, page p filled with p + 1, in batches of 8 pages. */
async function sendFullRound(conn: PeerConnection, migration_id: string, expected: Uint8Array): Promise<number> {
  let seq = 0
  for (let first = 0; first < PAGES; first += 8) {
    const b = new PageBatchBuilder(8)
    for (let p = first; p < first + 8; p++) {
      const page = new Uint8Array(PAGE).fill(p + 1)
      b.addFull(p, page)
      expected.set(page, p * PAGE)
    }
    await conn.send({ t: 'migration-pages', migration_id, round: 0, seq: seq++ }, b.finish())
  }
  return seq
}

/** Setup and round 0, acknowledged. */
async function beginWithRound0(conn: PeerConnection, migration_id: string, expected: Uint8Array): Promise<void> {
  await begin(conn, migration_id)
  const batches = await sendFullRound(conn, migration_id, expected)
  await conn.request({ t: 'migration-round-end', migration_id, round: 0, batches })
}

/** Round 1: a delta of every page against round 0 (a byte changed per page), one page per batch. */
async function sendDeltaRound(conn: PeerConnection, migration_id: string, expected: Uint8Array): Promise<number> {
  for (let p = 0; p < PAGES; p++) {
    const before = expected.slice(p * PAGE, (p + 1) * PAGE)
    const after = before.slice()
    after[(p * 61) % PAGE] = 0xf0 ^ p
    const b = new PageBatchBuilder(1)
    b.addDelta(p, encodeDeltaToBytes(before, after) as Uint8Array)
    expected.set(after, p * PAGE)
    await conn.send({ t: 'migration-pages', migration_id, round: 1, seq: p }, b.finish())
  }
  return PAGES
}

t.test('rounds are acknowledged once applied; deltas decode against the round before; memory arrives whole', async (t) => {
  const d = await destination(t)
  const expected = new Uint8Array(PAGES * PAGE)
  await begin(d.conn, 'm-ok', true)
  const batches0 = await sendFullRound(d.conn, 'm-ok', expected)
  const ack0 = await d.conn.request({ t: 'migration-round-end', migration_id: 'm-ok', round: 0, batches: batches0 })
  t.match(ack0.message, { t: 'migration-round-ack', round: 0, batches: 8, pages: PAGES })
  const batches1 = await sendDeltaRound(d.conn, 'm-ok', expected)
  await d.conn.request({ t: 'migration-round-end', migration_id: 'm-ok', round: 1, batches: batches1 })
  const prepared = await d.conn.request(
    { t: 'migration-blackout', migration_id: 'm-ok', round: 2, batches: 0 },
    { attachment: new Uint8Array(64).fill(7) },
  )
  t.match(prepared.message, { t: 'migration-prepared', memory_sha256: createHash('sha256').update(expected).digest('hex') })
  const running = await d.conn.request({ t: 'migration-resume', migration_id: 'm-ok' })
  t.match(running.message, { t: 'migration-running', host: 'server-a' })
  t.equal(d.arrived.length, 1)
  t.ok(Buffer.from(d.arrived[0]!.memory.bytes).equals(expected), 'every page as the source sent it, in order')
})

t.test("the next round's batches may follow a round's end before its acknowledgement (the source does not wait)", async (t) => {
  const d = await destination(t)
  const expected = new Uint8Array(PAGES * PAGE)
  await begin(d.conn, 'm-pipe', true)
  const batches0 = await sendFullRound(d.conn, 'm-pipe', expected)
  const ack0 = d.conn.request({ t: 'migration-round-end', migration_id: 'm-pipe', round: 0, batches: batches0 })
  const batches1 = await sendDeltaRound(d.conn, 'm-pipe', expected) // sent before round 0 is acknowledged
  const end1 = d.conn.request({ t: 'migration-round-end', migration_id: 'm-pipe', round: 1, batches: batches1 })
  const prepared = d.conn.request(
    { t: 'migration-blackout', migration_id: 'm-pipe', round: 2, batches: 0 },
    { attachment: new Uint8Array(64).fill(7) },
  )
  t.match((await ack0).message, { t: 'migration-round-ack', round: 0, batches: 8, pages: PAGES })
  t.match((await end1).message, { t: 'migration-round-ack', round: 1, batches: PAGES, pages: PAGES })
  t.match((await prepared).message, {
    t: 'migration-prepared',
    memory_sha256: createHash('sha256').update(expected).digest('hex'),
  })
  t.notOk(
    d.events.some((e) => e.kind === 'migration.aborted'),
    'nothing was out of order',
  )
})

t.test('a paced begin is granted a window, and the bytes applied are reported as they go in', async (t) => {
  const d = await destination(t, { apply_queue_bytes_max: 64 * PAGE })
  const reports: number[] = []
  d.conn.onMessage('migration-applied', ({ message }) => void (message.migration_id === 'm-paced' && reports.push(message.bytes)))
  const ready = await d.conn.request({
    t: 'migration-begin',
    migration_id: 'm-paced',
    vm: 'vm-paced',
    page_count: PAGES,
    storage: 'csv',
    verify: false,
    paced: true,
  })
  t.match(ready.message, { t: 'migration-ready', window_bytes: 32 * PAGE }, 'half the bytes it lets wait')
  let sent = 0
  for (let seq = 0; seq < 4; seq++) {
    const b = new PageBatchBuilder(1)
    b.addFull(seq, new Uint8Array(PAGE).fill(seq + 1))
    const batch = b.finish()
    sent += batch.length
    await d.conn.send({ t: 'migration-pages', migration_id: 'm-paced', round: 0, seq }, batch)
  }
  await d.conn.request({ t: 'migration-round-end', migration_id: 'm-paced', round: 0, batches: 4 })
  await until('the last report', () => reports.at(-1) === sent)
  t.same(
    reports,
    [...reports].sort((a, b) => a - b),
    'reports only grow',
  )
  const unpaced = await begin(d.conn, 'm-plain')
  t.notOk('window_bytes' in unpaced.message, 'an unpaced begin gets no window (and no reports)')
})

t.test('a blackout that asks to resume: the last pages applied, the VM runs, one answer', async (t) => {
  const d = await destination(t)
  const expected = new Uint8Array(PAGES * PAGE)
  await beginWithRound0(d.conn, 'm-csv', expected)
  const batches1 = await sendDeltaRound(d.conn, 'm-csv', expected)
  const running = await d.conn.request(
    { t: 'migration-blackout', migration_id: 'm-csv', round: 1, batches: batches1, resume: true },
    { attachment: new Uint8Array(64).fill(7) },
  )
  t.match(running.message, { t: 'migration-running', host: 'server-a' })
  t.equal(d.arrived.length, 1)
  t.ok(Buffer.from(d.arrived[0]!.memory.bytes).equals(expected), 'the blackout round applied before the VM ran')
  t.ok(
    d.events.some((e) => e.kind === 'migration.resumed'),
    'resumed',
  )

  await begin(d.conn, 'm-verify', true)
  await t.rejects(
    d.conn.request(
      { t: 'migration-blackout', migration_id: 'm-verify', round: 0, batches: 0, resume: true },
      { attachment: new Uint8Array(64).fill(7) },
    ),
    { code: 'HVLAB_E_PROTOCOL' },
    'memory to verify is hashed paused: no resume in the same step',
  )
  t.equal(d.arrived.length, 1, 'nothing more arrived')
})

t.test('a malformed batch in a later round: the arrival is discarded and the round is refused', async (t) => {
  const d = await destination(t)
  const expected = new Uint8Array(PAGES * PAGE)
  await beginWithRound0(d.conn, 'm-bad', expected)
  const b = new PageBatchBuilder(2)
  b.addDelta(3, Uint8Array.of(0, 5, 1, 2, 3)) // a changed run of 5 bytes with only 3 there
  await d.conn.send({ t: 'migration-pages', migration_id: 'm-bad', round: 1, seq: 0 }, b.finish())
  await t.rejects(d.conn.request({ t: 'migration-round-end', migration_id: 'm-bad', round: 1, batches: 1 }), {
    code: 'HVLAB_E_NOT_FOUND',
  })
  const aborted = d.events.find((e) => e.kind === 'migration.aborted')
  t.match(aborted?.details, { reason: /malformed page delta/ })
  t.equal(d.arrived.length, 0, 'nothing arrived')
  t.ok(d.conn.isOpen, 'the connection serves on')
})

t.test('more batch bytes waiting than allowed: the arrival fails with the reason', async (t) => {
  const d = await destination(t, { apply_queue_bytes_max: PAGE })
  await begin(d.conn, 'm-full')
  const b = new PageBatchBuilder(2)
  b.addFull(0, new Uint8Array(PAGE).fill(1))
  b.addFull(1, new Uint8Array(PAGE).fill(2))
  await d.conn.send({ t: 'migration-pages', migration_id: 'm-full', round: 0, seq: 0 }, b.finish())
  await until('the arrival aborted', () => d.events.some((e) => e.kind === 'migration.aborted'))
  t.match(d.events.find((e) => e.kind === 'migration.aborted')?.details, { reason: /faster than this host applies them/ })
  await t.rejects(d.conn.request({ t: 'migration-round-end', migration_id: 'm-full', round: 0, batches: 1 }), {
    code: 'HVLAB_E_NOT_FOUND',
  })
})
