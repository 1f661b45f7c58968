/**
 * What a periodic remote-copy group promises the write checker (async-replication.ts), on
 * hand-made events: which VMs are periodic and their RPO, each failover with the consistent
 * point its array's copy had, and how a lost write stands against them.
 */
import t from 'tap'
import { RPO_PERIODS, asyncLoss, groupFailovers, periodicVms } from '../../scripts/soak/async-replication.js'
import type { History } from '../../scripts/soak/history.js'

type Event = History['events'][number]
let seq = 0
const ev = (at_ms: number, source: string, kind: string, details: Record<string, unknown>): Event =>
  ({ t: 'event', seq: ++seq, at_ms, kind, source, details }) as Event

const provisioned = (vm: string, mode: string, period_ms?: number) =>
  ev(0, 'host-a1', 'clx.disk-provisioned', {
    vm,
    group: `rc-${vm}`,
    volume: `${vm}-disk0`,
    size_bytes: 4096,
    primary: 'array-a',
    secondary: 'array-b',
    mode,
    ...(period_ms === undefined ? {} : { period_ms }),
  })

t.test('periodic VMs and their RPO; synchronous ones and older events are not', async (t) => {
  const vms = periodicVms([provisioned('p1', 'periodic', 500), provisioned('s1', 'sync'), provisioned('old', 'periodic')])
  t.same([...vms.keys()], ['p1'])
  t.same(vms.get('p1'), { group: 'rc-p1', period_ms: 500, rpo_ms: RPO_PERIODS * 500 })
})

t.test('each failover with its array’s last consistent point before it', async (t) => {
  const f = groupFailovers([
    ev(100, 'array-b', 'rc.synced', { group: 'rc-p1', consistent_at_ms: 90 }),
    ev(200, 'array-a', 'rc.synced', { group: 'rc-p1', consistent_at_ms: 190 }),
    ev(300, 'array-b', 'rc.failover', { group: 'rc-p1', from: 'secondary', to: 'primary-rev', rolled_back: false }),
    ev(400, 'array-b', 'rc.synced', { group: 'rc-p1', consistent_at_ms: 390 }),
    ev(500, 'array-a', 'rc.failover', { group: 'rc-p1', from: 'secondary-rev', to: 'primary', rolled_back: false }),
    ev(600, 'array-b', 'rc.failover', { group: 'rc-x', from: 'secondary', to: 'primary-rev', rolled_back: false }),
  ])
  t.same(f.get('rc-p1'), [
    { array: 'array-b', at_ms: 300, consistent_at_ms: 90 },
    { array: 'array-a', at_ms: 500, consistent_at_ms: 190 },
  ])
  t.same(f.get('rc-x'), [{ array: 'array-b', at_ms: 600, consistent_at_ms: null }], 'a copy that never completed a cycle')
})

t.test(
  'a lost write: allowed after the consistent point within the RPO, a breach later, forbidden before it or without a failover',
  async (t) => {
    const vm = { group: 'rc-p1', period_ms: 1000, rpo_ms: 2000 }
    const failovers = new Map([['rc-p1', [{ array: 'array-b', at_ms: 10_000, consistent_at_ms: 7_000 }]]])
    t.equal(asyncLoss({ array: 'array-a', acked_ms: 8_000 }, vm, failovers), 'allowed')
    t.equal(asyncLoss({ array: 'array-a', acked_ms: 9_500 }, vm, failovers), 'beyond-rpo')
    t.equal(asyncLoss({ array: 'array-a', acked_ms: 6_000 }, vm, failovers), 'forbidden', 'the cycle had it')
    t.equal(asyncLoss({ array: 'array-a', acked_ms: 11_000 }, vm, failovers), 'forbidden', 'no failover after it')
    t.equal(asyncLoss({ array: 'array-b', acked_ms: 8_000 }, vm, failovers), 'forbidden', 'acknowledged by the copy that became writable')
    t.equal(asyncLoss({ array: 'array-a', acked_ms: 8_000 }, vm, new Map()), 'forbidden', 'no failover at all')
  },
)
