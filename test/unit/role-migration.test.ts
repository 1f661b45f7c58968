/** The role controller with live migration on: moves and drains migrate, the owner changes only on the owner's report, inventories leave a migrating role alone. */
import t from 'tap'
import { NO_LEASE_RETRY_MS, RoleController, type RoleEffect, type RoleInput } from '../../agent/cluster/role-controller.js'
import type { NodeView } from '../../agent/cluster/placement.js'

type Migrate = Extract<RoleEffect, { kind: 'migrate-vm' }>
const migrations = (fx: RoleEffect[]) => fx.filter((f): f is Migrate => f.kind === 'migrate-vm')
const of = (fx: RoleEffect[], type: RoleEffect['kind']) => fx.filter((f) => f.kind === type)
const HOSTS = ['host-a1', 'host-a2', 'host-b1']

function lab() {
  const c = new RoleController({ live_migration: true })
  let now = 0
  const step = (input: RoleInput) => c.step(input, (now += 1000))
  const nodes: NodeView[] = HOSTS.map((name) => ({ name, status: 'up', memory_mib: 8192 }))
  step({ kind: 'membership', epoch: 1, nodes })
  step({ kind: 'command', command: { op: 'create', spec: { name: 'web1', memory_mib: 64, preferred_owners: ['host-a1'] } } })
  const fx = step({ kind: 'command', command: { op: 'start', name: 'web1' } })
  const s = fx.find((f): f is Extract<RoleEffect, { kind: 'start-vm' }> => f.kind === 'start-vm')!
  step({ kind: 'vm-started', role: 'web1', node: s.node, op: s.op })
  return { c, step, advance: (ms: number) => (now += ms), start_op: s.op }
}

t.test('a move migrates; the owner changes only when the owner reports success, with no stop or start', async (t) => {
  const { c, step } = lab()
  const fx = step({ kind: 'command', command: { op: 'move', name: 'web1', to: 'host-a2' } })
  const [m] = migrations(fx)
  t.ok(m, 'a migrate-vm effect')
  t.same([m!.node, m!.to], ['host-a1', 'host-a2'])
  t.same(of(fx, 'stop-vm'), [], 'no stop')
  t.equal(c.role('web1')?.owner, 'host-a1', 'still owned by the source while migrating')
  t.throws(
    () => step({ kind: 'command', command: { op: 'stop', name: 'web1' } }),
    /being migrated from host-a1 to host-a2/,
    'a stop is refused while migrating',
  )
  // both hosts report it (destination runs it, source not yet released): nothing is stopped
  const inv1 = step({ kind: 'inventory', node: 'host-a2', vms: [{ role: 'web1', op: m!.op }], ops_at_request: c.opSnapshot() })
  const inv2 = step({ kind: 'inventory', node: 'host-a1', vms: [], ops_at_request: c.opSnapshot() })
  t.same([...of(inv1, 'stop-vm'), ...of(inv2, 'stop-vm'), ...of(inv2, 'start-vm')], [], 'inventories leave a migrating role alone')
  step({ kind: 'vm-migrated', role: 'web1', node: 'host-a1', to: 'host-a2', op: m!.op - 1, ok: true, reason: 'stale' })
  t.equal(c.role('web1')?.owner, 'host-a1', 'a report of another op is ignored')
  const done = step({ kind: 'vm-migrated', role: 'web1', node: 'host-a1', to: 'host-a2', op: m!.op, ok: true, reason: 'done' })
  t.equal(c.role('web1')?.owner, 'host-a2', 'the owner is the destination')
  t.equal(c.role('web1')?.state, 'running')
  t.same([...of(done, 'stop-vm'), ...of(done, 'start-vm')], [], 'no stop/start')
  const inv3 = step({ kind: 'inventory', node: 'host-a2', vms: [{ role: 'web1', op: m!.op }], ops_at_request: c.opSnapshot() })
  t.same(of(inv3, 'stop-vm'), [], 'the destination copy is the role now')
})

t.test('a failed migration leaves the role on its owner; a drain does not retry it at once', async (t) => {
  const { c, step, advance } = lab()
  const fx = step({ kind: 'command', command: { op: 'pause', node: 'host-a1', drain: true } })
  const [m] = migrations(fx)
  t.ok(m, 'the drain migrates')
  const failed = step({
    kind: 'vm-migrated',
    role: 'web1',
    node: 'host-a1',
    to: m!.to,
    op: m!.op,
    ok: false,
    reason: 'the connection was lost',
  })
  t.equal(c.role('web1')?.owner, 'host-a1', 'the way back: it stays on the source')
  t.match(c.role('web1')?.reason, /migration to .* failed: the connection was lost/)
  t.same(migrations(failed), [], 'no immediate retry')
  advance(31_000)
  const again = step({ kind: 'failback-check', hour_of_day: 3 })
  t.equal(migrations(again).length, 1, 'the drain tries again later')
})

