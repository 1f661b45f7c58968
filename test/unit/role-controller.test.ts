import t from 'tap'
import { DEFAULT_FAILOVER_POLICY } from '../../agent/cluster/failover-policy.js'
import { HvlabError } from '../../shared/errors.js'
import { RoleController, type RoleEffect, type RoleInput } from '../../agent/cluster/role-controller.js'
import type { NodeView } from '../../agent/cluster/placement.js'
import { mulberry32 } from '../../shared/seeded-random.js'
import { forEachSeed, seeds } from '../sim/seed.js'

const MIN = 60_000

type Start = Extract<RoleEffect, { kind: 'start-vm' }>
type Stop = Extract<RoleEffect, { kind: 'stop-vm' }>
const starts = (fx: RoleEffect[]) => fx.filter((f): f is Start => f.kind === 'start-vm')
const stops = (fx: RoleEffect[]) => fx.filter((f): f is Stop => f.kind === 'stop-vm')
const kinds = (fx: RoleEffect[]) => fx.flatMap((f) => (f.kind === 'emit' ? [f.event.kind] : []))

function cluster(statuses: Record<string, NodeView['status']>, memory_mib = 8192) {
  return Object.entries(statuses).map(([name, status]) => ({ name, status, memory_mib }))
}

/** A controller with four Up nodes, a clock, and a helper that confirms starts/stops. */
function lab(memory_mib = 8192) {
  const c = new RoleController()
  let now = 0
  let epoch = 1
  const statuses: Record<string, NodeView['status']> = { 'host-a1': 'up', 'host-a2': 'up', 'host-b1': 'up', 'host-b2': 'up' }
  const step = (input: RoleInput) => c.step(input, (now += 1000))
  step({ kind: 'membership', epoch, nodes: cluster(statuses, memory_mib) })
  return {
    c,
    step,
    advance: (ms: number) => (now += ms),
    now: () => now,
    setNode: (name: string, status: NodeView['status']) => {
      statuses[name] = status
      return step({ kind: 'membership', epoch: ++epoch, nodes: cluster(statuses, memory_mib) })
    },
    cmd: (command: Extract<RoleInput, { kind: 'command' }>['command']) => step({ kind: 'command', command }),
    started: (s: Start) => step({ kind: 'vm-started', role: s.role, node: s.node, op: s.op }),
    stopped: (s: Stop) => step({ kind: 'vm-stopped', role: s.role, node: s.node, op: s.op }),
  }
}

function running(l: ReturnType<typeof lab>, name: string, memory_mib = 2048, preferred_owners: string[] = []) {
  l.cmd({ op: 'create', spec: { name, memory_mib, preferred_owners } })
  const [s] = starts(l.cmd({ op: 'start', name }))
  if (!s) throw new Error(`no start for ${name}`)
  l.started(s)
  return s
}

t.test('create and start: placed on the first preferred owner, running once confirmed', async (t) => {
  const l = lab()
  l.cmd({ op: 'create', spec: { name: 'web1', memory_mib: 2048, preferred_owners: ['host-b1', 'host-a1'] } })
  t.match(l.c.role('web1'), { state: 'stopped', owner: null })
  const fx = l.cmd({ op: 'start', name: 'web1' })
  t.match(starts(fx), [{ role: 'web1', node: 'host-b1', memory_mib: 2048, epoch: 1 }])
  t.match(l.c.role('web1'), { state: 'starting', owner: 'host-b1' })
  l.started(starts(fx)[0]!)
  t.match(l.c.list(), [{ name: 'web1', state: 'running', owner: 'host-b1' }])
  t.same(starts(l.cmd({ op: 'start', name: 'web1' })), [], 'starting a running vm does nothing')
})

