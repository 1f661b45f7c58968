import t, { type Test } from 'tap'
import { ManualClock } from '../../shared/clock.js'
import { COMMIT_WAIT_MS } from '../../agent/cluster/commit-waits.js'
import { RoleService, type HostRequests } from '../../agent/cluster/role-service.js'
import { decodeRoles, encodeRole, roleKey } from '../../agent/cluster/role-record.js'
import { createVmRole } from '../../agent/cluster/vm-role.js'
import type { InventoryVmRecord } from '../../shared/protocol/cluster-messages.js'

const HOSTS = ['host-a1', 'host-a2', 'host-b1']
const flush = async (): Promise<void> => {
  for (let i = 0; i < 10; i++) await Promise.resolve()
}

/** A role service on host-a1 with a fake membership, fake hosts (VMs in maps) and a clock. */
function world(config: Record<string, string> = {}, time_scale?: number) {
  const clock = new ManualClock(10_000)
  const m = { coordinator: true, lease: true, epoch: 5, members: [...HOSTS], config, roles_free_at_ms: 0 }
  const vms = new Map<string, Map<string, number>>(HOSTS.map((h) => [h, new Map()]))
  const events: { kind: string; details: Record<string, unknown> }[] = []
  const writes: string[] = []
  let dropWrites = false
  const requests: HostRequests = {
    async start(node, r) {
      vms.get(node)!.set(r.role, r.op)
      return { ok: true, reason: 'ok' }
    },
    async stop(node, r) {
      vms.get(node)!.delete(r.role)
      return { ok: true, reason: 'ok' }
    },
    async inventory(node): Promise<InventoryVmRecord[]> {
      return [...vms.get(node)!].map(([role, op]) => ({ role, op, epoch: 5, memory_mib: 1024, state: 'running', guest_heartbeats: 0 }))
    },
  }
  const s = new RoleService({
    name: 'host-a1',
    clock,
    hosts: HOSTS.map((name) => ({ name, memory_mib: 8192 })),
    membership: {
      isCoordinator: () => m.coordinator,
      holdsLease: () => m.lease,
      runsRoles: () => m.coordinator && m.lease,
      view: () => ({ epoch: m.epoch, members: m.members }),
      rolesFreeAtMs: () => m.roles_free_at_ms,
      database: () => ({ config: m.config }),
    },
    writeConfig: (key, value) => {
      writes.push(key)
      if (dropWrites) return
      if (value === null) delete m.config[key]
      else m.config[key] = value
    },
    requests,
    emitEvent: (kind, details) => events.push({ kind, details }),
    log: { info() {}, warn() {} },
    tick_ms: 100,
    inventory_interval_ms: 3000,
    ...(time_scale === undefined ? {} : { time_scale }),
  })
  const tick = async (ms = 100): Promise<void> => {
    clock.advance(ms)
    s.tick()
    await flush()
  }
  return { s, m, vms, events, writes, tick, clock, setDropWrites: (v: boolean) => (dropWrites = v) }
}

t.test('takeover: roles come from the database, the hosts’ inventories say where they run', async (t) => {
  const web1 = {
    ...createVmRole({ name: 'web1', preferred_owners: ['host-a2'] }),
    state: 'running' as const,
    owner: 'host-a2',
    last_owner: 'host-a2',
    reason: 'running',
  }
  const w = world({ [roleKey('web1')]: encodeRole(web1), 'node/host-b1/state': 'paused' })
  w.vms.get('host-a2')!.set('web1', 4)
  await w.tick()
  await w.tick()
  t.ok(w.events.some((e) => e.kind === 'role.coordinator-started' && e.details.roles === 1))
  t.ok(w.events.some((e) => e.kind === 'role.coordinator-synced'))
  t.same(
    w.s.list()?.map((r) => [r.name, r.state, r.owner]),
    [['web1', 'running', 'host-a2']],
  )
  t.equal(w.vms.get('host-a2')!.get('web1'), 4, 'not restarted: adopted as it runs')
  await t.rejects(w.s.command({ op: 'move', name: 'web1', to: 'host-b1' }), /host-b1 is paused/, 'the pause came from the database')
})

