import t from 'tap'
import { ManualClock } from '../../shared/clock.js'
import { noQuorumGraceMs } from '../../agent/cluster/vm-agent.js'
import { testVmAgent } from './vm-agent-fixture.js'
import { VmInstance } from '../../agent/vm/vm-instance.js'

function agent(grace_ms = 1500) {
  const clock = new ManualClock(0)
  let lease = true
  const failures: { role: string; op: number; gone: boolean; reason: string }[] = []
  const events: string[] = []
  const a = testVmAgent({
    clock,
    holdsLease: () => lease,
    no_quorum_grace_ms: grace_ms,
    reportFailure: (f) => failures.push(f),
    emitEvent: (kind) => events.push(kind),
  })
  a.start()
  return { a, clock, failures, events, setLease: (v: boolean) => (lease = v) }
}

t.test('the grace: a lease gap shorter than it keeps the vms; a longer one stops them all', async (t) => {
  const { a, clock, events, setLease } = agent(1500)
  t.ok(a.startVm('web1', 1024, 1, 3, 'host-b1').ok)
  t.ok(a.startVm('db1', 1024, 1, 3, 'host-b1').ok)
  setLease(false)
  clock.advance(1000) // a view change: ~0.5–1 s without a lease
  setLease(true)
  clock.advance(200)
  t.same(
    a.inventory().map((v) => v.role),
    ['db1', 'web1'],
    'a short gap stops nothing',
  )
  setLease(false)
  clock.advance(1400)
  t.equal(a.inventory().length, 2, 'still within the grace')
  clock.advance(200)
  t.same(a.inventory(), [], 'past the grace every vm is stopped')
  t.ok(events.includes('role.stopped-no-quorum'))
})

t.test('a start applies the guest load the role keeps; without one the guest is idle', async (t) => {
  const { a } = agent()
  t.ok(a.startVm('web1', 64, 1, 3, 'host-b1', [], { dirty_mib_per_s: 2, disk_iops: 20 }).ok)
  t.match(a.vms.instance('web1')?.load, { dirty_mib_per_s: 2, disk_iops: 20, hot_fraction: 0.05 })
  t.ok(a.startVm('db1', 64, 1, 3, 'host-b1').ok)
  t.match(a.vms.instance('db1')?.load, { dirty_mib_per_s: 0, disk_iops: 0 })
  a.stop()
})

t.test('no lease: starts are refused with why; too little memory too', async (t) => {
  const { a, setLease } = agent()
  setLease(false)
  const r = a.startVm('web1', 1024, 1, 3, 'host-b1')
  t.notOk(r.ok)
  t.match(r.reason, /holds no quorum lease/)
  setLease(true)
  const big = a.startVm('big', 8192, 1, 3, 'host-b1')
  t.notOk(big.ok)
  t.match(big.reason, /MiB free/)
  t.ok(a.startVm('web1', 1024, 2, 4, 'host-b1').ok)
  const stale = a.startVm('db1', 1024, 1, 3, 'host-b1')
  t.notOk(stale.ok, 'a start from an older epoch than one seen is refused')
  t.same(
    a.inventory().map((v) => [v.role, v.op]),
    [['web1', 2]],
  )
  t.ok(a.stopVm('web1', 3, 'operator').ok)
  t.ok(a.stopVm('web1', 4, 'again').ok, 'stopping a vm that is not here is fine')
})

t.test('health: a hung guest fails IsAlive and is reported once with its start op', async (t) => {
  const { a, clock, failures, events } = agent()
  a.startVm('web1', 1024, 7, 3, 'host-b1')
  clock.advance(8000)
  t.same(failures, [], 'a healthy guest is not reported')
  a.hang('web1')
  clock.advance(4000)
  t.ok(events.includes('role.health-suspect'), 'LooksAlive notices first')
  clock.advance(6000)
  t.equal(failures.length, 1)
  t.match(failures[0], { role: 'web1', op: 7, gone: false })
  t.match(failures[0]!.reason, /IsAlive failed/)
  clock.advance(10_000)
  t.equal(failures.length, 1, 'reported once')
  t.throws(() => a.hang('nope'), /does not run vm nope/)
})

t.test('the grace fits in the stop bound, or the settings are refused', async (t) => {
  t.equal(noQuorumGraceMs(2000, 125), 2000 - 250 - 250)
  t.throws(() => noQuorumGraceMs(400, 125), /too short/)
})

t.test('a host frozen past its lease (SIGSTOP) stops its vms at its first check after waking, not a grace later', async (t) => {
  const clock = new ManualClock(0)
  let until = 2000
  const leased = (now: number) => now < until
  const events: string[] = []
  const a = testVmAgent({ clock, holdsLease: (now) => leased(now), leaseUntil: () => until, emitEvent: (kind) => events.push(kind) })
  t.ok(a.startVm('web1', 1024, 1, 3, 'host-b1').ok)
  // frozen: no check ran until 10 s, long after the lease ran out at 2 s
  clock.advance(10_000)
  a.start()
  clock.advance(100)
  t.same(a.inventory(), [], 'its first check stops the vm: it has been without a lease for 8 s')
  t.ok(events.includes('role.stopped-no-quorum'))
  a.stop()

  // no lease although the last one runs until later (a new view whose lease is not granted yet): the gap counts from now
  let d_leased = true
  const d = testVmAgent({ host: 'host-a2', clock, holdsLease: () => d_leased, leaseUntil: () => clock.now() + 5000 })
  t.ok(d.startVm('db1', 1024, 2, 4, 'host-b1').ok)
  d.start()
  d_leased = false
  clock.advance(1300)
  t.equal(d.inventory().length, 1, 'within the grace counted from when the gap was seen')
  clock.advance(400)
  t.same(d.inventory(), [], 'then stopped')
  d.stop()

  const c_until = clock.now() + 1000
  const c = testVmAgent({ host: 'host-a3', clock, holdsLease: (now) => now < c_until, leaseUntil: () => c_until })
  t.ok(c.startVm('db1', 1024, 2, 4, 'host-b1').ok)
  c.start()
  clock.advance(2200) // the lease ended 1200 ms ago
  t.equal(c.inventory().length, 1, 'a gap shorter than the grace since the lease ended keeps the vm')
  clock.advance(1400)
  t.same(c.inventory(), [], "past the grace from the lease's end it is stopped")
  c.stop()
})