t.test("a source lost mid-migration: the failover goes to the migration's destination, which may run the VM already", async (t) => {
  const { c, step } = lab()
  const [m] = migrations(step({ kind: 'command', command: { op: 'move', name: 'web1', to: 'host-b1' } }))
  t.same([m!.node, m!.to], ['host-a1', 'host-b1'])
  // host-a1 is lost before it reports: it may have asked host-b1 to resume the VM
  const nodes: NodeView[] = ['host-a2', 'host-b1'].map((name) => ({ name, status: 'up', memory_mib: 8192 }))
  const fx = step({ kind: 'membership', epoch: 2, nodes })
  t.same(
    of(fx, 'start-vm').map((f) => (f as Extract<RoleEffect, { kind: 'start-vm' }>).node),
    ['host-b1'],
    'started where it may run already (a start keeps a VM that runs there), not on host-a2 beside it',
  )
  t.match(c.role('web1'), { owner: 'host-b1', state: 'starting' })
})

const starts = (fx: RoleEffect[]) => of(fx, 'start-vm').map((f) => (f as Extract<RoleEffect, { kind: 'start-vm' }>).node)
const view = (...up: [string, NodeView['status']][]): NodeView[] => up.map(([name, status]) => ({ name, status, memory_mib: 8192 }))

t.test('a source lost mid-migration to a paused destination: started there all the same (the VM may be there)', async (t) => {
  const { step } = lab()
  step({ kind: 'command', command: { op: 'move', name: 'web1', to: 'host-b1' } })
  const fx = step({ kind: 'membership', epoch: 2, nodes: view(['host-a2', 'up'], ['host-b1', 'paused']) })
  t.same(starts(fx), ['host-b1'])
})

t.test('a source lost mid-migration to a destination down too: placed as any failover', async (t) => {
  const { c, step } = lab()
  step({ kind: 'command', command: { op: 'move', name: 'web1', to: 'host-b1' } })
  const left = view(['host-a2', 'up'], ['host-b2', 'up']) // (a host joined: the failover policy allows one failover per node left but one)
  const fx = step({ kind: 'membership', epoch: 2, nodes: left })
  t.same(starts(fx), ['host-a2'], 'a host out of the cluster has stopped its VMs')
  t.match(c.role('web1'), { owner: 'host-a2' })
})

t.test('the destination in doubt refuses the start for want of a lease: tried there again, never beside it, until it leaves', async (t) => {
  const { c, step, advance } = lab()
  step({ kind: 'command', command: { op: 'move', name: 'web1', to: 'host-b1' } })
  const lost = step({ kind: 'membership', epoch: 2, nodes: view(['host-a2', 'up'], ['host-b1', 'up']) })
  const first = of(lost, 'start-vm')[0] as Extract<RoleEffect, { kind: 'start-vm' }>
  step({ kind: 'vm-start-failed', role: 'web1', node: 'host-b1', op: first.op, reason: 'no lease', storage_refused: false, no_lease: true })
  t.match(c.role('web1'), { state: 'pending' })
  advance(NO_LEASE_RETRY_MS)
  const again = step({ kind: 'membership', epoch: 2, nodes: view(['host-a2', 'up'], ['host-b1', 'up']) })
  t.same(starts(again), ['host-b1'], 'tried on host-b1 again: it may still run the VM until its lease lapses')
  const second = of(again, 'start-vm')[0] as Extract<RoleEffect, { kind: 'start-vm' }>
  step({
    kind: 'vm-start-failed',
    role: 'web1',
    node: 'host-b1',
    op: second.op,
    reason: 'no lease',
    storage_refused: false,
    no_lease: true,
  })
  const gone = step({ kind: 'membership', epoch: 3, nodes: view(['host-a2', 'up']) })
  advance(NO_LEASE_RETRY_MS)
  const placed = [...starts(gone), ...starts(step({ kind: 'membership', epoch: 3, nodes: view(['host-a2', 'up']) }))]
  t.same(placed, ['host-a2'], 'host-b1 left the cluster (its VMs stopped): placed on host-a2')
})