t.test('commands persist role records through the database; a lost write is repeated', async (t) => {
  const w = world()
  await w.tick()
  await w.s.command({ op: 'create', spec: { name: 'db1', preferred_owners: ['host-b1'] } })
  t.ok(w.m.config[roleKey('db1')], 'a command answers once its record is committed')
  w.setDropWrites(true)
  let answered = false
  const started = w.s.command({ op: 'start', name: 'db1' }).then(() => (answered = true))
  await flush()
  t.equal(w.vms.get('host-b1')!.has('db1'), true, 'started on its preferred owner')
  await w.tick()
  const before = w.writes.length
  t.ok(before > 0, 'the write was attempted')
  await w.tick()
  t.equal(w.writes.length, before, 'not repeated at once')
  t.equal(answered, false, 'the command waits while its write is not committed')
  w.setDropWrites(false)
  await w.tick(1600)
  t.ok(w.writes.length > before, 'repeated after the retry time')
  await w.tick()
  await started
  t.equal(answered, true, 'and answers once the repeated write is committed')
  t.same(
    decodeRoles(w.m.config).roles.map((r) => [r.name, r.state, r.owner]),
    [['db1', 'running', 'host-b1']],
    'the database has the running role',
  )
})

t.test(
  'a command whose write does not reach the quorum is refused by code, at its deadline or when the coordinator steps down',
  async (t) => {
    const w = world()
    await w.tick()
    await w.s.command({ op: 'create', spec: { name: 'db1', preferred_owners: ['host-b1'] } })
    w.setDropWrites(true)
    const set = w.s.command({ op: 'set', name: 'db1', changes: { load: { dirty_mib_per_s: 1, disk_iops: 5 } } })
    const refused = t.rejects(set, {
      code: 'HVLAB_E_STATE',
      message: /the set of vm db1 was accepted but not committed .*not within 2000 ms/,
    })
    for (let ms = 0; ms <= COMMIT_WAIT_MS; ms += 100) await w.tick()
    await refused
    const again = w.s.command({ op: 'set', name: 'db1', changes: { load: { dirty_mib_per_s: 2, disk_iops: 5 } } })
    const dropped = t.rejects(again, { code: 'HVLAB_E_STATE', message: /host-a1 stopped coordinating before they reached the quorum/ })
    await flush()
    w.m.coordinator = false
    w.m.lease = false
    await w.tick()
    await dropped
    t.notOk(w.s.running, 'the roles were dropped')
  },
)

/** A world whose web1 runs on host-b1 (host-a2 its next preferred owner). */
async function web1OnB1(t: Test) {
  const w = world()
  await w.tick()
  await w.s.command({ op: 'create', spec: { name: 'web1', preferred_owners: ['host-b1', 'host-a2'] } })
  await w.s.command({ op: 'start', name: 'web1' })
  await flush()
  t.ok(w.vms.get('host-b1')!.has('web1'))
  return w
}

t.test('a host that left the view: its roles restart elsewhere only from roles_free_at_ms on', async (t) => {
  const w = await web1OnB1(t)
  // host-b1 is cut off: a view change without it (the lease lapses meanwhile)
  w.m.lease = false
  await w.tick()
  w.m.epoch = 6
  w.m.members = ['host-a1', 'host-a2']
  w.m.roles_free_at_ms = w.clock.now() + 2000
  w.m.lease = true
  await w.tick()
  t.notOk(w.vms.get('host-a2')!.has('web1'), 'not restarted before its roles are free')
  t.equal(w.s.list()?.[0]?.owner, 'host-b1')
  await w.tick(2000)
  t.ok(w.vms.get('host-a2')!.has('web1'), 'restarted on the next preferred owner once free')
  t.ok(w.events.some((e) => e.kind === 'role.failed-over' && e.details.to === 'host-a2'))
})

