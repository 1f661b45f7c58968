/**
 * Two MigrationService instances over a real PeerServer + connectPeer pair (port 0):
 * a 64 MiB guest under a workload migrates with equal memory hashes; a cut link, a
 * cancel and a refused storage hand-over leave the VM running on the source, intact; a cut
 * once the request that resumes a CSV VM may be out leaves it in doubt, paused.
 */
import { randomFillSync } from 'node:crypto'
import t from 'tap'
import { RealClock } from '../../shared/clock.js'
import { silentLogger, createLogger } from '../../shared/log.js'
import type { PeerConnection } from '../../shared/transport/peer-connection.js'
import { GuestMemory } from '../../agent/vm/guest-memory.js'
import { PAGE_SIZE_BYTES } from '../../shared/protocol/page-size.js'
import { GuestWorkload } from '../../agent/vm/guest-workload.js'
import { LabVm } from '../../agent/migration/migratable-vm.js'
import { MigrationService, type MigrationServiceOptions } from '../../agent/migration/migration-service.js'
import type { MigrationEvent } from '../../agent/migration/migration-events.js'
import { PageApplyPool } from '../../agent/migration/page-apply-pool.js'
import { PageDiffPool } from '../../agent/migration/page-diff-pool.js'
import { connect, startServer, until, type TapTest } from './transport-helpers.js'

const MiB = 1024 * 1024
const clock = new RealClock()
// One worker pool for the file, as one host has one for all its migrations.
const pool = new PageDiffPool({ threads: 2 })
// And one apply pool, started now: its worker loads TypeScript through tap's loader, which can take seconds on a busy machine.
const apply_pool = new PageApplyPool({ threads: 1 })
apply_pool.warm()
t.teardown(() => Promise.all([pool.close(), apply_pool.close()]))

interface Pair {
  source: MigrationService
  destination: MigrationService
  conn: PeerConnection
  arrived: LabVm[]
  sourceEvents: MigrationEvent[]
  destinationEvents: MigrationEvent[]
  announced: string[]
}

async function pair(
  tt: TapTest,
  over: Partial<MigrationServiceOptions> = {},
  onSourceEvent?: (e: MigrationEvent, p: Pair) => void,
): Promise<Pair> {
  const arrived: LabVm[] = []
  const sourceEvents: MigrationEvent[] = []
  const destinationEvents: MigrationEvent[] = []
  const announced: string[] = []
  const destination = new MigrationService({
    host: 'server-a',
    log: process.env.MIG_DEBUG ? createLogger({ name: 'x', level: 'debug' }) : silentLogger(),
    pool,
    apply_pool,
    onArrived: (vm) => arrived.push(vm),
    onAnnounce: (vm, host) => announced.push(`${vm}@${host}`),
    onEvent: (e) => destinationEvents.push(e),
  })
  // Liveness is not under test here; on a loaded CI machine the default 2 s could cut a
  // run (correctly failing it, VM on the source) and make this test flaky.
  const limits = { dead_after_ms: 30_000 }
  const server = await startServer(tt, { onPeer: (c) => destination.attach(c), limits })
  const conn = await connect(tt, server.port, { limits })
  const p: Pair = {
    source: undefined as unknown as MigrationService,
    destination,
    conn,
    arrived,
    sourceEvents,
    destinationEvents,
    announced,
  }
  p.source = new MigrationService({
    host: 'client-b',
    log: process.env.MIG_DEBUG ? createLogger({ name: 'x', level: 'debug' }) : silentLogger(),
    pool,
    onEvent: (e) => {
      sourceEvents.push(e)
      onSourceEvent?.(e, p)
    },
    ...over,
  })
  return p
}

/** A guest whose memory is 1/4 random, 1/4 a repeating pattern, the rest zero. */
function guest(name: string, mib: number, seed: number, withWorkload: { dirty_mib_per_s: number } | null): LabVm {
  const memory = GuestMemory.create((mib * MiB) / PAGE_SIZE_BYTES)
  const quarter = memory.byte_length / 4
  randomFillSync(memory.bytes.subarray(0, quarter))
  for (let i = quarter; i < 2 * quarter; i++) memory.bytes[i] = (i * 31 + seed) & 0xff
  const workload = withWorkload
    ? new GuestWorkload(memory, clock, { dirty_mib_per_s: withWorkload.dirty_mib_per_s, hot_fraction: 0.05, hot_write_share: 0.8, seed })
    : undefined
  const device_state = new Uint8Array(64).map((_, i) => (i * 7 + seed) & 0xff)
  return new LabVm({ name, memory, storage: 'csv', device_state, ...(workload ? { workload } : {}) })
}

