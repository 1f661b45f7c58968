/**
 * The RoleController's `remove` op (`hvlab vm remove`): refused (nothing changed) while
 * the role runs, starts, stops, is pending or migrates, or while a restored controller
 * still syncs; a stopped or failed role goes with a delete of its record and a
 * role.removed event; a stray report of it afterwards is stopped; a role created again
 * under its name gets ops above the removed one's, so no late reply can match.
 */
import t from 'tap'
import { DEFAULT_FAILOVER_POLICY } from '../../agent/cluster/failover-policy.js'
import { RoleController, type RoleEffect, type RoleInput } from '../../agent/cluster/role-controller.js'
import type { NodeView } from '../../agent/cluster/placement.js'
import { createVmRole } from '../../agent/cluster/vm-role.js'

type Start = Extract<RoleEffect, { kind: 'start-vm' }>
type Stop = Extract<RoleEffect, { kind: 'stop-vm' }>
const startOf = (fx: RoleEffect[]) => fx.find((f): f is Start => f.kind === 'start-vm')
const stopOf = (fx: RoleEffect[]) => fx.find((f): f is Stop => f.kind === 'stop-vm')
const events = (fx: RoleEffect[]) => fx.flatMap((f) => (f.kind === 'emit' ? [f.event.kind] : []))
const NODES: NodeView[] = ['host-a1', 'host-a2', 'host-b1'].map((name) => ({ name, status: 'up', memory_mib: 8192 }))

function lab(c = new RoleController()) {
  let now = 0
  const step = (input: RoleInput) => c.step(input, (now += 1000))
  step({ kind: 'membership', epoch: 1, nodes: NODES })
  const cmd = (command: Extract<RoleInput, { kind: 'command' }>['command']) => step({ kind: 'command', command })
  return { c, step, cmd }
}

/** web1 created, started and confirmed running on host-a1. */
function runningWeb1(l: ReturnType<typeof lab>): Start {
  l.cmd({ op: 'create', spec: { name: 'web1', memory_mib: 1024, preferred_owners: ['host-a1'] } })
  const s = startOf(l.cmd({ op: 'start', name: 'web1' }))!
  l.step({ kind: 'vm-started', role: 'web1', node: s.node, op: s.op })
  return s
}

t.test('refused while it runs, starts or stops: the role and its record stay', async (t) => {
  const l = lab()
  l.cmd({ op: 'create', spec: { name: 'web1', memory_mib: 1024, preferred_owners: ['host-a1'] } })
  const s = startOf(l.cmd({ op: 'start', name: 'web1' }))!
  t.throws(() => l.cmd({ op: 'remove', name: 'web1' }), {
    code: 'HVLAB_E_STATE',
    message: /it is starting on host-a1; stop it first: `hvlab vm stop web1`/,
  })
  l.step({ kind: 'vm-started', role: 'web1', node: s.node, op: s.op })
  t.throws(() => l.cmd({ op: 'remove', name: 'web1' }), {
    code: 'HVLAB_E_STATE',
    message: 'cannot remove vm web1: it is running on host-a1; stop it first: `hvlab vm stop web1`',
  })
  const stop = stopOf(l.cmd({ op: 'stop', name: 'web1' }))!
  t.throws(() => l.cmd({ op: 'remove', name: 'web1' }), { code: 'HVLAB_E_STATE', message: /it is stopping on host-a1; wait until/ })
  t.match(l.c.role('web1'), { state: 'stopping' }, 'nothing changed')
  l.step({ kind: 'vm-stopped', role: 'web1', node: stop.node, op: stop.op })
  t.match(l.c.role('web1'), { state: 'stopped' })
})

t.test('refused while it migrates, naming the way back', async (t) => {
  const l = lab()
  runningWeb1(l)
  l.cmd({
    op: 'migrate',
    name: 'web1',
    to: 'host-a2',
    options: { mode: 'live', budget_ms: null, max_rounds: null, verify: false, ticket: 't1' },
  })
  t.throws(() => l.cmd({ op: 'remove', name: 'web1' }), {
    code: 'HVLAB_E_STATE',
    message: /being migrated from host-a1 to host-a2; cancel with `hvlab vm migrate-cancel web1`/,
  })
})

