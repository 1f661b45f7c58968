import t from 'tap'
import { chooseNode, loadOf, planDrain, planFailback, planReturn, refusal, type NodeView } from '../../agent/cluster/placement.js'
import { createVmRole } from '../../agent/cluster/vm-role.js'

const node = (name: string, status: NodeView['status'] = 'up', memory_mib = 8192): NodeView => ({ name, status, memory_mib })
const nodes = [node('host-a1'), node('host-a2'), node('host-b1'), node('host-b2')]

t.test('preferred owners are tried in order, skipping nodes that are paused, down or full', async (t) => {
  const role = createVmRole({ name: 'web1', memory_mib: 4096, preferred_owners: ['host-b2', 'host-a2'] })
  t.same(chooseNode(role, nodes, new Map()), { ok: true, node: 'host-b2' })
  const b2Paused = nodes.map((n) => (n.name === 'host-b2' ? node('host-b2', 'paused') : n))
  t.same(chooseNode(role, b2Paused, new Map()), { ok: true, node: 'host-a2' })
  const b2Down = nodes.map((n) => (n.name === 'host-b2' ? node('host-b2', 'down') : n))
  t.same(chooseNode(role, b2Down, new Map()), { ok: true, node: 'host-a2' })
  // host-b2 has exactly 4096 free: fits; one MiB less: does not.
  t.same(chooseNode(role, nodes, new Map([['host-b2', 4096]])), { ok: true, node: 'host-b2' })
  t.same(chooseNode(role, nodes, new Map([['host-b2', 4097]])), { ok: true, node: 'host-a2' })
})

t.test('other possible owners: least loaded (as a fraction), then name', async (t) => {
  const role = createVmRole({ name: 'db1', memory_mib: 1024 })
  t.same(chooseNode(role, nodes, new Map()), { ok: true, node: 'host-a1' }, 'all empty: first by name')
  const load = new Map([
    ['host-a1', 2048],
    ['host-a2', 1024],
    ['host-b1', 1024],
    ['host-b2', 3000],
  ])
  t.same(chooseNode(role, nodes, load), { ok: true, node: 'host-a2' }, 'tie on load broken by name')
  const mixed = [node('big', 'up', 16384), node('small', 'up', 4096)]
  // big: 4096/16384 = 25 %, small: 2048/4096 = 50 % → big is less loaded though it uses more.
  t.same(
    chooseNode(
      role,
      mixed,
      new Map([
        ['big', 4096],
        ['small', 2048],
      ]),
    ),
    { ok: true, node: 'big' },
  )
})

t.test('possible owners restrict placement; avoid is a last resort', async (t) => {
  const role = createVmRole({ name: 'app1', memory_mib: 1024, possible_owners: ['host-b1', 'host-b2'] })
  t.same(chooseNode(role, nodes, new Map()), { ok: true, node: 'host-b1' })
  t.same(chooseNode(role, nodes, new Map(), 'host-b1'), { ok: true, node: 'host-b2' })
  const onlyB1 = [node('host-a1'), node('host-b1')]
  t.same(chooseNode(role, onlyB1, new Map(), 'host-b1'), { ok: true, node: 'host-b1' }, 'the avoided node is used when it is the only one')
})

t.test('no node: the reason says why', async (t) => {
  const role = createVmRole({ name: 'web1', memory_mib: 4096 })
  const r1 = chooseNode(role, [node('h1', 'down'), node('h2', 'paused')], new Map())
  t.equal(r1.ok, false)
  t.match(!r1.ok && r1.reason, /no possible owner of vm web1 is up \(h1 down, h2 paused\)/)
  const r2 = chooseNode(role, [node('h1', 'up', 8192)], new Map([['h1', 6000]]))
  t.match(!r2.ok && r2.reason, /no up node has 4096 MiB free for vm web1 \(the most free is 2192 MiB\)/)
  t.match(refusal(role, node('host-b2', 'paused'), new Map()), 'host-b2 is paused; resume it or pick another host')
  t.match(refusal(role, undefined, new Map(), 'host-z9'), 'host-z9 is not a node of this cluster')
  t.equal(refusal(role, node('h1'), new Map()), null)
})