t.test('a 64 MiB guest under load migrates live; memory on the destination equals the source at pause', async (t) => {
  const p = await pair(t)
  const vm = guest('web1', 64, 1, { dirty_mib_per_s: 40 })
  vm.workload?.start()
  t.teardown(() => vm.workload?.stop())
  await new Promise((r) => setTimeout(r, 50)) // let the guest write a while
  const handle = p.source.migrate(vm, p.conn, { verify: true, downtime_budget_ms: 100 })
  const result = await handle.result
  t.equal(result.outcome, 'completed', result.reason)
  t.ok(result.source_sha256 && result.source_sha256 === result.destination_sha256, 'hashes at pause and at resume are equal')
  const arrived = p.arrived[0]
  t.ok(arrived, 'the destination host took the VM over')
  t.equal(arrived?.memory.sha256(), vm.memory.sha256(), 'destination memory equals the (paused) source memory')
  t.same(arrived ? Array.from(arrived.deviceState()) : [], Array.from(vm.deviceState()), 'device state came along')
  t.same(p.announced, ['web1@server-a'], 'the new location was announced')
  t.ok(vm.paused, 'the source copy stays paused: it was released, not resumed')
  t.ok(result.rounds.length >= 1 && result.rounds[0]?.dirty_pages === 16384, 'round 0 covered all memory')
  const pg = result.pages
  t.equal(pg.skipped + pg.zero + pg.delta + pg.full, pg.scanned, 'every page looked at is counted once')
  t.ok(pg.skipped > 0, 'zero pages never written are skipped')
  t.ok(result.bytes_sent < result.bytes_raw, 'encoding sends fewer bytes than whole pages')
  t.ok(
    result.blackout_ms !== null && result.blackout_ms >= 0 && result.blackout_ms <= result.total_ms,
    'blackout is measured inside the total',
  )
  t.ok(
    result.setup_ms !== null && result.setup_ms >= 0 && result.setup_ms + result.rounds[0]!.duration_ms <= result.total_ms + 1,
    'the setup (the destination made the VM and committed its memory) is measured, before round 0 and inside the total',
  )
  // From the guest's pause here to its resume there, both stamped by wall clocks (one process here).
  t.ok(result.paused_at_ms !== null && result.paused_at_ms > 1e12, 'the pause is stamped with the wall clock')
  t.ok(
    // (Date.now() counts whole ms, the source's clock finer: hence the 1 ms.)
    result.guest_paused_ms !== null && result.guest_paused_ms >= 0 && result.guest_paused_ms <= result.blackout_ms! + 1,
    'the guest was paused from its pause here to its resume there: within what the source measured',
  )
  const completed = p.sourceEvents.find((e) => e.kind === 'migration.completed')
  t.equal(completed?.details.guest_paused_ms, result.guest_paused_ms, 'the timeline carries it')
  t.same(
    p.sourceEvents.map((e) => e.kind).filter((k) => k !== 'migration.precopy' && k !== 'migration.throttled'),
    ['migration.setup', 'migration.blackout', 'migration.storage', 'migration.resumed', 'migration.completed'],
    'every stage is on the timeline',
  )
  t.same(p.source.outgoing, { running: 0, queued: 0 })
})

t.test('the link is cut mid pre-copy: the VM keeps running on the source, memory intact', async (t) => {
  // An idle guest first, so memory must be bit-for-bit what it was.
  const p = await pair(t, {}, (e, pp) => {
    if (e.kind === 'migration.precopy' && e.details.round === 0) pp.conn.terminate()
  })
  const vm = guest('db1', 64, 2, null)
  const before = vm.memory.sha256()
  const result = await p.source.migrate(vm, p.conn).result
  t.equal(result.outcome, 'failed')
  t.match(result.reason, /was lost \(WebSocket close 1006\)/, 'the reason says the link was cut')
  t.notOk(vm.paused, 'never paused')
  t.equal(vm.memory.sha256(), before, 'source memory untouched')
  t.equal(p.arrived.length, 0, 'nothing runs on the destination')
  await until('the destination discards its skeleton VM', () => p.destinationEvents.some((e) => e.kind === 'migration.aborted'))
})