t.test('a vm that crashed is restarted by the tick once the restart delay is over, with no other input', async (t) => {
  const w = world()
  await w.tick()
  await w.s.command({ op: 'create', spec: { name: 'web1', preferred_owners: ['host-a2'] } })
  await w.s.command({ op: 'start', name: 'web1' })
  await flush()
  const op = w.vms.get('host-a2')!.get('web1')!
  w.vms.get('host-a2')!.delete('web1')
  w.s.vmFailed('host-a2', 'web1', op, true, 'guest crashed')
  await flush()
  t.equal(w.s.list()?.[0]?.state, 'pending', 'held for the restart delay')
  await w.tick(100)
  t.notOk(w.vms.get('host-a2')!.has('web1'), 'not within the delay')
  for (let i = 0; i < 5; i++) await w.tick(100)
  t.ok(w.vms.get('host-a2')!.has('web1'), 'restarted in place on a tick after the delay')
  t.ok(w.vms.get('host-a2')!.get('web1')! > op, 'as a new start')
})

t.test('the failover policy’s periods shrink with the lab’s timeScale', async (t) => {
  const w = world({}, 0.001)
  await w.tick()
  t.match(w.s.listExtras()?.failover_policy, { restart_period_ms: 900, failover_period_ms: 21_600 }, '15 min and 6 h at 1/1000')
  const real = world()
  await real.tick()
  t.match(
    real.s.listExtras()?.failover_policy,
    { restart_period_ms: 15 * 60_000, failover_period_ms: 6 * 3_600_000 },
    'unscaled by default',
  )
})

t.test('not the coordinator with quorum: commands are refused and the roles are dropped', async (t) => {
  const w = world()
  await w.tick()
  t.ok(w.s.running)
  w.m.coordinator = false
  w.m.lease = false
  await w.tick()
  t.notOk(w.s.running, 'dropped when another host coordinates')
  await t.rejects(w.s.command({ op: 'start', name: 'x' }), /not the cluster coordinator with quorum/)
})

t.test('role records: round trip, damaged entries skipped, long reasons shortened', async (t) => {
  const r = { ...createVmRole({ name: 'web1', preferred_owners: ['host-a1'] }), reason: 'x'.repeat(2000) }
  const value = encodeRole(r)
  t.ok(value.length <= 1024)
  const d = decodeRoles({ [roleKey('web1')]: value, 'role/bad': '{', 'role/other': value, 'node/host-a1/state': 'paused', unrelated: 'v' })
  t.same(
    d.roles.map((x) => x.name),
    ['web1'],
  )
  t.same(d.paused, ['host-a1'])
  t.same(d.damaged.map((x) => x.key).sort(), ['role/bad', 'role/other'])
})

t.test('a new view with the same members reaches the controller: its starts carry the new epoch (found by the roles sim)', async (t) => {
  const w = world()
  const epochs: number[] = []
  const start = w.s['deps'].requests.start
  w.s['deps'].requests.start = async (node, r) => {
    epochs.push(r.epoch)
    return start(node, r)
  }
  await w.tick()
  await w.tick()
  w.m.epoch = 6 // re-formed with the same members; host-a1 stays the coordinator
  await w.tick()
  await w.s.command({ op: 'create', spec: { name: 'web1' } })
  await w.s.command({ op: 'start', name: 'web1' })
  await w.tick()
  t.same(epochs, [6], 'the start is for epoch 6, not the stale 5 the hosts would refuse')
})

t.test('a view read before its view-changed event: a host outside it is not taken for down before its roles are free', async (t) => {
  // The membership steps at once and its events wait for its record's fsync (cluster-driver.ts):
  // a tick in between sees the new view, and its removed host's VMs may still run then.
  const w = await web1OnB1(t)
  await w.tick(5000) // long after the takeover
  w.m.epoch = 6
  w.m.members = ['host-a1', 'host-a2']
  w.m.roles_free_at_ms = w.clock.now() + 2000
  await w.tick()
  t.notOk(w.vms.get('host-a2')!.has('web1'), 'not restarted before its roles are free')
  t.notOk(
    w.events.some((e) => e.kind === 'node.lost'),
    'host-b1 is not lost yet',
  )
  await w.tick(2000)
  t.ok(w.vms.get('host-a2')!.has('web1'), 'restarted on the next preferred owner once free')
})
