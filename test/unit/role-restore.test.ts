import t from 'tap'
import { OPS_PER_EPOCH, RoleController, type RoleEffect } from '../../agent/cluster/role-controller.js'
import { createVmRole, type VmRole } from '../../agent/cluster/vm-role.js'
import type { NodeView } from '../../agent/cluster/placement.js'

type Start = Extract<RoleEffect, { kind: 'start-vm' }>
type Stop = Extract<RoleEffect, { kind: 'stop-vm' }>
const starts = (fx: RoleEffect[]) => fx.filter((f): f is Start => f.kind === 'start-vm')
const stops = (fx: RoleEffect[]) => fx.filter((f): f is Stop => f.kind === 'stop-vm')
const kinds = (fx: RoleEffect[]) => fx.flatMap((f) => (f.kind === 'emit' ? [f.event.kind] : []))

const NODES = ['host-a1', 'host-a2', 'host-b1']
const nodes = (status: Partial<Record<string, NodeView['status']>> = {}): NodeView[] =>
  NODES.map((name) => ({ name, status: status[name] ?? 'up', memory_mib: 8192 }))

function role(name: string, state: VmRole['state'], owner: string | null, reason = 'x'): VmRole {
  return { ...createVmRole({ name, preferred_owners: ['host-a1'] }), state, owner, last_owner: owner, reason }
}

/** A controller restored at epoch 7 with the given roles, fed membership; time advances 1 s a step. */
function restored(roles: VmRole[], status: Partial<Record<string, NodeView['status']>> = {}) {
  const c = new RoleController()
  let now = 0
  c.restore(roles, [], 7)
  const step = (input: Parameters<RoleController['step']>[0]) => c.step(input, (now += 1000))
  const first = step({ kind: 'membership', epoch: 7, nodes: nodes(status) })
  const inventory = (node: string, vms: { role: string; op: number }[], ops = c.opSnapshot()) =>
    step({ kind: 'inventory', node, vms, ops_at_request: ops })
  return { c, step, first, inventory }
}

t.test('restored roles are not placed until sync-done; a reported vm is adopted where it runs', async (t) => {
  const { c, first, inventory, step } = restored([
    role('web1', 'running', 'host-a2'),
    role('db1', 'pending', null),
    role('lost1', 'pending', null),
  ])
  t.same(starts(first), [], 'nothing is started while syncing')
  t.ok(c.isSyncing)
  const fx = inventory('host-a2', [{ role: 'web1', op: 3 }])
  t.same(starts(fx), [])
  t.same(stops(fx), [])
  t.equal(c.role('web1')?.state, 'running')
  // db1's start was made by the old coordinator but its persist was lost: host-b1 runs it
  inventory('host-b1', [{ role: 'db1', op: 9 }])
  t.equal(c.role('db1')?.owner, 'host-b1', 'adopted where it runs')
  t.equal(c.role('db1')?.state, 'running')
  inventory('host-a1', [])
  const done = step({ kind: 'sync-done' })
  t.notOk(c.isSyncing)
  t.same(
    starts(done).map((s) => [s.role, s.node]),
    [['lost1', 'host-a1']],
    'only the role running nowhere is placed',
  )
  t.ok(starts(done)[0]!.op > 7 * OPS_PER_EPOCH, 'new ops are above any older coordinator’s')
  // the adopted incarnation's op is the one the host reported: a failure report with it counts
  const failed = step({ kind: 'vm-failed', role: 'web1', node: 'host-a2', op: 3, gone: true, reason: 'guest crashed' })
  t.ok(kinds(failed).includes('role.failure'), 'a failure of the adopted vm is acted on')
  const stale = step({ kind: 'vm-failed', role: 'db1', node: 'host-b1', op: 8, gone: true, reason: 'old' })
  t.notOk(kinds(stale).includes('role.failure'), 'a report with another op is stale')
})

t.test('a recorded owner that no longer has the vm: running → restarted, stopping → stopped, once every inventory is in', async (t) => {
  const { c, inventory, step } = restored([role('web1', 'running', 'host-a2'), role('db1', 'stopping', 'host-a1', 'stopped by operator')])
  const fx = inventory('host-a2', [])
  t.same(starts(fx), [], 'not yet: another member may still report it')
  t.notOk(kinds(fx).includes('role.failure'))
  inventory('host-a1', [])
  inventory('host-b1', [])
  const done = step({ kind: 'sync-done' })
  t.ok(kinds(done).includes('role.failure'), 'web1 missing on its owner and everywhere else is a failure')
  t.equal(c.role('web1')?.state, 'pending', 'held for the restart delay')
  t.same(
    starts(step({ kind: 'timer' })).map((s) => [s.role, s.node]),
    [['web1', 'host-a2']],
    'then restarted in place (failover policy)',
  )
  t.equal(c.role('db1')?.state, 'stopped', 'an operator stop in flight ends stopped')
})

