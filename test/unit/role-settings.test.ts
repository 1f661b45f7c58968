/**
 * The role controller's `set` op (`hvlab vm set`), priorities (start order, No Auto Start),
 * anti-affinity, site-aware failover, drain status, and failure counters that survive a
 * coordinator change (they live in the role record).
 */
import t from 'tap'
import { RoleController, type RoleCommand, type RoleEffect, type RoleInput } from '../../agent/cluster/role-controller.js'
import type { NodeView } from '../../agent/cluster/placement.js'
import { decodeRoles, encodeRole, roleKey } from '../../agent/cluster/role-record.js'
import type { VmRole } from '../../agent/cluster/vm-role.js'

type Start = Extract<RoleEffect, { kind: 'start-vm' }>
type Stop = Extract<RoleEffect, { kind: 'stop-vm' }>
const starts = (fx: RoleEffect[]) => fx.filter((f): f is Start => f.kind === 'start-vm')
const stops = (fx: RoleEffect[]) => fx.filter((f): f is Stop => f.kind === 'stop-vm')
const records = (fx: RoleEffect[]) => fx.flatMap((f) => (f.kind === 'write-role-record' ? [f.role] : []))
const kinds = (fx: RoleEffect[]) => fx.flatMap((f) => (f.kind === 'emit' ? [f.event.kind] : []))

const SITES: Record<string, string> = { 'host-a1': 'site-a', 'host-a2': 'site-a', 'host-b1': 'site-b', 'host-b2': 'site-b' }

function lab(memory_mib = 8192) {
  const c = new RoleController()
  let now = 1_000_000
  let epoch = 1
  const statuses: Record<string, NodeView['status']> = { 'host-a1': 'up', 'host-a2': 'up', 'host-b1': 'up', 'host-b2': 'up' }
  const view = () => Object.entries(statuses).map(([name, status]) => ({ name, status, memory_mib, site: SITES[name]! }))
  const step = (input: RoleInput) => c.step(input, (now += 1000))
  step({ kind: 'membership', epoch, nodes: view() })
  const l = {
    c,
    step,
    setNode: (name: string, status: NodeView['status']) => {
      statuses[name] = status
      return step({ kind: 'membership', epoch: ++epoch, nodes: view() })
    },
    cmd: (command: RoleCommand) => step({ kind: 'command', command }),
    started: (s: Start) => step({ kind: 'vm-started', role: s.role, node: s.node, op: s.op }),
    stopped: (s: Stop) => step({ kind: 'vm-stopped', role: s.role, node: s.node, op: s.op }),
    running(name: string, preferred_owners: string[], extra: Partial<Extract<RoleCommand, { op: 'create' }>['spec']> = {}) {
      l.cmd({ op: 'create', spec: { name, memory_mib: 1024, preferred_owners, ...extra } })
      const [s] = starts(l.cmd({ op: 'start', name }))
      if (!s) throw new Error(`no start for ${name}`)
      l.started(s)
      return s
    },
  }
  return l
}

const refusedWith = (code: string, message: RegExp) => ({ name: 'HvlabError', code, message })

t.test('set: settings change at once and are recorded; memory only while the vm is on no node', async (t) => {
  const l = lab()
  l.running('web1', ['host-a1'])
  const fx = l.cmd({
    op: 'set',
    name: 'web1',
    changes: {
      preferred_owners: ['host-b1', 'host-a1'],
      priority: 'high',
      anti_affinity: 'web',
      failback: { enabled: true, window: { start_hour: 22, end_hour: 6 } },
    },
  })
  const [rec] = records(fx)
  t.match(rec, {
    name: 'web1',
    state: 'running',
    owner: 'host-a1',
    preferred_owners: ['host-b1', 'host-a1'],
    priority: 'high',
    anti_affinity: 'web',
    failback: { enabled: true, window: { start_hour: 22, end_hour: 6 } },
  })
  t.same(stops(fx), [], 'a running vm is not moved for new settings')
  t.match(fx.find((f) => f.kind === 'emit')?.event, {
    kind: 'role.settings-changed',
    details: { role: 'web1', changes: /preferred=host-b1,host-a1 priority=high failback=window:22-6 anti_affinity=web/ },
  })
  t.same(l.cmd({ op: 'set', name: 'web1', changes: { priority: 'high' } }), [], 'no change: nothing written')
  t.throws(() => l.cmd({ op: 'set', name: 'web1', changes: { memory_mib: 2048 } }), refusedWith('HVLAB_E_STATE', /stop it first/))
  t.match(l.c.role('web1'), { memory_mib: 1024 }, 'a refused set changes nothing')
  l.stopped(stops(l.cmd({ op: 'stop', name: 'web1' }))[0]!)
  t.match(records(l.cmd({ op: 'set', name: 'web1', changes: { memory_mib: 2048 } })), [{ memory_mib: 2048, state: 'stopped' }])
  t.match(starts(l.cmd({ op: 'start', name: 'web1' })), [{ node: 'host-b1', memory_mib: 2048 }], 'the new preferred owner and memory')
})