t.test('refused commands say what was wrong and what to do, and change nothing', async (t) => {
  const l = lab()
  running(l, 'web1', 2048, ['host-a1'])
  l.cmd({ op: 'pause', node: 'host-b2', drain: false })
  t.throws(() => l.cmd({ op: 'move', name: 'web1', to: 'host-b2' }), {
    code: 'HVLAB_E_STATE',
    message: 'cannot move vm web1 to host-b2: host-b2 is paused; resume it or pick another host',
  })
  t.throws(() => l.cmd({ op: 'move', name: 'web1', to: 'host-z9' }), {
    code: 'HVLAB_E_NOT_FOUND',
    message: /host-z9 is not a node of this cluster/,
  })
  t.throws(() => l.cmd({ op: 'move', name: 'nope', to: 'host-a2' }), {
    code: 'HVLAB_E_NOT_FOUND',
    message: 'no vm named nope; see `hvlab vm list`',
  })
  t.throws(() => l.cmd({ op: 'move', name: 'web1', to: 'host-a1' }), { message: /already runs there/ })
  running(l, 'big', 8192, ['host-b1'])
  t.throws(() => l.cmd({ op: 'move', name: 'web1', to: 'host-b1' }), { message: /host-b1 has 0 MiB free and vm web1 needs 2048 MiB/ })
  t.throws(() => l.cmd({ op: 'create', spec: { name: 'web1' } }), { code: 'HVLAB_E_STATE', message: /exists/ })
  t.throws(() => l.cmd({ op: 'create', spec: { name: 'x', preferred_owners: ['host-q'] } }), {
    code: 'HVLAB_E_USAGE',
    message: /host-q is not a node of this cluster \(nodes: host-a1, host-a2, host-b1, host-b2\)/,
  })
  t.throws(() => l.cmd({ op: 'create', spec: { name: 'Bad Name' } }), { code: 'HVLAB_E_USAGE', message: /invalid vm name/ })
  t.throws(() => l.cmd({ op: 'create', spec: { name: 'x', memory_mib: 1 } }), { code: 'HVLAB_E_USAGE', message: /--memory-mib/ })
  t.throws(() => l.cmd({ op: 'create', spec: { name: 'huge', memory_mib: 4 * 1024 * 1024 } }), {
    code: 'HVLAB_E_REFUSED',
    message:
      'cannot create vm huge: it needs 4194304 MiB and the largest host it may run on (host-a1) has 8192 MiB; give it --memory-mib 8192 or less',
  })
  t.notOk(l.c.role('huge'), 'the refused vm was not created')
  l.cmd({ op: 'create', spec: { name: 'fits', memory_mib: 8192 } })
  t.ok(l.c.role('fits'), 'a vm the size of the largest host is created')
  t.throws(() => l.cmd({ op: 'pause', node: 'host-q', drain: true }), { code: 'HVLAB_E_NOT_FOUND' })
  t.match(l.c.role('web1'), { state: 'running', owner: 'host-a1' })
})

t.test('move: stop on the source first, start on the target only after the stop is confirmed', async (t) => {
  const l = lab()
  running(l, 'web1', 2048, ['host-a1'])
  const fx = l.cmd({ op: 'move', name: 'web1', to: 'host-b2' })
  t.match(stops(fx), [{ role: 'web1', node: 'host-a1' }])
  t.same(starts(fx), [])
  t.match(l.c.role('web1'), { state: 'stopping', owner: 'host-a1' })
  // A stale reply (wrong op) changes nothing.
  t.same(starts(l.step({ kind: 'vm-stopped', role: 'web1', node: 'host-a1', op: 999 })), [])
  const fx2 = l.stopped(stops(fx)[0]!)
  t.match(starts(fx2), [{ role: 'web1', node: 'host-b2' }])
  l.started(starts(fx2)[0]!)
  t.match(l.c.role('web1'), { state: 'running', owner: 'host-b2' })
})

t.test('host crash: nothing moves until membership says Down; then preferred owners first', async (t) => {
  const l = lab()
  running(l, 'web1', 2048, ['host-a1', 'host-a2'])
  running(l, 'db1', 2048, ['host-a1', 'host-b2'])
  // The host died, but until membership declares it Down (after the quorum-loss bound) nothing happens.
  t.same(starts(l.step({ kind: 'failback-check', hour_of_day: 3 })), [])
  const fx = l.setNode('host-a1', 'down')
  t.match(starts(fx), [
    { role: 'db1', node: 'host-b2' },
    { role: 'web1', node: 'host-a2' },
  ])
  t.same(stops(fx), [], 'no stop is sent to a dead node')
  t.ok(kinds(fx).includes('node.lost'))
})

