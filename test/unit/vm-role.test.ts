import t from 'tap'
import { changeVmRole, createVmRole, transition } from '../../agent/cluster/vm-role.js'

t.test('a new role is stopped, with defaults and validated owners', async (t) => {
  const r = createVmRole({ name: 'web1', preferred_owners: ['host-a1'] })
  t.match(r, { state: 'stopped', owner: null, memory_mib: 1024, possible_owners: null, failback: { enabled: false, window: null } })
  t.throws(() => createVmRole({ name: 'w', preferred_owners: ['a', 'a'] }), { code: 'HVLAB_E_USAGE', message: /listed twice/ })
  t.throws(() => createVmRole({ name: 'w', preferred_owners: ['a'], possible_owners: ['b'] }), {
    message: /preferred owner a is not a possible owner/,
  })
  t.throws(() => createVmRole({ name: 'w', possible_owners: [] }), { message: /possible owners is empty/ })
  t.throws(() => createVmRole({ name: 'w', failback: { enabled: true, window: { start_hour: 5, end_hour: 5 } } }), {
    message: /window 5–5 is empty/,
  })
  t.throws(() => createVmRole({ name: 'w', failback: { enabled: true, window: { start_hour: 5, end_hour: 24 } } }), { message: /0–23/ })
  t.throws(() => createVmRole({ name: 'w', memory_mib: 1.5 }), { message: /whole number/ })
})

t.test('transitions: the owner is set exactly while on a node, and never changes node directly', async (t) => {
  const r = createVmRole({ name: 'web1' })
  const starting = transition(r, 'starting', 'h1', 'start')
  const running = transition(starting, 'running', 'h1', 'ok')
  t.match(running, { state: 'running', owner: 'h1', last_owner: 'h1', reason: 'ok' })
  t.throws(() => transition(running, 'stopping', 'h2', 'x'), { code: 'HVLAB_E_INTERNAL', message: /without leaving h1 first/ })
  t.throws(() => transition(running, 'stopped', null, 'x'), { code: 'HVLAB_E_INTERNAL', message: /running → stopped is not a valid/ })
  t.throws(() => transition(r, 'starting', null, 'x'), { message: /needs an owner/ })
  const pending = transition(running, 'pending', null, 'host down')
  t.match(pending, { owner: null, last_owner: 'h1' })
  t.match(transition(pending, 'starting', 'h2', 'failover'), { owner: 'h2' })
})

t.test("replica enable --disks names disks the VM has: its storage's disk 0 and data disks", async (t) => {
  const storage = {
    kind: 'replicated' as const,
    group: 'rc-db1',
    volume: 'db1-disk0',
    data_volumes: ['db1-disk1'],
    size_bytes: 16 * 1024 * 1024,
    mode: 'sync' as const,
    arrays: { primary: 'array-a', secondary: 'array-b' },
    hosts: ['host-a1'],
  }
  const two = createVmRole({ name: 'db1', storage })
  const to = { to: 'replica-dr1', frequency_ms: 30_000 as const, recovery_points: 0, compress: false }
  t.match(changeVmRole(two, { replication: { ...to, disks: [0, 1] } }).replication, { disks: [0, 1] })
  t.throws(() => changeVmRole(two, { replication: { ...to, disks: [0, 2] } }), {
    code: 'HVLAB_E_USAGE',
    message: /vm db1 has 2 disk\(s\), 0–1; it has no disk 2 to replicate/,
  })
  const one = createVmRole({ name: 'web1' })
  t.throws(() => changeVmRole(one, { replication: { ...to, disks: [0, 1] } }), { message: /has 1 disk\(s\)/ }, 'no storage: one disk')
  t.same(changeVmRole(one, { replication: { ...to, disks: [0] } }).replication?.disks, [0])
})
