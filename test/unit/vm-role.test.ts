import t from 'tap'
import { createVmRole, transition } from '../../agent/cluster/vm-role.js'

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