t.test('health failures: 3 restarts in place (stop, then start on the same node), then failover', async (t) => {
  const l = lab()
  let s = running(l, 'web1', 2048, ['host-a1', 'host-a2'])
  for (let i = 0; i < 3; i++) {
    const fx = l.step({ kind: 'vm-failed', role: 'web1', node: 'host-a1', op: s.op, gone: false, reason: 'IsAlive failed' })
    const [stop] = stops(fx)
    t.match(stop, { node: 'host-a1' }, `restart ${i + 1}: stopped first`)
    const [start] = starts(l.stopped(stop!))
    t.match(start, { node: 'host-a1' }, `restart ${i + 1}: started on the same node`)
    l.started(start!)
    s = start!
  }
  const fx = l.step({ kind: 'vm-failed', role: 'web1', node: 'host-a1', op: s.op, gone: false, reason: 'IsAlive failed' })
  const [start] = starts(l.stopped(stops(fx)[0]!))
  t.match(start, { node: 'host-a2' }, 'fourth failure within 15 min: failed over')
  // After 15 minutes the restart counter on host-a1 is clear again (sliding window).
  l.started(start!)
  l.advance(16 * MIN)
  const again = l.step({ kind: 'vm-failed', role: 'web1', node: 'host-a2', op: start!.op, gone: true, reason: 'guest crashed' })
  t.same(stops(again), [], 'a vm that is gone needs no stop')
  t.match(l.c.role('web1'), { state: 'pending', owner: null }, 'it waits out the restart delay on no node')
  t.equal(l.c.nextHeldStartMs(), l.now() + DEFAULT_FAILOVER_POLICY.restart_delay_ms)
  t.match(starts(l.step({ kind: 'timer' })), [{ node: 'host-a2' }], 'then restarts where it ran')
})

t.test('at most nodes−1 failovers in 6 h, then the role stays failed until started by hand', async (t) => {
  const l = lab()
  running(l, 'web1', 2048, ['host-a1', 'host-a2', 'host-b1', 'host-b2'])
  const order = ['host-a1', 'host-a2', 'host-b1']
  for (const node of order) {
    const fx = l.setNode(node, 'down')
    const [s] = starts(fx)
    t.ok(s, `failover off ${node}`)
    l.started(s!)
  }
  t.match(l.c.role('web1'), { state: 'running', owner: 'host-b2' })
  l.setNode('host-a1', 'up')
  const fx = l.setNode('host-b2', 'down')
  t.same(starts(fx), [])
  t.match(l.c.role('web1'), { state: 'failed', owner: null, reason: /limit 3/ })
  t.ok(kinds(fx).includes('role.failed'))
  t.match(starts(l.cmd({ op: 'start', name: 'web1' })), [{ node: 'host-a1' }], 'an operator start resets the counters')
})

t.test('pending when nothing fits; placed as soon as a node comes back', async (t) => {
  const l = lab(4096)
  l.setNode('host-a2', 'down')
  l.setNode('host-b1', 'down')
  l.setNode('host-b2', 'down')
  running(l, 'a', 4096)
  l.cmd({ op: 'create', spec: { name: 'b', memory_mib: 4096 } })
  const fx = l.cmd({ op: 'start', name: 'b' })
  t.same(starts(fx), [])
  t.match(l.c.role('b'), { state: 'pending', reason: /waiting: no up node has 4096 MiB free/ })
  t.match(starts(l.setNode('host-b1', 'up')), [{ role: 'b', node: 'host-b1' }])
  t.match(
    l.c.list().map((r) => r.state),
    ['running', 'starting'],
  )
})