t.test('a stopped role goes: its record is deleted and role.removed says from which state', async (t) => {
  const l = lab()
  l.cmd({ op: 'create', spec: { name: 'web1', memory_mib: 1024 } })
  const fx = l.cmd({ op: 'remove', name: 'web1' })
  t.same(
    fx.filter((f) => f.kind !== 'emit'),
    [{ kind: 'delete-role-record', role: 'web1' }],
    'one effect: the record is deleted',
  )
  t.match(
    fx.find((f) => f.kind === 'emit'),
    { event: { kind: 'role.removed', details: { role: 'web1', from: 'stopped' } } },
  )
  t.equal(l.c.role('web1'), undefined)
  t.same(l.c.list(), [])
  t.throws(() => l.cmd({ op: 'remove', name: 'web1' }), { code: 'HVLAB_E_NOT_FOUND', message: 'no vm named web1; see `hvlab vm list`' })
  t.throws(() => l.cmd({ op: 'start', name: 'web1' }), { code: 'HVLAB_E_NOT_FOUND' }, 'nothing can start it again')
})

t.test('a failed role may be removed; a pending one may not', async (t) => {
  const l = lab()
  l.cmd({ op: 'create', spec: { name: 'big', memory_mib: 8192 } })
  l.cmd({ op: 'create', spec: { name: 'big2', memory_mib: 8192 } })
  l.cmd({ op: 'create', spec: { name: 'big3', memory_mib: 8192 } })
  l.cmd({ op: 'create', spec: { name: 'big4', memory_mib: 8192 } })
  for (const name of ['big', 'big2', 'big3']) {
    const s = startOf(l.cmd({ op: 'start', name }))!
    l.step({ kind: 'vm-started', role: name, node: s.node, op: s.op })
  }
  l.cmd({ op: 'start', name: 'big4' })
  t.match(l.c.role('big4'), { state: 'pending' })
  t.throws(() => l.cmd({ op: 'remove', name: 'big4' }), { code: 'HVLAB_E_STATE', message: /it is pending; stop it first/ })
  l.cmd({ op: 'stop', name: 'big4' })
  t.match(events(l.cmd({ op: 'remove', name: 'big4' })), ['role.removed'])

  // A policy that gives up at once: the first failure leaves the role failed.
  const m = lab(
    new RoleController({
      policy: { ...DEFAULT_FAILOVER_POLICY, restarts_max: 0, restart_period_ms: 1, failovers_max: 0, failover_period_ms: 1 },
    }),
  )
  const s = runningWeb1(m)
  m.step({ kind: 'vm-failed', role: 'web1', node: s.node, op: s.op, gone: true, reason: 'crashed' })
  t.match(m.c.role('web1'), { state: 'failed', owner: null })
  t.match(events(m.cmd({ op: 'remove', name: 'web1' })), ['role.removed'], 'failed: removed')
})

t.test('after removal a report of it is a stray, stopped; a role created again starts its ops above the old ones', async (t) => {
  const l = lab()
  const s = runningWeb1(l)
  const stop = stopOf(l.cmd({ op: 'stop', name: 'web1' }))!
  l.step({ kind: 'vm-stopped', role: 'web1', node: stop.node, op: stop.op })
  l.cmd({ op: 'remove', name: 'web1' })
  const stray = l.step({ kind: 'vm-started', role: 'web1', node: 'host-a2', op: s.op })
  t.match(stopOf(stray), { role: 'web1', node: 'host-a2' }, 'a late start report is stopped there')
  t.match(events(stray), ['role.stray'])
  l.cmd({ op: 'create', spec: { name: 'web1', memory_mib: 1024, preferred_owners: ['host-a1'] } })
  const again = startOf(l.cmd({ op: 'start', name: 'web1' }))!
  t.ok(again.op > stop.op, `the new start's op ${again.op} is above the removed role's last op ${stop.op}`)
  l.step({ kind: 'vm-started', role: 'web1', node: s.node, op: s.op })
  t.match(l.c.role('web1'), { state: 'starting' }, 'a late answer to the old incarnation does not make the new one running')
})

t.test('refused while a restored controller still syncs with the inventories', async (t) => {
  const c = new RoleController()
  const role = { ...createVmRole({ name: 'web1', memory_mib: 1024 }), state: 'stopped' as const }
  c.restore([role], [], 2)
  const l = lab(c)
  t.throws(() => l.cmd({ op: 'remove', name: 'web1' }), { code: 'HVLAB_E_STATE', detail: 'HVLAB_E_NO_QUORUM', message: /still syncing/ })
  for (const n of NODES) l.step({ kind: 'inventory', node: n.name, vms: [], ops_at_request: c.opSnapshot() })
  l.step({ kind: 'sync-done' })
  t.match(events(l.cmd({ op: 'remove', name: 'web1' })), ['role.removed'], 'once synced it goes')
})