t.test(
  'a stale record: the vm runs on another member than the recorded owner, whose inventory comes first (found by the roles sim)',
  async (t) => {
    // The last coordinator failed web1 over to host-b1 and lost quorum before that record was
    // written: the database still says host-a2. host-a2's inventory (say, the new coordinator's
    // own) arrives first. Restarting web1 on host-a2 then would run it on two hosts.
    const { c, inventory, step } = restored([role('web1', 'running', 'host-a2'), role('db1', 'starting', 'host-a1')])
    t.same(starts(inventory('host-a2', [])), [], 'the owner lacks it: nothing started while syncing')
    const fx = inventory('host-b1', [
      { role: 'web1', op: 4 },
      { role: 'db1', op: 6 },
    ])
    t.same(stops(fx), [], 'not stopped where it runs')
    t.equal(c.role('web1')?.owner, 'host-b1', 'web1 adopted where it runs')
    t.equal(c.role('web1')?.state, 'running')
    t.equal(c.role('db1')?.owner, 'host-b1', 'a restored starting role too')
    t.equal(c.role('db1')?.state, 'running')
    inventory('host-a1', [])
    const done = step({ kind: 'sync-done' })
    t.same(starts(done), [], 'nothing restarted: both run, once')
    t.notOk(kinds(done).includes('role.failure'))
    t.same(
      stops(inventory('host-a2', [{ role: 'web1', op: 9 }])).map((s) => [s.role, s.node]),
      [['web1', 'host-a2']],
      'a copy on the stale owner would be stopped',
    )
  },
)

t.test('a vm on a host that is not its owner is stopped there; an unknown vm too', async (t) => {
  const { c, inventory } = restored([role('web1', 'running', 'host-a2')])
  inventory('host-a2', [{ role: 'web1', op: 2 }])
  const fx = inventory('host-b1', [
    { role: 'web1', op: 5 },
    { role: 'ghost', op: 1 },
  ])
  t.same(
    stops(fx)
      .map((s) => [s.role, s.node])
      .sort(),
    [
      ['ghost', 'host-b1'],
      ['web1', 'host-b1'],
    ],
  )
  t.equal(c.role('web1')?.owner, 'host-a2', 'the owner is unchanged')
})

t.test('an inventory that crossed a start or stop does not touch that role', async (t) => {
  const c = new RoleController()
  let now = 0
  const step = (input: Parameters<RoleController['step']>[0]) => c.step(input, (now += 1000))
  step({ kind: 'membership', epoch: 1, nodes: nodes() })
  step({ kind: 'command', command: { op: 'create', spec: { name: 'web1' } } })
  const before = c.opSnapshot()
  const s = starts(step({ kind: 'command', command: { op: 'start', name: 'web1' } }))[0]!
  // the host answered the inventory before it got the start
  const fx = step({ kind: 'inventory', node: s.node, vms: [], ops_at_request: before })
  t.same(kinds(fx), [], 'no failure for a start in flight')
  t.equal(c.role('web1')?.state, 'starting')
  // asked after the start; the start's reply was lost: the inventory settles it
  step({ kind: 'inventory', node: s.node, vms: [{ role: 'web1', op: s.op }], ops_at_request: c.opSnapshot() })
  t.equal(c.role('web1')?.state, 'running', 'a lost start reply is settled by the inventory')
})

t.test('the owner down (after the stop bound): its restored role fails over after sync', async (t) => {
  const { c, step, inventory } = restored([role('web1', 'running', 'host-b1')], { 'host-b1': 'paused' })
  inventory('host-a1', [])
  inventory('host-a2', [])
  t.same(starts(step({ kind: 'sync-done' })), [], 'still held: host-b1 is not down yet')
  const fx = step({ kind: 'membership', epoch: 7, nodes: nodes({ 'host-b1': 'down' }) })
  t.ok(kinds(fx).includes('role.failed-over'))
  t.equal(starts(fx)[0]?.node, 'host-a1')
  t.equal(c.role('web1')?.owner, 'host-a1')
})

t.test(
  'after a takeover, a restored role nobody reported waits until the hosts outside the view are down (found by the roles sim)',
  async (t) => {
    // host-b1 is outside the new view and not yet past its roles_free_at (shown paused): the
    // last coordinator may have started web1 or db1 there just before it lost quorum.
    const { c, inventory, step } = restored([role('web1', 'running', 'host-a2'), role('db1', 'pending', null)], { 'host-b1': 'paused' })
    inventory('host-a1', [])
    inventory('host-a2', [])
    const done = step({ kind: 'sync-done' })
    t.same(starts(done), [], 'neither restarted nor placed while host-b1 may still run them')
    t.ok(c.isSyncing, 'still syncing')
    const free = step({ kind: 'membership', epoch: 7, nodes: nodes({ 'host-b1': 'down' }) })
    t.notOk(c.isSyncing)
    t.same(
      starts(free).map((s) => s.role),
      ['db1'],
      'host-b1 is down (it stopped its vms): the pending role starts',
    )
    t.same(
      starts(step({ kind: 'timer' })).map((s) => s.role),
      ['web1'],
      'and the one missing on its owner after the restart delay',
    )
  },
)

