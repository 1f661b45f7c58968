/**
 * The soak's fault schedule: the same seed gives the same steps, a different seed other
 * steps; only the faults asked for, and only those the lab can have; a paused host is held
 * longer than a lease; clock faults stay within the tolerance; bad fault lists are refused
 * with the list of known faults; a standalone host (a replica server) is killed, paused,
 * isolated and cut off by a WAN fault on its site's link, but never given a clock fault or
 * an operator action.
 */
import t from 'tap'
import { isHvlabError } from '../../shared/errors.js'
import {
  CLOCK_OFFSET_WITHIN_TOLERANCE_MS,
  FAULT_KINDS,
  FaultSchedule,
  SCHEDULE_TIMING_DEFAULT,
  faultTarget,
  parseFaultList,
  scheduleLabOf,
  type ScheduleLab,
} from '../../scripts/soak/fault-schedule.js'
import { loadTopology } from '../../shared/topology.js'

const LAB: ScheduleLab = {
  sites: ['site-a', 'site-b', 'site-c'],
  hosts: [
    { name: 'host-a1', site: 'site-a' },
    { name: 'host-a2', site: 'site-a' },
    { name: 'host-b1', site: 'site-b' },
  ],
  standalone: [],
  arrays: ['array-a', 'array-b'],
  witness: 'witness',
  vms: ['vm1', 'vm2'],
}

const steps = (seed: number, kinds = [...FAULT_KINDS], lab = LAB, n = 200) => {
  const s = new FaultSchedule(seed, kinds, lab)
  return Array.from({ length: n }, () => s.next())
}

t.test('a seed gives one schedule', async (t) => {
  t.same(steps(42), steps(42), 'same seed, same steps')
  t.not(JSON.stringify(steps(42)), JSON.stringify(steps(43)), 'another seed, other steps')
})

t.test('every fault asked for happens, and no other', async (t) => {
  const all = new Set(steps(1).map((s) => s.fault.kind))
  t.same([...all].sort(), [...FAULT_KINDS].sort(), 'all eight over 200 steps')
  const only = new Set(steps(1, ['kill', 'clock']).map((s) => s.fault.kind))
  t.same([...only].sort(), ['clock', 'kill'])
})

t.test('each fault within its bounds', async (t) => {
  for (const s of steps(7)) {
    const f = s.fault
    if (f.kind === 'pause') t.ok(s.hold_ms >= SCHEDULE_TIMING_DEFAULT.pause_ms_min, 'a pause outlasts a lease')
    if (f.kind === 'clock') t.ok(Math.abs(f.offset_ms) <= CLOCK_OFFSET_WITHIN_TOLERANCE_MS, 'clock offset within the tolerance')
    if (f.kind === 'kill' || f.kind === 'pause')
      t.ok(
        LAB.hosts.some((h) => h.name === f.process),
        'a host',
      )
    if (f.kind === 'wan') t.not(f.a, f.b, 'two different sites')
    if (f.kind === 'disk') t.equal([f.fsync_delay_ms !== null, f.fsync_fails, f.full].filter(Boolean).length, 1, 'one disk fault')
    t.ok(s.quiet_ms >= SCHEDULE_TIMING_DEFAULT.quiet_ms[0] && s.quiet_ms <= SCHEDULE_TIMING_DEFAULT.quiet_ms[1])
    t.ok(faultTarget(f).length > 0)
  }
})

t.test('faults the lab cannot have are left out; none possible is an error', async (t) => {
  const noWitness = { ...LAB, witness: null }
  t.notOk(steps(3, [...FAULT_KINDS], noWitness).some((s) => s.fault.kind === 'witness-kill'))
  t.throws(() => new FaultSchedule(1, ['witness-kill'], noWitness), { code: 'HVLAB_E_USAGE' })
  const oneSite = { ...LAB, hosts: LAB.hosts.filter((h) => h.site === 'site-a') }
  t.notOk(steps(3, ['wan', 'kill'], oneSite).some((s) => s.fault.kind === 'wan'))
})

t.test('--faults is checked', async (t) => {
  t.same(parseFaultList('kill, pause,kill'), ['kill', 'pause'], 'trimmed, once each')
  for (const bad of ['kill,explode', '', 'KILL']) {
    try {
      parseFaultList(bad)
      t.fail(`${JSON.stringify(bad)} accepted`)
    } catch (e) {
      t.ok(isHvlabError(e) && e.code === 'HVLAB_E_USAGE', `${JSON.stringify(bad)} refused`)
      t.match((e as Error).message, /kill, pause, partition, wan, clock, array-kill, witness-kill, disk/, 'names the known faults')
    }
  }
})

t.test('a lab with a standalone host: the replica server and its site are hit too, but by no clock fault or operator action', async (t) => {
  const dr = loadTopology(new URL('../../topologies/two-site-dr.json', import.meta.url).pathname)
  const lab = scheduleLabOf(dr, ['vm1', 'vm2'])
  t.same(
    lab.hosts.map((h) => h.name),
    ['host-a1', 'host-a2', 'host-b1', 'host-b2'],
    'the cluster hosts',
  )
  t.same(lab.standalone, [{ name: 'replica-dr1', site: 'site-dr' }], 'and the replica server')
  const drawn = steps(11, [...FAULT_KINDS], lab, 500)
  const hitBy = (kinds: string[]) =>
    drawn
      .filter(({ fault: f }) => kinds.includes(f.kind))
      .flatMap(({ fault: f }) => [
        ...('process' in f ? [f.process] : []),
        ...(f.kind === 'partition' && f.shape === 'isolate' ? [f.isolate] : []),
        ...(f.kind === 'partition' && f.shape === 'sites' ? [f.a, f.b] : []),
        ...(f.kind === 'wan' ? [f.a, f.b] : []),
      ])
  t.ok(hitBy(['kill']).includes('replica-dr1') && hitBy(['pause']).includes('replica-dr1'), 'killed and paused')
  t.ok(hitBy(['partition']).includes('replica-dr1'), 'isolated')
  t.ok(hitBy(['wan']).includes('site-dr') && hitBy(['partition']).includes('site-dr'), "its site's link shaped and cut")
  t.ok(hitBy(['kill']).includes('host-a1') && hitBy(['wan']).includes('site-b'), 'the cluster hosts and their sites still')
  t.notOk(hitBy(['clock']).includes('replica-dr1'), 'no clock fault')
  const acted = drawn.flatMap(({ action }) => (action?.kind === 'drain' ? [action.host] : action && 'to' in action ? [action.to] : []))
  t.notOk(acted.includes('replica-dr1'), 'and no operator action moves a VM there')
  const defaultLab = scheduleLabOf(loadTopology(new URL('../../topologies/two-site.json', import.meta.url).pathname), ['vm1'])
  t.same(defaultLab.standalone, [], 'the default lab has none, so its schedules are as before')
})