t.test("a guest's own timers check the lease first: a woken host's guest takes no step on a lapsed lease", async (t) => {
  const clock = new ManualClock(0)
  const until = 2000
  const events: string[] = []
  const a = testVmAgent({ clock, holdsLease: (now) => now < until, leaseUntil: () => until, emitEvent: (kind) => events.push(kind) })
  t.ok(a.startVm('web1', 1024, 1, 3, 'host-b1').ok)
  // The agent's periodic check is not armed (as if its timer came after the guest's on waking):
  // only the guest's heartbeat timer fires, and its gate stops the vm once past the grace.
  clock.advance(1000)
  const beats = a.inventory()[0]!.guest_heartbeats
  t.ok(beats >= 1, 'the guest ran while leased')
  clock.advance(10_000)
  t.same(a.inventory(), [], "stopped by the guest's own timer")
  t.ok(events.includes('role.stopped-no-quorum'))
})

t.test('every lapse of the lease stops what runs then, also VMs that arrived by migration after an earlier lapse', async (t) => {
  const { a, clock, events, setLease } = agent(1500)
  t.ok(a.startVm('web1', 1024, 1, 3, 'host-b1').ok)
  setLease(false)
  clock.advance(2000)
  t.same(a.inventory(), [], 'the first lapse stops web1')
  setLease(true)
  clock.advance(500)
  // db1 arrives by live migration (no start on this host), then the lease lapses again.
  a.adoptVm(new VmInstance('db1', 64, clock), 2, 4, 'host-a2')
  clock.advance(500)
  setLease(false)
  clock.advance(2000)
  t.same(a.inventory(), [], 'the second lapse stops db1 too')
  t.equal(events.filter((e) => e === 'role.stopped-no-quorum').length, 2, 'one stop per lapse')
})

t.test('the virtual switch hears where each vm is from the agent (vm-location), before the timeline does', async (t) => {
  const clock = new ManualClock(0)
  let lease = true
  const said: string[] = []
  const a = testVmAgent({
    clock,
    holdsLease: () => lease,
    emitEvent: (kind, d: Record<string, unknown>) =>
      said.push(`event ${kind} ${String(d.vm ?? (d.vms as string[] | undefined)?.join(','))}`),
    announce: (l) => said.push(`${l.at} ${l.vm} op ${l.op} epoch ${l.epoch}`),
  })
  a.start()
  t.ok(a.startVm('web1', 512, 4, 2, 'host-b1').ok)
  t.ok(a.startVm('db1', 512, 5, 2, 'host-b1').ok)
  a.stopVm('web1', 6, 'stopped by operator')
  a.stopVm('web1', 7, 'again') // not here any more: nothing to say
  lease = false
  clock.advance(2000)
  t.same(said, [
    'here web1 op 4 epoch 2',
    'event vm.started web1',
    'here db1 op 5 epoch 2',
    'event vm.started db1',
    'gone web1 op 4 epoch 2',
    'event vm.stopped web1',
    'gone db1 op 5 epoch 2',
    'event role.stopped-no-quorum db1',
  ])
  a.stop()
})

t.test('UNSAFE ignore-quorum-loss: a host past the grace without a lease keeps its vms running; without it they stop', async (t) => {
  for (const unsafe of [true, false]) {
    const clock = new ManualClock(0)
    let lease = true
    const said: string[] = []
    const a = testVmAgent({
      clock,
      holdsLease: () => lease,
      emitEvent: (kind) => said.push(kind),
      announce: (l) => said.push(`${l.at} ${l.vm}`),
      ...(unsafe ? { unsafe_ignore_quorum_loss: true } : {}),
    })
    a.start()
    t.ok(a.startVm('web1', 512, 1, 3, 'host-b1').ok)
    t.ok(a.startVm('db1', 512, 2, 3, 'host-b1').ok)
    lease = false
    clock.advance(10_000) // far past the 1.5 s grace
    const running = a.inventory().filter((v) => v.state === 'running')
    if (unsafe) {
      t.same(
        running.map((v) => v.role),
        ['db1', 'web1'],
        'with the unsafe setting both vms still run',
      )
      t.notOk(said.includes('role.stopped-no-quorum'), 'nothing stopped, nothing said')
      t.notOk(
        said.some((s) => s.startsWith('gone')),
        'the switch is not told they left',
      )
    } else {
      t.same(running, [], 'without it both vms stopped')
      t.ok(said.includes('role.stopped-no-quorum'))
    }
    a.stop()
  }
})