t.test('pause --drain moves roles off; resume --failback brings them back', async (t) => {
  const l = lab()
  running(l, 'a', 4096, ['host-a1'])
  running(l, 'b', 2048, ['host-a1'])
  const fx = l.cmd({ op: 'pause', node: 'host-a1', drain: true })
  t.match(fx, [{ kind: 'set-node-paused', node: 'host-a1', paused: true }])
  const drainStops = stops(fx)
  t.same(
    drainStops.map((s) => s.role),
    ['a', 'b'],
  )
  const afterStops = drainStops.map((s) => l.stopped(s))
  const moved = afterStops.flatMap(starts)
  t.match(
    moved,
    [
      { role: 'a', node: 'host-a2' },
      { role: 'b', node: 'host-b1' },
    ],
    'least loaded non-preferred hosts',
  )
  t.same(
    afterStops.map(kinds).map((k) => k.includes('node.drained')),
    [false, true],
    'drained once the last vm left',
  )
  for (const s of moved) l.started(s)
  t.throws(() => l.cmd({ op: 'start', name: 'zz' }))
  const back = l.cmd({ op: 'resume', node: 'host-a1', failback: true })
  t.match(back, [{ kind: 'set-node-paused', node: 'host-a1', paused: false }])
  const returning = stops(back).flatMap((s) => starts(l.stopped(s)))
  t.match(returning, [
    { role: 'a', node: 'host-a1' },
    { role: 'b', node: 'host-a1' },
  ])
})

t.test('failback policy: off by default; when on, only inside its window', async (t) => {
  const l = lab()
  l.cmd({
    op: 'create',
    spec: {
      name: 'fb',
      memory_mib: 1024,
      preferred_owners: ['host-a1'],
      failback: { enabled: true, window: { start_hour: 22, end_hour: 6 } },
    },
  })
  l.cmd({ op: 'create', spec: { name: 'nofb', memory_mib: 1024, preferred_owners: ['host-a1'] } })
  l.setNode('host-a1', 'down')
  for (const name of ['fb', 'nofb']) l.started(starts(l.cmd({ op: 'start', name }))[0]!)
  t.match(l.c.list(), [
    { name: 'fb', owner: 'host-a2' },
    { name: 'nofb', owner: 'host-b1' },
  ])
  l.setNode('host-a1', 'up')
  t.same(stops(l.step({ kind: 'failback-check', hour_of_day: 12 })), [], 'outside the window')
  const fx = l.step({ kind: 'failback-check', hour_of_day: 23 })
  t.match(stops(fx), [{ role: 'fb', node: 'host-a2' }], 'only the role with failback on')
  t.match(starts(l.stopped(stops(fx)[0]!)), [{ role: 'fb', node: 'host-a1' }])
})

t.test('a report from a node that does not own the vm gets a stop; stale epochs are ignored', async (t) => {
  const l = lab()
  running(l, 'web1', 1024, ['host-a1'])
  const fx = l.step({ kind: 'vm-started', role: 'web1', node: 'host-b2', op: 1 })
  t.match(stops(fx), [{ role: 'web1', node: 'host-b2' }])
  t.match(l.c.role('web1'), { state: 'running', owner: 'host-a1' })
  const stale = l.step({ kind: 'membership', epoch: 0, nodes: cluster({ 'host-a1': 'down' }) })
  t.ok(kinds(stale).includes('membership.stale'))
  t.match(l.c.role('web1'), { state: 'running', owner: 'host-a1' })
})

t.test('replies for an older op are ignored (a late answer is never taken for the current one)', async (t) => {
  const l = lab()
  l.cmd({ op: 'create', spec: { name: 'web1', memory_mib: 1024, preferred_owners: ['host-a1'] } })
  const first = starts(l.cmd({ op: 'start', name: 'web1' }))[0]!
  const stop = stops(l.cmd({ op: 'stop', name: 'web1' }))[0]!
  l.stopped(stop)
  const second = starts(l.cmd({ op: 'start', name: 'web1' }))[0]!
  t.ok(second.op > first.op)
  l.started(first)
  t.match(l.c.role('web1'), { state: 'starting' }, 'the answer to the first start does not count')
  t.same(
    l
      .step({ kind: 'vm-failed', role: 'web1', node: 'host-a1', op: first.op, gone: true, reason: 'old incarnation' })
      .filter((f) => f.kind !== 'emit'),
    [],
  )
  l.started(second)
  t.match(l.c.role('web1'), { state: 'running', owner: 'host-a1' })
})