t.test('a restored owner that goes down while syncing: a member reporting the vm wins over the failover', async (t) => {
  const { c, inventory, step } = restored([role('web1', 'running', 'host-b1')], { 'host-b1': 'paused' })
  const lost = step({ kind: 'membership', epoch: 7, nodes: nodes({ 'host-b1': 'down' }) })
  t.same(starts(lost), [], 'no failover before the inventories are in')
  inventory('host-a2', [{ role: 'web1', op: 3 }])
  inventory('host-a1', [])
  const done = step({ kind: 'sync-done' })
  t.same(starts(done), [], 'it runs on host-a2: nothing to start')
  t.equal(c.role('web1')?.owner, 'host-a2')
  t.equal(c.role('web1')?.state, 'running')
})

t.test('a restored owner that went down while syncing and nobody reports the vm: it fails over when syncing ends', async (t) => {
  const { c, inventory, step } = restored([role('web1', 'running', 'host-b1')], { 'host-b1': 'paused' })
  step({ kind: 'membership', epoch: 7, nodes: nodes({ 'host-b1': 'down' }) })
  inventory('host-a1', [])
  inventory('host-a2', [])
  const done = step({ kind: 'sync-done' })
  t.ok(kinds(done).includes('role.failed-over'))
  t.equal(c.role('web1')?.owner, 'host-a1')
})

t.test('a host that joins the view while syncing is heard before a restored role is restarted (found by the roles sim)', async (t) => {
  // The record says web1 runs on host-a2, which lacks it; host-b1, outside the view at the
  // takeover, runs it (the last coordinator failed it over there) and then joins the view.
  const { c, inventory, step } = restored([role('web1', 'running', 'host-a2')], { 'host-b1': 'paused' })
  inventory('host-a1', [])
  inventory('host-a2', [])
  step({ kind: 'sync-done' })
  const joined = step({ kind: 'membership', epoch: 8, nodes: nodes() })
  t.same(starts(joined), [], 'host-b1 is up now but has not told what it runs: web1 is not restarted')
  t.ok(c.isSyncing)
  const fx = inventory('host-b1', [{ role: 'web1', op: 4 }])
  t.same(starts(fx), [])
  t.notOk(c.isSyncing)
  t.equal(c.role('web1')?.owner, 'host-b1', 'adopted where it runs')
})

t.test('a stop that never arrived is sent again when the owner still reports the vm (found by the roles sim)', async (t) => {
  const c = new RoleController()
  let now = 0
  const step = (input: Parameters<RoleController['step']>[0]) => c.step(input, (now += 1000))
  step({ kind: 'membership', epoch: 1, nodes: nodes() })
  step({ kind: 'command', command: { op: 'create', spec: { name: 'web1', preferred_owners: ['host-a1'] } } })
  const s = starts(step({ kind: 'command', command: { op: 'start', name: 'web1' } }))[0]!
  step({ kind: 'vm-started', role: 'web1', node: 'host-a1', op: s.op })
  const first = stops(step({ kind: 'command', command: { op: 'move', name: 'web1', to: 'host-b1' } }))[0]!
  // the stop request failed (no connection); the next inventory still shows the vm
  const again = stops(step({ kind: 'inventory', node: 'host-a1', vms: [{ role: 'web1', op: s.op }], ops_at_request: c.opSnapshot() }))
  t.same(
    again.map((x) => x.node),
    ['host-a1'],
    'the stop is sent again',
  )
  t.ok(again[0]!.op > first.op, 'as a new op')
  t.same(starts(step({ kind: 'vm-stopped', role: 'web1', node: 'host-a1', op: first.op })), [], "the lost stop's op is stale")
  const moved = starts(step({ kind: 'vm-stopped', role: 'web1', node: 'host-a1', op: again[0]!.op }))
  t.same(
    moved.map((x) => x.node),
    ['host-b1'],
    'the move goes on once the stop is confirmed',
  )
})

t.test('a restored stopping role its owner still runs: the stop is sent again (it used to throw stopping → stopping)', async (t) => {
  const { c, inventory, step } = restored([role('db1', 'stopping', 'host-a1', 'stopped by operator')])
  const fx = inventory('host-a1', [{ role: 'db1', op: 2 }])
  t.same(
    stops(fx).map((s) => s.node),
    ['host-a1'],
  )
  t.equal(c.role('db1')?.state, 'stopping')
  step({ kind: 'vm-stopped', role: 'db1', node: 'host-a1', op: stops(fx)[0]!.op })
  t.equal(c.role('db1')?.state, 'stopped', 'the operator stop ends stopped')
})
