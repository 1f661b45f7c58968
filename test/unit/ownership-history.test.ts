/**
 * doubleOwners on hand-made timelines: a failover after a kill is no overlap; a VM started
 * on a second host before the first stopped it is; a paused host that wakes up and runs its
 * VM again next to the new owner is (the zombie); a live migration's hand-over is not,
 * though the source's departure is stamped after the arrival.
 */
import t from 'tap'
import { doubleOwners, vmRuns, type HistoryEvent } from '../../scripts/soak/ownership-history.js'

const ev = (at_ms: number, kind: string, source: string, details: Record<string, unknown>): HistoryEvent => ({
  at_ms,
  kind,
  source,
  details,
})
const started = (at_ms: number, host: string, vm = 'vm1') => ev(at_ms, 'vm.started', host, { vm })
const stopped = (at_ms: number, host: string, vm = 'vm1') => ev(at_ms, 'vm.stopped', host, { vm })
const signalled = (at_ms: number, process: string, signal: string) => ev(at_ms, 'process.signalled', 'lab', { process, signal })

t.test('kill -9 of the owner, then a start elsewhere: one owner at a time', async (t) => {
  const events = [
    started(100, 'host-a1'),
    ev(1_000, 'process.crashed', 'lab', { process: 'host-a1' }),
    started(4_000, 'host-a2'),
    stopped(9_000, 'host-a2'),
  ]
  t.same(doubleOwners(events), [])
  t.same(
    vmRuns(events).map((r) => [r.host, r.from_ms, r.to_ms]),
    [
      ['host-a1', 100, 1_000],
      ['host-a2', 4_000, 9_000],
    ],
  )
})

t.test('a second host starts the VM before the first stopped it: a double owner for the overlap', async (t) => {
  const events = [started(100, 'host-a1'), started(2_000, 'host-b1'), stopped(2_500, 'host-a1'), stopped(3_000, 'host-b1')]
  t.same(doubleOwners(events), [{ kind: 'double-owner', vm: 'vm1', hosts: ['host-a1', 'host-b1'], from_ms: 2_000, to_ms: 2_500 }])
  t.same(doubleOwners(events, 500), [], 'an overlap within the tolerance is none')
})

t.test('the zombie: a paused owner is replaced, then wakes up and runs its VM until it stops it', async (t) => {
  const events = [
    started(100, 'host-a1'),
    signalled(1_000, 'host-a1', 'SIGSTOP'),
    started(5_000, 'host-a2'),
    signalled(8_000, 'host-a1', 'SIGCONT'),
    stopped(8_200, 'host-a1'),
    stopped(10_000, 'host-a2'),
  ]
  t.same(doubleOwners(events), [{ kind: 'double-owner', vm: 'vm1', hosts: ['host-a1', 'host-a2'], from_ms: 8_000, to_ms: 8_200 }])
  const stoppedWhilePaused = [
    started(100, 'host-a1'),
    signalled(1_000, 'host-a1', 'SIGSTOP'),
    started(5_000, 'host-a2'),
    ev(6_000, 'process.exited', 'lab', { process: 'host-a1' }),
    stopped(10_000, 'host-a2'),
  ]
  t.same(doubleOwners(stoppedWhilePaused), [], 'a paused owner killed before it woke: none')
  const stoppedOnWaking = [
    ...events.slice(0, 4),
    ev(8_010, 'role.stopped-no-quorum', 'host-a1', { node: 'host-a1', vms: ['vm1'] }),
    stopped(10_000, 'host-a2'),
  ]
  t.same(doubleOwners(stoppedOnWaking, 20), [], 'stopped for want of quorum as it woke: within the tolerance')
})

t.test('a live migration hands over at the arrival, however late the departure is stamped', async (t) => {
  const events = [
    started(100, 'host-a1'),
    ev(5_000, 'vm.arrived', 'host-a2', { vm: 'vm1', from: 'host-a1' }),
    ev(5_030, 'vm.departed', 'host-a1', { vm: 'vm1', to: 'host-a2' }),
    stopped(9_000, 'host-a2'),
  ]
  t.same(doubleOwners(events), [])
  t.same(
    doubleOwners([
      started(100, 'host-a1'),
      started(200, 'host-a1', 'vm2'),
      started(300, 'host-a2', 'vm2'),
      stopped(1_000, 'host-a2', 'vm2'),
    ]).map((d) => d.vm),
    ['vm2'],
    'per VM',
  )
})