t.test('the guest load (vm load) is kept in the role, merged, and carried by every start', async (t) => {
  const l = lab()
  l.running('web1', ['host-a1', 'host-a2'])
  const fx = l.cmd({ op: 'set', name: 'web1', changes: { load: { disk_iops: 20 } } })
  t.match(records(fx).at(-1), { load: { disk_iops: 20 } }, 'recorded')
  t.ok(kinds(fx).includes('role.settings-changed'))
  l.cmd({ op: 'set', name: 'web1', changes: { load: { dirty_mib_per_s: 2 } } })
  t.same(l.c.role('web1')?.load, { disk_iops: 20, dirty_mib_per_s: 2 }, 'merged: what was not given keeps its value')
  const [restart] = starts(l.setNode('host-a1', 'down'))
  t.match(restart, { node: 'host-a2', load: { disk_iops: 20, dirty_mib_per_s: 2 } }, 'the failover start carries it')
  const back = decodeRoles({ [roleKey('web1')]: encodeRole(l.c.role('web1')!) })
  t.same(back.roles[0]?.load, { disk_iops: 20, dirty_mib_per_s: 2 }, 'and the record keeps it for the next coordinator')
  l.cmd({ op: 'create', spec: { name: 'idle', memory_mib: 64, preferred_owners: ['host-b1'] } })
  t.match(starts(l.cmd({ op: 'start', name: 'idle' })), [{ role: 'idle', load: null }], 'a role never loaded starts idle')
})

t.test('set: the same checks as create, with what to fix', async (t) => {
  const l = lab()
  l.cmd({ op: 'create', spec: { name: 'web1', memory_mib: 1024 } })
  t.throws(
    () => l.cmd({ op: 'set', name: 'web1', changes: { preferred_owners: ['host-zz'] } }),
    refusedWith('HVLAB_E_USAGE', /cannot change vm web1: host-zz is not a node/),
  )
  t.throws(
    () => l.cmd({ op: 'set', name: 'web1', changes: { preferred_owners: ['host-a1', 'host-a1'] } }),
    refusedWith('HVLAB_E_USAGE', /cannot change vm web1: preferred owner host-a1 is listed twice/),
  )
  t.throws(
    () => l.cmd({ op: 'set', name: 'web1', changes: { failback: { enabled: true, window: { start_hour: 5, end_hour: 5 } } } }),
    refusedWith('HVLAB_E_USAGE', /window 5–5 is empty/),
  )
  t.throws(
    () => l.cmd({ op: 'set', name: 'web1', changes: { memory_mib: 9000 } }),
    refusedWith('HVLAB_E_REFUSED', /largest host it may run on \(host-a1\) has 8192 MiB/),
  )
  t.throws(() => l.cmd({ op: 'set', name: 'nope', changes: { priority: 'low' } }), refusedWith('HVLAB_E_NOT_FOUND', /no vm named nope/))
  l.cmd({ op: 'create', spec: { name: 'loc', memory_mib: 1024, preferred_owners: ['host-a1'], possible_owners: ['host-a1'] } })
  t.throws(
    () => l.cmd({ op: 'set', name: 'loc', changes: { preferred_owners: ['host-a2'] } }),
    refusedWith('HVLAB_E_USAGE', /host-a2 is not a possible owner/),
  )
  t.match(l.c.role('web1'), { preferred_owners: [], memory_mib: 1024 })
})

t.test('create refuses a vm no host of the cluster can hold, naming the largest host', async (t) => {
  const l = lab()
  t.throws(
    () => l.cmd({ op: 'create', spec: { name: 'huge', memory_mib: 65536 } }),
    refusedWith('HVLAB_E_REFUSED', /needs 65536 MiB and the largest host it may run on \(host-a1\) has 8192 MiB/),
  )
  t.equal(l.c.role('huge'), undefined)
})