t.test('a VM on a CSV: the link cut once the blackout request that resumes it may be out leaves it in doubt, paused', async (t) => {
  // migration.storage comes just before that request (the CSV has no storage step): the cut
  // lands where the destination might already run the VM, so the source may neither resume
  // its copy nor release it; the cluster settles it by asking the destination.
  const p = await pair(t, {}, (e, pp) => {
    if (e.kind === 'migration.storage') pp.conn.terminate()
  })
  const vm = guest('web9', 16, 9, null)
  const result = await p.source.migrate(vm, p.conn).result
  t.equal(result.outcome, 'in_doubt')
  t.ok(vm.paused, 'the source copy stays paused')
  t.ok(
    p.sourceEvents.some((e) => e.kind === 'migration.in-doubt'),
    'and says so on the timeline',
  )
  await until('the destination discards what it prepared', () => p.destinationEvents.some((e) => e.kind === 'migration.aborted'))
  t.equal(p.arrived.length, 0, 'here the request never left: nothing runs on the destination')
})

t.test(
  'a destination that answers the resuming blackout request with anything but running: in doubt, never taken as running',
  async (t) => {
    // A hand-driven destination: ready, every round acknowledged, and the blackout that asks to
    // resume answered "prepared". The source must not release its copy on that answer.
    const server = await startServer(t, {
      limits: { dead_after_ms: 30_000 },
      onPeer: (c) => {
        let batches = 0
        c.onRequest('migration-begin', ({ message }) => ({ message: { t: 'migration-ready', migration_id: message.migration_id } }))
        c.onMessage('migration-pages', () => void batches++)
        c.onRequest('migration-round-end', ({ message }) => {
          const ack = {
            t: 'migration-round-ack' as const,
            migration_id: message.migration_id,
            round: message.round,
            batches: message.batches,
            pages: batches,
          }
          batches = 0
          return { message: ack }
        })
        c.onRequest('migration-blackout', ({ message }) => ({
          message: { t: 'migration-prepared', migration_id: message.migration_id, memory_sha256: null },
        }))
      },
    })
    const conn = await connect(t, server.port, { limits: { dead_after_ms: 30_000 } })
    const source = new MigrationService({ host: 'client-b', log: silentLogger(), pool })
    const vm = guest('web8', 4, 8, null)
    const result = await source.migrate(vm, conn).result
    t.equal(result.outcome, 'in_doubt', 'an answer that is not running does not complete it')
    t.ok(vm.paused, 'the source copy stays paused for the settlement')
  },
)

t.test('a destination slower than the wire paces the source (its send window), not fails it', async (t) => {
  // Applying takes 100 ms a call here, far slower than loopback brings 4 MiB batches; the
  // destination lets 9 MiB wait and grants half as the window. An unpaced source filled that
  // bound within round 0 and the arrival failed (HVLAB_E_BACKPRESSURE).
  // the file's pool (its worker is started), each apply call delayed
  const slow = new Proxy(apply_pool, {
    get(pool, key) {
      if (key === 'apply')
        return async (...args: Parameters<PageApplyPool['apply']>) => {
          await new Promise((r) => setTimeout(r, 100))
          return pool.apply(...args)
        }
      const value: unknown = Reflect.get(pool, key)
      return typeof value === 'function' ? value.bind(pool) : value
    },
  })
  const p = await pair(t, {})
  const destination = new MigrationService({
    host: 'server-s',
    log: silentLogger(),
    pool,
    apply_pool: slow,
    apply_queue_bytes_max: 9 * MiB,
    onArrived: (vm) => p.arrived.push(vm),
    onEvent: (e) => p.destinationEvents.push(e),
  })
  const server = await startServer(t, { onPeer: (c) => destination.attach(c), limits: { dead_after_ms: 30_000 } })
  const conn = await connect(t, server.port, { limits: { dead_after_ms: 30_000 } })
  const vm = guest('big1', 32, 5, null)
  randomFillSync(vm.memory.bytes) // every page whole on the wire: 32 MiB in round 0
  const result = await p.source.migrate(vm, conn).result
  t.equal(result.outcome, 'completed', result.reason)
  t.notOk(
    p.destinationEvents.some((e) => e.kind === 'migration.aborted'),
    'the apply queue never overflowed',
  )
  t.equal(p.arrived[0]?.memory.sha256(), vm.memory.sha256(), 'memory arrived whole')
})