t.test('loadOf sums memory per node and ignores roles on no node', async (t) => {
  const load = loadOf([
    { memory_mib: 100, node: 'a' },
    { memory_mib: 50, node: 'a' },
    { memory_mib: 70, node: null },
  ])
  t.same([...load], [['a', 150]])
})

t.test('drain plan: biggest first, counting memory as it goes; what does not fit stays', async (t) => {
  const cluster = [node('h1', 'paused', 8192), node('h2', 'up', 6144), node('h3', 'up', 4096)]
  const roles = [
    { ...createVmRole({ name: 'a', memory_mib: 4096 }), owner: 'h1' },
    { ...createVmRole({ name: 'b', memory_mib: 4096 }), owner: 'h1' },
    { ...createVmRole({ name: 'c', memory_mib: 4096 }), owner: 'h1' },
    { ...createVmRole({ name: 'd', memory_mib: 1024 }), owner: 'h2' },
  ]
  const load = loadOf(roles.map((r) => ({ memory_mib: r.memory_mib, node: r.owner })))
  const plan = planDrain('h1', roles, cluster, load)
  // a → h3 (empty, so least loaded); then b → h2 (h3 is full); then c fits nowhere.
  t.same(plan.moves, [
    { role: 'a', from: 'h1', to: 'h3' },
    { role: 'b', from: 'h1', to: 'h2' },
  ])
  t.same(
    plan.stuck.map((s) => s.role),
    ['c'],
  )
  t.match(plan.stuck[0]?.reason, /no up node has 4096 MiB free/)
})

t.test('failback plan moves a role only to a better-ranked preferred owner with room', async (t) => {
  const cluster = [node('h1'), node('h2'), node('h3')]
  const r1 = { ...createVmRole({ name: 'r1', memory_mib: 4096, preferred_owners: ['h1', 'h2'] }), owner: 'h3' }
  const r2 = { ...createVmRole({ name: 'r2', memory_mib: 4096, preferred_owners: ['h1', 'h2'] }), owner: 'h3' }
  const r3 = { ...createVmRole({ name: 'r3', memory_mib: 4096, preferred_owners: ['h1', 'h2'] }), owner: 'h2' }
  const r4 = { ...createVmRole({ name: 'r4', memory_mib: 1024 }), owner: 'h3' }
  const load = new Map([
    ['h3', 9216],
    ['h2', 4096],
  ])
  const plan = planFailback([r1, r2, r3, r4], cluster, load)
  t.same(plan.moves, [
    { role: 'r1', from: 'h3', to: 'h1' },
    { role: 'r2', from: 'h3', to: 'h1' },
  ])
  t.same(
    plan.stuck.map((s) => s.role),
    ['r3'],
    'h1 is full after r1 and r2; r3 stays on h2; r4 has no preference',
  )
})

t.test('return plan after resume: drained roles go back if the node has room', async (t) => {
  const cluster = [node('h1', 'up', 4096), node('h2')]
  const a = { ...createVmRole({ name: 'a', memory_mib: 2048 }), owner: 'h2' }
  const b = { ...createVmRole({ name: 'b', memory_mib: 4096 }), owner: 'h2' }
  const plan = planReturn('h1', [a, b], cluster, new Map([['h2', 6144]]))
  t.same(plan.moves, [{ role: 'b', from: 'h2', to: 'h1' }])
  t.same(
    plan.stuck.map((s) => s.role),
    ['a'],
  )
  t.same(planReturn('h1', [a], [node('h1', 'paused'), node('h2')], new Map()).moves, [], 'never onto a paused node')
})

const sited = (name: string, site: string, status: NodeView['status'] = 'up'): NodeView => ({ name, status, memory_mib: 8192, site })
const twoSites = [sited('host-a1', 'site-a'), sited('host-a2', 'site-a'), sited('host-b1', 'site-b'), sited('host-b2', 'site-b')]