t.test('priority: when a host dies its roles are placed high first; none is not started elsewhere', async (t) => {
  const l = lab(2048)
  l.running('a-low', ['host-a1'], { priority: 'low', memory_mib: 1024 })
  l.running('b-high', ['host-a1'], { priority: 'high', memory_mib: 1024 })
  l.running('c-none', ['host-b1'], { priority: 'none', memory_mib: 1024 })
  l.running('d-fill', ['host-a2'], { memory_mib: 1024 })
  // Only one of the two fits on host-a2 (1024 of its 2048 MiB free): the high one must get it.
  l.setNode('host-b1', 'down')
  t.match(l.c.role('c-none'), { state: 'stopped', owner: null, reason: /no auto start/ })
  for (const n of ['host-b2']) l.setNode(n, 'down')
  const fx = l.setNode('host-a1', 'down')
  t.same(
    starts(fx).map((s) => [s.role, s.node]),
    [['b-high', 'host-a2']],
  )
  t.match(l.c.role('a-low'), { state: 'pending' })
  t.ok(kinds(fx).indexOf('role.starting') < kinds(fx).lastIndexOf('role.pending'), 'high placed before low')
  t.match(l.c.role('c-none'), { state: 'stopped' }, 'still off while hosts come and go')
  l.setNode('host-b1', 'up')
  t.match(l.c.role('c-none'), { state: 'stopped' }, 'not even when its host is back')
  t.match(starts(l.cmd({ op: 'start', name: 'c-none' })), [{ role: 'c-none', node: 'host-b1' }], 'the operator starts it')
})

t.test('failover follows the preferred owners; among the others it stays in the failed host’s site', async (t) => {
  const ranked = lab()
  ranked.running('web1', ['host-a1', 'host-b1'])
  t.match(starts(ranked.setNode('host-a1', 'down')), [{ role: 'web1', node: 'host-b1' }], 'the next preferred owner, in site-b')
  const unranked = lab()
  unranked.running('web2', ['host-a1'])
  t.match(starts(unranked.setNode('host-a1', 'down')), [{ role: 'web2', node: 'host-a2' }], 'no preference left: its own site')
})

t.test('anti-affinity: roles of one class start on different hosts', async (t) => {
  const l = lab()
  l.running('sql1', ['host-a1'], { anti_affinity: 'sql' })
  l.cmd({ op: 'create', spec: { name: 'sql2', memory_mib: 1024, preferred_owners: ['host-a1'] } })
  l.cmd({ op: 'set', name: 'sql2', changes: { anti_affinity: 'sql' } })
  t.match(starts(l.cmd({ op: 'start', name: 'sql2' })), [{ node: 'host-a2' }])
})

t.test('drain status: InProgress, then Completed; NotInitiated again after resume; drain stays in the site', async (t) => {
  const l = lab()
  l.running('web1', [])
  const status = (node: string) => l.c.drainStatuses().find((d) => d.node === node)?.status
  const owner = l.c.role('web1')!.owner!
  t.equal(status(owner), 'NotInitiated')
  const fx = l.cmd({ op: 'pause', node: owner, drain: true })
  t.equal(status(owner), 'InProgress')
  const [start] = starts(l.stopped(stops(fx)[0]!))
  t.equal(SITES[start!.node], SITES[owner], 'moved within its site')
  l.started(start!)
  t.equal(status(owner), 'Completed')
  l.cmd({ op: 'resume', node: owner, failback: false })
  t.equal(status(owner), 'NotInitiated')
})