t.test('the link is cut mid pre-copy under load: the guest goes on writing, unthrottled', async (t) => {
  let rounds = 0
  const vm = guest('app1', 16, 3, { dirty_mib_per_s: 200 })
  const p = await pair(t, {}, (e, pp) => {
    if (e.kind !== 'migration.precopy') return
    if (++rounds === 3) return pp.conn.terminate()
    // Besides the workload, write 8 pages while this round runs (after it took the dirty
    // set), so it never ends with nothing dirty and pre-copy surely goes on.
    setImmediate(() => vm.memory.fill(0, 8 * PAGE_SIZE_BYTES, rounds))
  })
  vm.workload?.start()
  t.teardown(() => vm.workload?.stop())
  // a tiny budget keeps pre-copy going round after round
  const result = await p.source.migrate(vm, p.conn, { downtime_budget_ms: 0.001, round_cap: 50 }).result
  t.equal(result.outcome, 'failed', result.reason)
  t.notOk(vm.paused)
  t.equal(vm.workload?.throttle_pct, 0, 'the throttle is lifted')
  const touches = vm.workload?.stats.touches ?? 0
  await until('the guest writes again', () => (vm.workload?.stats.touches ?? 0) > touches)
  t.pass('the guest keeps running on the source')
})

t.test('cancel mid pre-copy: cancelled, VM on the source, destination discards', async (t) => {
  const p = await pair(t, {}, (e, pp) => {
    if (e.kind === 'migration.precopy' && e.details.round === 0) pp.source.cancel('web2', 'operator cancelled')
  })
  const vm = guest('web2', 32, 4, null)
  const before = vm.memory.sha256()
  const result = await p.source.migrate(vm, p.conn).result
  t.equal(result.outcome, 'cancelled')
  t.notOk(vm.paused)
  t.equal(vm.memory.sha256(), before)
  await until('the destination discards', () => p.destinationEvents.some((e) => e.kind === 'migration.aborted'))
  t.equal(p.arrived.length, 0)
  t.ok(p.conn.isOpen, 'a cancel does not close the connection')
})

t.test('storage refused inside the blackout: the VM resumes on the source', async (t) => {
  const p = await pair(t)
  const memory = GuestMemory.create(256)
  const vm = new LabVm({ name: 'clx1', memory, storage: 'clx' }) // no CLX hook: refused
  const result = await p.source.migrate(vm, p.conn).result
  t.equal(result.outcome, 'failed')
  t.match(result.reason, /storage hand-over refused.*CLX/)
  t.equal(result.guest_paused_ms, null, 'it never paused elsewhere')
  t.type(result.paused_at_ms, 'number', 'it paused here (the blackout began)')
  t.notOk(vm.paused, 'resumed on the source')
  t.equal(p.arrived.length, 0)
})

t.test('outgoing migrations are bounded; beyond the queue they are refused', async (t) => {
  const p = await pair(t, { outgoing_max: 1, queue_max: 1 })
  const vms = [0, 1, 2].map((i) => new LabVm({ name: `small${i}`, memory: GuestMemory.create(64) }))
  const a = p.source.migrate(vms[0] as LabVm, p.conn)
  const b = p.source.migrate(vms[1] as LabVm, p.conn)
  t.same(p.source.outgoing, { running: 1, queued: 1 })
  t.throws(() => p.source.migrate(vms[2] as LabVm, p.conn), { code: 'HVLAB_E_BACKPRESSURE' })
  t.throws(() => p.source.migrate(vms[0] as LabVm, p.conn), { code: 'HVLAB_E_STATE' }, 'one migration per VM')
  t.equal((await a.result).outcome, 'completed')
  t.equal((await b.result).outcome, 'completed')
  t.same(p.arrived.map((v) => v.name).sort(), ['small0', 'small1'])
})