t.test('stop while moving, and a target that dies during a move', async (t) => {
  const l = lab()
  running(l, 'web1', 1024, ['host-a1'])
  const mv = stops(l.cmd({ op: 'move', name: 'web1', to: 'host-b1' }))[0]!
  l.setNode('host-b1', 'down')
  const [start] = starts(l.stopped(mv))
  t.ok(start && start.node !== 'host-b1', 'placed elsewhere when the target died')
  l.started(start!)
  const stop = stops(l.cmd({ op: 'stop', name: 'web1' }))[0]!
  t.throws(() => l.cmd({ op: 'start', name: 'web1' }), { code: 'HVLAB_E_STATE', message: /is stopping on .*; wait until it is stopped/ })
  l.stopped(stop)
  t.match(l.c.role('web1'), { state: 'stopped', owner: null })
})

// ── randomized: a simulated cluster of agents with ordered channels ────────────────────

interface Agent {
  alive: boolean
  declaredDown: boolean
  vms: Map<string, number> // role → op of the start that made it
  inbox: RoleEffect[] // controller → agent, FIFO
}

function simulate(seed: number, opts: { steps: number; generousPolicy: boolean }) {
  const rand = mulberry32(seed)
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!
  const names = ['h1', 'h2', 'h3', 'h4']
  const roles = ['r1', 'r2', 'r3', 'r4', 'r5', 'r6']
  const c = new RoleController(opts.generousPolicy ? { policy: { ...DEFAULT_FAILOVER_POLICY, failovers_max: 1000 } } : {})
  const agents = new Map<string, Agent>(names.map((n) => [n, { alive: true, declaredDown: false, vms: new Map(), inbox: [] }]))
  const replies: RoleInput[] = [] // agents → controller, FIFO overall (ordered per node)
  const wantRunning = new Set<string>()
  let now = 0
  let epoch = 1
  const violations: string[] = []

  const membership = (): RoleInput => ({
    kind: 'membership',
    epoch: ++epoch,
    nodes: names.map((name) => ({ name, memory_mib: 8192, status: agents.get(name)!.declaredDown ? 'down' : 'up' })),
  })
  const feed = (input: RoleInput) => {
    now += 1 + Math.floor(rand() * 5000)
    for (const fx of c.step(input, now)) {
      if (fx.kind === 'start-vm' || fx.kind === 'stop-vm') {
        const a = agents.get(fx.node)
        if (a?.alive && !a.declaredDown) a.inbox.push(fx)
      }
    }
    check()
  }
  /** A start is held for less than a minute more (a restart delay; not a failed role's hour-long retry). */
  const heldSoon = () => {
    const at = c.nextHeldStartMs()
    return at !== null && at - now < MIN
  }
  const check = () => {
    for (const r of roles) {
      const on = names.filter((n) => agents.get(n)!.vms.has(r))
      if (on.length > 1) violations.push(`${r} runs on ${on.join(' and ')} at ${now}`)
    }
  }
  const deliverOne = (a: Agent, name: string) => {
    const fx = a.inbox.shift()
    if (!fx) return
    if (fx.kind === 'start-vm') {
      if (rand() < 0.1 && !a.vms.has(fx.role)) {
        replies.push({ kind: 'vm-start-failed', role: fx.role, node: name, op: fx.op, reason: 'simulated start failure' })
      } else {
        a.vms.set(fx.role, a.vms.get(fx.role) ?? fx.op)
        replies.push({ kind: 'vm-started', role: fx.role, node: name, op: fx.op })
      }
    } else if (fx.kind === 'stop-vm') {
      a.vms.delete(fx.role)
      replies.push({ kind: 'vm-stopped', role: fx.role, node: name, op: fx.op })
    }
    check()
  }

  feed(membership())
  for (const r of roles) {
    feed({
      kind: 'command',
      command: { op: 'create', spec: { name: r, memory_mib: 1024 * (1 + Math.floor(rand() * 4)), preferred_owners: [pick(names)] } },
    })
  }
  const command = (cmd: Extract<RoleInput, { kind: 'command' }>['command']) => {
    try {
      feed({ kind: 'command', command: cmd })
      if (cmd.op === 'start') wantRunning.add(cmd.name)
      if (cmd.op === 'stop') wantRunning.delete(cmd.name)
    } catch (e) {
      if (!(e instanceof HvlabError) || e.code === 'HVLAB_E_INTERNAL') throw e
    }
  }

  for (let i = 0; i < opts.steps; i++) {
    const x = rand()
    const node = pick(names)
    const a = agents.get(node)!
    if (x < 0.35) {
      const busy = names.filter((n) => agents.get(n)!.inbox.length > 0)
      if (busy.length > 0) {
        const n = pick(busy)
        deliverOne(agents.get(n)!, n)
      }
    } else if (x < 0.6) {
      if (replies.length > 0) feed(replies.shift()!)
    } else if (x < 0.64) {
      // crash: its VMs die with it; replies already sent are still delivered (they were on the wire)
      if (a.alive) Object.assign(a, { alive: false, vms: new Map(), inbox: [] })
    } else if (x < 0.68) {
      // membership declares a crashed node Down after the quorum-loss bound
      if (!a.alive && !a.declaredDown) {
        a.declaredDown = true
        feed(membership())
      }
    } else if (x < 0.71) {
      if (!a.alive && a.declaredDown) {
        Object.assign(a, { alive: true, declaredDown: false })
        feed(membership())
      }
    } else if (x < 0.75) {
      const owned = [...a.vms.entries()]
      if (owned.length > 0) {
        const [role, op] = pick(owned)
        const gone = rand() < 0.5
        if (gone) a.vms.delete(role)
        replies.push({ kind: 'vm-failed', role, node, op, gone, reason: 'simulated guest failure' })
      }
    } else if (x < 0.85) {
      command({ op: 'start', name: pick(roles) })
    } else if (x < 0.89) {
      command({ op: 'stop', name: pick(roles) })
    } else if (x < 0.94) {
      command({ op: 'move', name: pick(roles), to: node })
    } else if (x < 0.97) {
      command({ op: 'pause', node, drain: rand() < 0.8 })
    } else {
      command({ op: 'resume', node, failback: rand() < 0.5 })
    }
  }

  // Heal: every node back, every pause lifted, then run until quiet.
  for (const [name, a] of agents) {
    if (a.alive) continue
    if (!a.declaredDown) {
      a.declaredDown = true
      feed(membership())
    }
    Object.assign(a, { alive: true, declaredDown: false })
    feed(membership())
    void name
  }
  for (const n of names) command({ op: 'resume', node: n, failback: false })
  for (let guard = 0; guard < 10_000; guard++) {
    const busy = names.find((n) => agents.get(n)!.inbox.length > 0)
    if (busy) deliverOne(agents.get(busy)!, busy)
    else if (replies.length > 0) feed(replies.shift()!)
    else if (heldSoon())
      feed({ kind: 'timer' }) // a restart delay running out
    else break
  }
  return { c, agents, wantRunning, violations, roles, names }
}