t.test('failure counters live in the role record: a new coordinator continues them', async (t) => {
  const l = lab()
  l.running('web1', ['host-a1', 'host-a2', 'host-b1', 'host-b2'])
  const fx = l.setNode('host-a1', 'down')
  l.started(starts(fx)[0]!)
  const rec = l.c.role('web1')!
  t.equal(rec.failures?.failovers_ms.length, 1, 'one failover recorded in the record')
  // The record goes through the database as the role service writes it.
  const db = decodeRoles({ [roleKey('web1')]: encodeRole(rec) })
  t.same(db.damaged, [])
  t.same(db.roles[0]?.failures, rec.failures)
  // A new coordinator (epoch 5) restores it; the role's host dies again.
  const c2 = new RoleController()
  c2.restore(db.roles as VmRole[], [], 5)
  let now = 2_000_000
  const nodes = (down: string[]) =>
    Object.keys(SITES).map((name) => ({
      name,
      site: SITES[name]!,
      memory_mib: 8192,
      status: (down.includes(name) ? 'down' : 'up') as NodeView['status'],
    }))
  c2.step({ kind: 'membership', epoch: 5, nodes: nodes(['host-a1']) }, (now += 1000))
  for (const n of Object.keys(SITES).filter((n) => n !== 'host-a1'))
    c2.step(
      { kind: 'inventory', node: n, vms: n === rec.owner ? [{ role: 'web1', op: 7 }] : [], ops_at_request: c2.opSnapshot() },
      (now += 1000),
    )
  c2.step({ kind: 'sync-done' }, (now += 1000))
  const after = c2.step({ kind: 'membership', epoch: 6, nodes: nodes(['host-a1', rec.owner!]) }, (now += 1000))
  const failure = after.find((f) => f.kind === 'emit' && f.event.kind === 'role.failure')
  t.match(failure, { event: { details: { action: 'failover', policy: /failover 2 of 3/ } } }, 'counted on from 1, not from 0')
  t.equal(c2.role('web1')?.failures?.failovers_ms.length, 2)
  t.match(c2.failoverLimits(), { failovers_max: 3, restarts_max: 3 })
})

t.test("a role's own failover threshold and period (WSFC FailoverThreshold, FailoverPeriod) replace the cluster's", async (t) => {
  const failoverAfterHostLoss = (l: ReturnType<typeof lab>, host: string) => {
    const fx = l.setNode(host, 'down')
    const failure = fx.find((f) => f.kind === 'emit' && f.event.kind === 'role.failure')
    const [start] = starts(fx)
    if (start) l.started(start)
    l.setNode(host, 'up')
    return failure?.kind === 'emit' ? (failure.event.details as { action?: string; policy?: string }) : undefined
  }
  const hosts = ['host-a1', 'host-a2', 'host-b1', 'host-b2']
  const byDefault = lab()
  byDefault.running('web1', hosts)
  const actions = [0, 1, 2, 3].map(() => failoverAfterHostLoss(byDefault, byDefault.c.role('web1')!.owner!))
  t.match(actions.at(-1), { action: 'fail' }, "the cluster's: 3 failovers (nodes − 1), then it stays failed")
  const raised = lab()
  raised.running('web1', hosts)
  const fx = raised.cmd({ op: 'set', name: 'web1', changes: { failover_threshold: 10, failover_period_h: 1 } })
  t.match(records(fx).at(-1), { failover_threshold: 10, failover_period_h: 1 }, 'kept in the record')
  t.ok(kinds(fx).includes('role.settings-changed'))
  const more = [0, 1, 2, 3, 4].map(() => failoverAfterHostLoss(raised, raised.c.role('web1')!.owner!))
  t.ok(
    more.every((d) => d?.action === 'failover'),
    `five failovers allowed: ${more.map((d) => d?.policy).join('; ')}`,
  )
  t.match(more.at(-1), { policy: /failover 5 of 10 within 1 h/ })
  raised.cmd({ op: 'set', name: 'web1', changes: { failover_threshold: null } })
  t.equal(raised.c.role('web1')!.failover_threshold, null, "default: back to the cluster's")
  t.throws(
    () => raised.cmd({ op: 'set', name: 'web1', changes: { failover_period_h: 0 } }),
    refusedWith('HVLAB_E_USAGE', /failover period/),
  )
  t.throws(
    () => raised.cmd({ op: 'set', name: 'web1', changes: { failover_threshold: 1001 } }),
    refusedWith('HVLAB_E_USAGE', /failover threshold/),
  )
})

t.test('an operator start clears the counters in the record', async (t) => {
  const l = lab()
  const s = l.running('web1', ['host-a1'])
  const fx = l.step({ kind: 'vm-failed', role: 'web1', node: 'host-a1', op: s.op, gone: true, reason: 'guest crashed' })
  t.match(records(fx).at(-1), { failures: { restarts: [{ node: 'host-a1' }] } }, 'the restart is in the record written')
  t.same(stops(l.cmd({ op: 'stop', name: 'web1' })), [], 'held for its restart delay on no node: stopped without a stop request')
  t.equal(l.c.role('web1')?.state, 'stopped')
  t.equal(l.c.nextHeldStartMs(), null, 'the operator stop drops the held restart')
  const again = l.cmd({ op: 'start', name: 'web1' })
  t.equal(records(again).at(-1)?.failures, undefined, 'cleared by the operator start')
})