t.test('a queued migration can be cancelled before it starts', async (t) => {
  const p = await pair(t, { outgoing_max: 1 })
  const a = p.source.migrate(new LabVm({ name: 'q0', memory: GuestMemory.create(64) }), p.conn)
  const b = p.source.migrate(new LabVm({ name: 'q1', memory: GuestMemory.create(64) }), p.conn)
  t.ok(p.source.cancel('q1'))
  t.equal((await b.result).outcome, 'cancelled')
  t.equal((await a.result).outcome, 'completed')
  t.same(
    p.arrived.map((v) => v.name),
    ['q0'],
  )
})

t.test('a storage hook moves an owned disk inside the blackout', async (t) => {
  const calls: string[] = []
  const p = await pair(t, {
    storage: {
      handOver: async (r) => void calls.push(`over ${r.vm} ${r.mode} ${r.source}->${r.destination}`),
      handBack: async (r) => void calls.push(`back ${r.vm}`),
    },
  })
  const vm = new LabVm({ name: 'own1', memory: GuestMemory.create(128), storage: 'owned' })
  const result = await p.source.migrate(vm, p.conn).result
  t.equal(result.outcome, 'completed', result.reason)
  t.same(calls, ['over own1 owned client-b->server-a'], 'handed over once, never back')
})

t.test('a malformed batch from a source: the destination discards and the source fails', async (t) => {
  const p = await pair(t)
  await p.conn.request({ t: 'migration-begin', migration_id: 'm-evil', vm: 'evil1', page_count: 16, storage: 'csv', verify: false })
  const garbage = new Uint8Array(64).fill(0xee)
  await p.conn.send({ t: 'migration-pages', migration_id: 'm-evil', round: 0, seq: 0 }, garbage)
  await t.rejects(p.conn.request({ t: 'migration-round-end', migration_id: 'm-evil', round: 0, batches: 1 }), { code: 'HVLAB_E_NOT_FOUND' })
  t.ok(
    p.destinationEvents.some((e) => e.kind === 'migration.aborted' && /malformed page batch/.test(String(e.details.reason))),
    'aborted, with the reason',
  )
  t.equal(p.arrived.length, 0)
  t.ok(p.conn.isOpen, 'the connection serves other migrations on')
})

t.test('the destination refuses a VM that would not fit its memory allowance; the VM stays on the source', async (t) => {
  const p = await pair(t)
  const small = new MigrationService({ host: 'server-a', log: silentLogger(), pool, incoming_bytes_max: 1024 * 1024 })
  const server = await startServer(t, { name: 'server-small', onPeer: (c) => small.attach(c) })
  const conn = await connect(t, server.port)
  const vm = new LabVm({ name: 'big1', memory: GuestMemory.create(512) }) // 2 MiB
  const result = await p.source.migrate(vm, conn).result
  t.equal(result.outcome, 'failed')
  t.match(result.reason, /cannot take vm big1.*over the 1 MiB allowed/)
  t.notOk(vm.paused)
})

t.test('two migrations at once (the default bound) share the host pool and both arrive whole', async (t) => {
  const p = await pair(t)
  const a = guest('pair-a', 8, 5, { dirty_mib_per_s: 20 })
  const b = guest('pair-b', 8, 6, { dirty_mib_per_s: 20 })
  a.workload?.start()
  b.workload?.start()
  t.teardown(() => (a.workload?.stop(), b.workload?.stop()))
  const ha = p.source.migrate(a, p.conn, { verify: true })
  const hb = p.source.migrate(b, p.conn, { verify: true })
  t.same(p.source.outgoing, { running: 2, queued: 0 })
  const [ra, rb] = await Promise.all([ha.result, hb.result])
  for (const r of [ra, rb]) {
    t.equal(r.outcome, 'completed', r.reason)
    t.ok(r.source_sha256 && r.source_sha256 === r.destination_sha256, `${r.vm}: hashes equal`)
  }
})