const RANDOMIZED_SEEDS = seeds(import.meta.url, { base: 20240601, count: 200 })

t.test('randomized: never on two nodes; every startable role ends up running once nodes return', async (t) => {
  const { runs, failures } = await forEachSeed(t, RANDOMIZED_SEEDS, (seed) => {
    // Half the runs with a generous failover policy; which half follows from the seed
    // alone (base 20240601 is odd: the odd seeds), so HVLAB_SEED=<seed> reruns the same run.
    const generous = seed % 2 === 1
    const sim = simulate(seed, { steps: 400, generousPolicy: generous })
    const problems = [...sim.violations]
    for (const r of sim.roles) {
      const role = sim.c.role(r)!
      const on = sim.names.filter((n) => sim.agents.get(n)!.vms.has(r))
      if (['starting', 'stopping', 'pending'].includes(role.state)) problems.push(`${r} is stuck ${role.state} (${role.reason})`)
      if (role.state === 'running' && (on.length !== 1 || on[0] !== role.owner))
        problems.push(`${r} running on ${role.owner} but agents have it on [${on}]`)
      if (role.state !== 'running' && on.length > 0) problems.push(`${r} is ${role.state} but agents have it on [${on}]`)
      const failedByPolicy = role.state === 'failed' && /failed over \d+ times/.test(role.reason)
      if (sim.wantRunning.has(r) && role.state !== 'running' && !(failedByPolicy && !generous)) {
        problems.push(`${r} should run but is ${role.state} (${role.reason})`)
      }
      if (!sim.wantRunning.has(r) && role.state === 'running') problems.push(`${r} was stopped by the operator but runs`)
    }
    return problems.length > 0 ? problems.join('; ') : null
  })
  t.equal(failures, 0, `${runs} seeded schedules kept every invariant`)
})