t.test('a record with many failures still fits the database: the reason is cut first, then the oldest restarts', async (t) => {
  const l = lab()
  l.running('web1', ['host-a1'])
  const base = l.c.role('web1')!
  const restarts = Array.from({ length: 40 }, (_, i) => ({ node: `host-a${(i % 2) + 1}`, at_ms: 1_764_000_000_000 + i }))
  const big: VmRole = { ...base, reason: 'x'.repeat(500), failures: { restarts, failovers_ms: [1_764_000_000_000] } }
  const value = encodeRole(big)
  t.ok(value.length <= 1024, `${value.length} characters`)
  const back = decodeRoles({ [roleKey('web1')]: value })
  t.same(back.damaged, [])
  const kept = back.roles[0]!.failures!
  t.ok(kept.restarts.length < 40 && kept.restarts.length > 0, `${kept.restarts.length} restarts kept`)
  t.same(kept.restarts.at(-1), restarts.at(-1), 'the newest are kept')
  t.same(kept.failovers_ms, [1_764_000_000_000])
  const failovers_ms = Array.from({ length: 200 }, (_, i) => 1_764_000_000_000 + i)
  const many = encodeRole({ ...base, failover_threshold: 1000, failures: { restarts: [], failovers_ms } })
  t.ok(many.length <= 1024, 'a role allowed 1000 failovers still fits')
  const left = decodeRoles({ [roleKey('web1')]: many }).roles[0]!.failures!.failovers_ms
  t.ok(left.length > 10 && left.length < 200, `the newest ${left.length} failovers kept`)
  t.equal(left.at(-1), failovers_ms.at(-1))
})

t.test('a drain survives a coordinator change: its record says draining, and the next coordinator goes on', async (t) => {
  const l = lab()
  l.running('web1', ['host-a1'])
  l.running('web2', ['host-a1'])
  const before = l.c.list() // the coordinator dies after the pause record, before any move was recorded
  const paused = l.cmd({ op: 'pause', node: 'host-a1', drain: true })
  const written = paused.flatMap((f) => (f.kind === 'set-node-paused' ? [f] : []))
  t.match(written, [{ node: 'host-a1', paused: true, record: 'draining' }], 'written before any move of the drain')
  t.equal(
    paused.findIndex((f) => f.kind === 'set-node-paused'),
    0,
  )
  const config: Record<string, string> = { 'node/host-a1/state': 'draining' }
  for (const r of before) config[roleKey(r.name)] = encodeRole(r)
  const db = decodeRoles(config)
  t.same(db.paused_records, { 'host-a1': 'draining' })

  // The coordinator dies mid-drain: the next one restores the roles (both still on host-a1) and the drain.
  const next = new RoleController()
  next.restore(db.roles, db.paused, 2, db.paused_records)
  let now = 5_000_000
  const step = (input: RoleInput) => next.step(input, (now += 1000))
  const nodes = Object.entries(SITES).map(([name, site]) => ({ name, site, memory_mib: 8192, status: 'up' as const }))
  step({ kind: 'membership', epoch: 2, nodes })
  for (const n of nodes) {
    const vms = n.name === 'host-a1' ? before.map((r) => ({ role: r.name, op: 0 })) : []
    step({ kind: 'inventory', node: n.name, vms, ops_at_request: next.opSnapshot() })
  }
  const synced = step({ kind: 'sync-done' })
  t.equal(next.drainStatuses().find((d) => d.node === 'host-a1')?.status, 'InProgress')
  const moves = [...synced, ...step({ kind: 'failback-check', hour_of_day: 12 })].filter(
    (f) => f.kind === 'stop-vm' || f.kind === 'migrate-vm',
  )
  t.ok(moves.length > 0, 'the restored drain moves the roles off host-a1')

  const resumed = next.step({ kind: 'command', command: { op: 'resume', node: 'host-a1', failback: false } }, (now += 1000))
  t.match(
    resumed.filter((f) => f.kind === 'set-node-paused'),
    [{ node: 'host-a1', paused: false }],
  )
})

t.test('a paused node record other than these is not a pause', async (t) => {
  t.same(decodeRoles({ 'node/host-a1/state': 'drained', 'node/host-a2/state': 'bogus' }).paused, ['host-a1'])
})
