/**
 * The guest hang hook (`hvlab vm hang`): the pure GuestHang, a VmInstance whose guest
 * stops beating while it stays running (timed, released, cleared by a restart), and the
 * whole path on two hosts' VmAgents driven by the real RoleController: a hung guest fails
 * LooksAlive then IsAlive, is restarted in place (a fresh start op) up to the policy's 3
 * restarts, and the fourth hang fails it over to the other node.
 */
import t from 'tap'
import { ManualClock } from '../../shared/clock.js'
import { GUEST_HANG_MS_MAX, GuestHang } from '../../agent/vm/guest-hang.js'
import { GUEST_HEARTBEAT_INTERVAL_MS, VmInstance } from '../../agent/vm/vm-instance.js'
import type { VmAgent } from '../../agent/cluster/vm-agent.js'
import { testVmAgent } from './vm-agent-fixture.js'
import { RoleController, type RoleEffect, type RoleInput } from '../../agent/cluster/role-controller.js'

t.test('GuestHang: until released, or for a time; bad durations refused', async (t) => {
  const h = new GuestHang()
  t.notOk(h.isHung(0))
  h.hang(100, null)
  t.ok(h.isHung(1_000_000), 'no duration: hung until released')
  t.same(h.state(5), { hung: true, until_ms: null })
  t.equal(h.release(200), true)
  t.notOk(h.isHung(201))
  t.equal(h.release(300), false, 'releasing a guest that is not hung says so')
  h.hang(1000, 500)
  t.same(h.state(1499), { hung: true, until_ms: 1500 })
  t.notOk(h.isHung(1500), 'a timed hang ends by itself')
  t.throws(() => h.hang(0, 0), { code: 'HVLAB_E_USAGE', message: /1 to 3600000 ms, got 0/ })
  t.throws(() => h.hang(0, GUEST_HANG_MS_MAX + 1), { code: 'HVLAB_E_USAGE' })
  t.throws(() => h.hang(0, 1.5), { code: 'HVLAB_E_USAGE' })
})

t.test('VmInstance: a hung guest stops beating but stays running; it beats again when the hang ends', async (t) => {
  const clock = new ManualClock(0)
  const vm = new VmInstance('web1', 64, clock)
  vm.start()
  clock.advance(3 * GUEST_HEARTBEAT_INTERVAL_MS)
  t.equal(vm.guestHeartbeats, 3)
  vm.hang(5 * GUEST_HEARTBEAT_INTERVAL_MS)
  clock.advance(4 * GUEST_HEARTBEAT_INTERVAL_MS)
  t.equal(vm.guestHeartbeats, 3, 'no beats while hung')
  t.equal(vm.state, 'running')
  t.equal(vm.hangState.hung, true)
  clock.advance(3 * GUEST_HEARTBEAT_INTERVAL_MS)
  t.equal(vm.hangState.hung, false, 'the timed hang is over')
  t.ok(vm.guestHeartbeats >= 4, `beating again (${vm.guestHeartbeats})`)
  vm.hang()
  const before = vm.guestHeartbeats
  clock.advance(10 * GUEST_HEARTBEAT_INTERVAL_MS)
  t.equal(vm.guestHeartbeats, before, 'an untimed hang lasts')
  t.equal(vm.releaseHang(), true)
  clock.advance(2 * GUEST_HEARTBEAT_INTERVAL_MS)
  t.equal(vm.guestHeartbeats, before + 2, 'released: beating again')
  vm.stop()
  t.equal(clock.pendingTimers(), 0, 'no timer left behind')
})

// ---- the whole path: hosts' VmAgents + the coordinator's RoleController ---------------

const NODES = ['host-a1', 'host-a2'] as const

function twoHosts() {
  const clock = new ManualClock(0)
  const ctl = new RoleController()
  const events: { kind: string; details: Record<string, unknown> }[] = []
  const inbox: RoleInput[] = []
  const agents = new Map<string, VmAgent>()
  for (const host of NODES) {
    const a = testVmAgent({
      host,
      clock,
      reportFailure: (f) => inbox.push({ kind: 'vm-failed', node: host, ...f }),
      emitEvent: (kind, details) => events.push({ kind, details }),
    })
    a.start()
    agents.set(host, a)
  }
  /** Carries out the controller's starts and stops on the agents (as role-service does), until quiet. */
  const pump = (fx: RoleEffect[]): void => {
    const queue = [...fx]
    for (let guard = 0; guard < 1000 && (queue.length > 0 || inbox.length > 0); guard++) {
      const input = inbox.shift()
      if (input) {
        queue.push(...ctl.step(input, clock.now()))
        continue
      }
      const e = queue.shift()!
      if (e.kind === 'emit') events.push({ kind: e.event.kind, details: e.event.details })
      if (e.kind === 'start-vm') {
        const r = agents.get(e.node)!.startVm(e.role, e.memory_mib, e.op, e.epoch, 'coordinator')
        inbox.push(
          r.ok
            ? { kind: 'vm-started', role: e.role, node: e.node, op: e.op }
            : { kind: 'vm-start-failed', role: e.role, node: e.node, op: e.op, reason: r.reason },
        )
      }
      if (e.kind === 'stop-vm') {
        agents.get(e.node)!.stopVm(e.role, e.op, e.reason)
        inbox.push({ kind: 'vm-stopped', role: e.role, node: e.node, op: e.op })
      }
    }
  }
  const advance = (ms: number): void => {
    for (let i = 0; i < ms / 100; i++) {
      clock.advance(100)
      const held_until = ctl.nextHeldStartMs() // as role-service's tick does
      pump(held_until !== null && held_until <= clock.now() ? ctl.step({ kind: 'timer' }, clock.now()) : [])
    }
  }
  pump(
    ctl.step(
      { kind: 'membership', epoch: 1, nodes: NODES.map((name) => ({ name, status: 'up' as const, memory_mib: 4096 })) },
      clock.now(),
    ),
  )
  return { clock, ctl, agents, events, pump, advance }
}