t.test('a start refused for want of a quorum lease is no failure: the role waits, then starts on another node', async (t) => {
  const l = lab()
  l.cmd({ op: 'create', spec: { name: 'web1', memory_mib: 2048, preferred_owners: ['host-a1', 'host-a2'] } })
  const [first] = starts(l.cmd({ op: 'start', name: 'web1' }))
  t.equal(first?.node, 'host-a1')
  const refused = l.step({
    kind: 'vm-start-failed',
    role: 'web1',
    node: 'host-a1',
    op: first!.op,
    reason: 'host-a1 holds no quorum lease',
    no_lease: true,
  })
  t.notOk(kinds(refused).includes('role.failure'), 'no role.failure: the failover policy does not count it')
  t.same(starts(refused), [], 'not started again at once')
  t.match(l.c.role('web1'), { state: 'pending', owner: null, reason: /deferred: host-a1 holds no quorum lease/ })
  // Inputs before NO_LEASE_RETRY_MS (the test's step adds 1 s each; go back a little) leave it waiting.
  l.advance(-900)
  t.same(
    starts(l.cmd({ op: 'create', spec: { name: 'other', memory_mib: 64, preferred_owners: [] } })),
    [],
    'still waiting within the retry delay',
  )
  t.equal(l.c.role('web1')?.state, 'pending')
  const [again] = starts(l.cmd({ op: 'create', spec: { name: 'other2', memory_mib: 64, preferred_owners: [] } }))
  t.match(again, { role: 'web1', node: 'host-a2' }, 'placed again after the delay, away from the node that refused')
  l.started(again!)
  t.match(l.c.role('web1'), { state: 'running', owner: 'host-a2' })
})