t.test('drain prefers a host of the drained host’s site, even over a less loaded one elsewhere', async (t) => {
  const vm = { ...createVmRole({ name: 'web1', memory_mib: 1024 }), owner: 'host-a1' }
  const load = new Map([
    ['host-a1', 1024],
    ['host-a2', 4096],
  ])
  t.same(planDrain('host-a1', [vm], twoSites, load).moves, [{ role: 'web1', from: 'host-a1', to: 'host-a2' }])
  const a2Paused = twoSites.map((n) => (n.name === 'host-a2' ? sited('host-a2', 'site-a', 'paused') : n))
  t.same(
    planDrain('host-a1', [vm], a2Paused, load).moves,
    [{ role: 'web1', from: 'host-a1', to: 'host-b1' }],
    'the other site only when no host of its own is up',
  )
  const preferB = { ...createVmRole({ name: 'db1', memory_mib: 1024, preferred_owners: ['host-a1', 'host-b2'] }), owner: 'host-a1' }
  t.same(
    planDrain('host-a1', [preferB], twoSites, load).moves,
    [{ role: 'db1', from: 'host-a1', to: 'host-b2' }],
    "the operator's preferred owners come first, wherever they are; the site ranks the others",
  )
  const onlyB = { ...createVmRole({ name: 'app1', memory_mib: 1024, possible_owners: ['host-a1', 'host-b2'] }), owner: 'host-a1' }
  t.same(
    planDrain('host-a1', [onlyB], twoSites, load).moves,
    [{ role: 'app1', from: 'host-a1', to: 'host-b2' }],
    'possible owners still rule',
  )
})

t.test('failover from a node prefers its site among the nodes the preferred owners do not rank', async (t) => {
  const a1Down = twoSites.map((n) => (n.name === 'host-a1' ? sited('host-a1', 'site-a', 'down') : n))
  const ranked = createVmRole({ name: 'web1', memory_mib: 1024, preferred_owners: ['host-a1', 'host-b1', 'host-a2'] })
  t.same(chooseNode(ranked, a1Down, new Map(), 'host-a1', { home_site: 'site-a' }), { ok: true, node: 'host-b1' }, 'preferred order')
  const onlyA1 = createVmRole({ name: 'web2', memory_mib: 1024, preferred_owners: ['host-a1'] })
  const busyA2 = new Map([['host-a2', 4096]])
  t.same(chooseNode(onlyA1, a1Down, busyA2, 'host-a1', { home_site: 'site-a' }), { ok: true, node: 'host-a2' }, 'own site first')
  t.same(chooseNode(onlyA1, a1Down, busyA2), { ok: true, node: 'host-b1' }, 'no site to stay in: least loaded')
})

t.test('anti-affinity: roles of one class go to different nodes while others have room, then share', async (t) => {
  const cluster = [node('h1'), node('h2')]
  const sql2 = createVmRole({ name: 'sql2', memory_mib: 1024, preferred_owners: ['h1', 'h2'], anti_affinity: 'sql' })
  const classes = new Map([['h1', new Set(['sql'])]])
  t.same(chooseNode(sql2, cluster, new Map(), null, { classes_on: classes }), { ok: true, node: 'h2' }, 'h1 holds a sql role')
  t.same(chooseNode(sql2, cluster, new Map(), null, { classes_on: new Map([['h1', new Set(['web'])]]) }), { ok: true, node: 'h1' })
  const full = new Map([['h2', 8192]])
  t.same(chooseNode(sql2, cluster, full, null, { classes_on: classes }), { ok: true, node: 'h1' }, 'soft: shared when nothing else fits')
  const drained = ['s1', 's2'].map((name) => ({ ...createVmRole({ name, memory_mib: 1024, anti_affinity: 'sql' }), owner: 'h0' }))
  const plan = planDrain('h0', drained, [node('h0', 'paused'), node('h1'), node('h2')], new Map())
  t.same(
    plan.moves.map((m) => m.to),
    ['h1', 'h2'],
    'a drain counts the class of the roles it placed before',
  )
})

t.test('drain order: higher priority first, then biggest', async (t) => {
  const mk = (name: string, memory_mib: number, priority?: 'high' | 'medium' | 'low' | 'none') => ({
    ...createVmRole({ name, memory_mib, ...(priority ? { priority } : {}) }),
    owner: 'h1',
  })
  const roles = [mk('big-low', 4096, 'low'), mk('small-high', 1024, 'high'), mk('mid', 2048), mk('off', 4096, 'none')]
  const plan = planDrain('h1', roles, [node('h1', 'paused'), node('h2', 'up', 3072)], new Map())
  t.same(
    plan.moves.map((m) => m.role),
    ['small-high', 'mid'],
    'high first, then medium (the default); the host is full before the low and none ones',
  )
  t.same(
    plan.stuck.map((s) => s.role),
    ['big-low', 'off'],
  )
})
