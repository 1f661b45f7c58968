/**
 * The membership answers when the hosts outside its current view have stopped their VMs
 * (`rolesFreeAtMs`) as a query, next to `view()`: the role service reads both at once,
 * because in a real host the `cluster.view-changed` event that also carries it waits for
 * the record's fsync while the new view is already in place (cluster-driver.ts). On the
 * simulated network (events at once): each view's event and the query agree, a removed
 * host's roles are free only after its lease and a stop bound, and a restarted host counts
 * from its restart.
 */
import t from 'tap'
import type { ClusterEvent } from '../../shared/consensus/cluster-effects.js'
import { makeLab } from '../sim/cluster-fixture.js'

t.test('rolesFreeAtMs is the roles_free_at_ms of the current view, a removed host freed after its lease', async (t) => {
  const net = makeLab({ seed: 41 })
  const seen: string[] = []
  const views: Extract<ClusterEvent, { kind: 'cluster.view-changed' }>[] = []
  net.onEvent = (e) => {
    if (e.kind !== 'cluster.view-changed') return
    views.push(e)
    const m = net.hosts.get(e.source)
    if (m && m.rolesFreeAtMs() !== e.details.roles_free_at_ms)
      seen.push(`${e.source} epoch ${String(e.details.epoch)}: ${m.rolesFreeAtMs()} ≠ ${String(e.details.roles_free_at_ms)}`)
  }
  net.runFor(5000)
  net.kill('host-b2')
  net.runFor(8000)
  t.same(seen, [], 'the query and the event agree for every view on every host')
  const removal = views.find((e) => (e.details.removed as string[]).includes('host-b2'))
  t.ok(removal, 'a view removed host-b2')
  const a1 = net.hosts.get('host-a1')!
  const { clock_skew_ms, roles_stop_bound_ms } = a1.settings()
  const d = removal!.details
  t.ok(
    (d.roles_free_at_ms as number) >= (d.removed_lease_end_ms as number) + clock_skew_ms + roles_stop_bound_ms,
    'free only once its lease has ended (with the skew) and it had the stop bound to stop its vms',
  )
  net.kill('host-a1')
  net.restart('host-a1')
  const restarted_ms = net.localNow('host-a1')
  t.ok(net.hosts.get('host-a1')!.rolesFreeAtMs() >= restarted_ms + roles_stop_bound_ms, 'a restarted host counts from its restart')
})