t.test('a VM on its replica server after a planned failover: nothing lets the cluster run it too until the fail-back', async (t) => {
  const l = lab()
  const forward = { to: 'dr1', frequency_ms: 30_000, recovery_points: 0, compress: false } as const
  running(l, 'web1', 2048, ['host-a1'])
  l.cmd({ op: 'set', name: 'web1', changes: { replication: forward } })
  const reversing = { op: 'set', name: 'web1', changes: { replication: { ...forward, reversed_to: 'host-a1' } } } as const
  t.throws(() => l.cmd(reversing), {
    code: 'HVLAB_E_STATE',
    message: /cannot reverse the replication of vm web1: it is running on host-a1/,
  })
  t.same(l.c.role('web1')?.replication, forward, 'not reversed while it runs in the cluster')
  l.stopped(stops(l.cmd({ op: 'stop', name: 'web1' }))[0]!)
  l.cmd(reversing) // the planned failover, once the cluster stopped it
  const failedOver = {
    code: 'HVLAB_E_STATE',
    detail: 'HVLAB_E_REPLICA_FAILED_OVER',
    message: /fail it back first: hvlab replica failover web1 --planned$/,
  }
  const refusals: [string, Extract<RoleInput, { kind: 'command' }>['command']][] = [
    ['replica disable', { op: 'set', name: 'web1', changes: { replication: null } }],
    ['replica enable again', { op: 'set', name: 'web1', changes: { replication: forward } }],
    [
      'another setting, still reversed',
      { op: 'set', name: 'web1', changes: { replication: { ...forward, compress: true, reversed_to: 'host-a2' } } },
    ],
    ['vm start', { op: 'start', name: 'web1' }],
    ['vm remove', { op: 'remove', name: 'web1' }],
  ]
  for (const [what, command] of refusals) {
    const before = l.c.role('web1')
    t.throws(() => l.cmd(command), failedOver, `${what} is refused`)
    t.same(l.c.role('web1'), before, `${what} changed nothing`)
  }
  t.same(l.c.role('web1')?.replication, { ...forward, reversed_to: 'host-a1' })
  l.cmd({ op: 'set', name: 'web1', changes: { replication: { ...forward, reversed_to: 'host-a2' } } })
  t.same(
    l.c.role('web1')?.replication,
    { ...forward, reversed_to: 'host-a2' },
    'the Replica Broker places the reverse replica on another member',
  )
  l.cmd({ op: 'set', name: 'web1', changes: { replication: { ...forward, reversed_to: 'host-a1' } } })
  for (const node of ['host-a2', 'host-b1']) l.setNode(node, 'down')
  l.advance(60 * MIN)
  t.same(starts(l.setNode('host-a2', 'up')), [], 'nor does the cluster start it by itself')
  t.match(l.c.role('web1'), { state: 'stopped', owner: null })

  t.throws(() => l.cmd({ op: 'fail-back', name: 'web1', replication: { ...forward, reversed_to: 'host-a1' } }), { code: 'HVLAB_E_USAGE' })
  l.cmd({ op: 'fail-back', name: 'web1', replication: forward })
  t.same(l.c.role('web1')?.replication, forward, 'the fail-back: replication goes forward again')
  t.throws(() => l.cmd({ op: 'fail-back', name: 'web1', replication: forward }), { code: 'HVLAB_E_STATE', message: /no planned failover/ })
  t.match(starts(l.cmd({ op: 'start', name: 'web1' })), [{ role: 'web1' }], 'and the cluster starts it')
  l.cmd({ op: 'set', name: 'web1', changes: { replication: null } })
  t.equal(l.c.role('web1')?.replication, undefined, 'replica disable works again')
})

t.test(
  'a VM of another cluster whose replica this cluster holds: an unplanned failover here ends its replication, and the cluster may start it',
  async (t) => {
    const l = lab()
    const back = { to: 'main', to_cluster: true, frequency_ms: 30_000, recovery_points: 0, compress: false } as const
    running(l, 'web1', 2048, ['host-a1'])
    l.stopped(stops(l.cmd({ op: 'stop', name: 'web1' }))[0]!)
    l.cmd({ op: 'set', name: 'web1', changes: { replication: { ...back, reversed_to: 'host-a1' } } })
    t.throws(() => l.cmd({ op: 'start', name: 'web1' }), { detail: 'HVLAB_E_REPLICA_FAILED_OVER', message: /runs in cluster main/ })
    l.cmd({ op: 'fail-back', name: 'web1', replication: null })
    t.equal(l.c.role('web1')?.replication, undefined, 'its replication ended: it must be set up again from here')
    t.throws(() => l.cmd({ op: 'fail-back', name: 'web1', replication: null }), { code: 'HVLAB_E_STATE', message: /no planned failover/ })
    t.match(starts(l.cmd({ op: 'start', name: 'web1' })), [{ role: 'web1' }], 'the cluster starts it from its replica')
  },
)

t.test(
  'a VM on its replica server whose server is lost: an unplanned failover back ends its replication, and the cluster starts it',
  async (t) => {
    const l = lab()
    const forward = { to: 'dr1', frequency_ms: 30_000, recovery_points: 2, compress: false } as const
    running(l, 'web1', 2048, ['host-a1'])
    l.cmd({ op: 'set', name: 'web1', changes: { replication: forward } })
    l.stopped(stops(l.cmd({ op: 'stop', name: 'web1' }))[0]!)
    l.cmd({ op: 'set', name: 'web1', changes: { replication: { ...forward, reversed_to: 'host-a1' } } })
    l.cmd({ op: 'fail-back', name: 'web1', replication: null })
    t.equal(l.c.role('web1')?.replication, undefined, 'replicating nowhere: it is set up again once the server is back')
    t.match(starts(l.cmd({ op: 'start', name: 'web1' })), [{ role: 'web1' }])
  },
)