const ownerOf = (l: ReturnType<typeof twoHosts>): { host: string; op: number } | null => {
  for (const [host, a] of l.agents) {
    const v = a.inventory().find((x) => x.role === 'web1')
    if (v) return { host, op: v.op }
  }
  return null
}

t.test('a hung guest is restarted in place three times, then failed over', async (t) => {
  const l = twoHosts()
  l.pump(
    l.ctl.step(
      { kind: 'command', command: { op: 'create', spec: { name: 'web1', memory_mib: 64, preferred_owners: ['host-a1', 'host-a2'] } } },
      l.clock.now(),
    ),
  )
  l.pump(l.ctl.step({ kind: 'command', command: { op: 'start', name: 'web1' } }, l.clock.now()))
  l.advance(3000)
  let at = ownerOf(l)
  t.match(at, { host: 'host-a1' }, 'runs on its first preferred owner')
  t.match(l.ctl.role('web1'), { state: 'running', owner: 'host-a1' })

  for (let restart = 1; restart <= 3; restart++) {
    const seen = l.events.length
    l.agents.get('host-a1')!.hang('web1')
    l.advance(4000)
    t.ok(
      l.events.slice(seen).some((e) => e.kind === 'role.health-suspect'),
      `hang ${restart}: LooksAlive notices`,
    )
    t.equal(ownerOf(l)?.op, at!.op, `hang ${restart}: not restarted before IsAlive fails`)
    l.advance(6000)
    const after = l.events.slice(seen).map((e) => e.kind)
    t.ok(
      after.includes('vm.guest-hung') && after.includes('role.health-failed') && after.includes('role.failure'),
      `hang ${restart}: the timeline has the hang, the failed IsAlive and the failure`,
    )
    const now = ownerOf(l)
    t.match(now, { host: 'host-a1' }, `hang ${restart}: restarted on the same node`)
    t.ok(now!.op > at!.op, `hang ${restart}: a fresh start op (${at!.op} -> ${now!.op})`)
    t.match(l.ctl.role('web1'), { state: 'running', owner: 'host-a1' })
    const beats = l.agents.get('host-a1')!.inventory()[0]!.guest_heartbeats
    l.advance(2000)
    t.ok(l.agents.get('host-a1')!.inventory()[0]!.guest_heartbeats > beats, `hang ${restart}: the restarted guest beats again`)
    at = now
  }

  l.agents.get('host-a1')!.hang('web1')
  l.advance(12_000)
  t.match(ownerOf(l), { host: 'host-a2' }, 'the fourth failure within 15 minutes fails it over')
  t.match(l.ctl.role('web1'), { state: 'running', owner: 'host-a2' })
  t.same(l.agents.get('host-a1')!.inventory(), [], 'nothing left on host-a1')
})

t.test('a short hang that ends before IsAlive fails is not restarted; release ends a hang', async (t) => {
  const l = twoHosts()
  l.pump(
    l.ctl.step(
      { kind: 'command', command: { op: 'create', spec: { name: 'web1', memory_mib: 64, preferred_owners: ['host-a1'] } } },
      l.clock.now(),
    ),
  )
  l.pump(l.ctl.step({ kind: 'command', command: { op: 'start', name: 'web1' } }, l.clock.now()))
  l.advance(3000)
  const first = ownerOf(l)!
  const a1 = l.agents.get('host-a1')!
  a1.hang('web1', 4000)
  l.advance(10_000)
  t.same(ownerOf(l), first, 'same host, same start op: the guest came back in time')
  t.notOk(l.events.some((e) => e.kind === 'role.health-failed'))
  a1.hang('web1')
  l.advance(2000)
  t.equal(a1.releaseHang('web1'), true)
  t.ok(l.events.some((e) => e.kind === 'vm.guest-released'))
  l.advance(10_000)
  t.same(ownerOf(l), first, 'released before IsAlive failed: not restarted')
  t.equal(a1.releaseHang('web1'), false, 'nothing to release')
  t.throws(() => a1.hang('nope'), { code: 'HVLAB_E_NOT_FOUND', message: /host-a1 does not run vm nope/ })
  t.throws(() => a1.releaseHang('nope'), { code: 'HVLAB_E_NOT_FOUND' })
})
