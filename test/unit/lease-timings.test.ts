/**
 * The lease timings follow the topology's shortest detection window (interval × missed),
 * not its heartbeat interval: a profile that beats half as often with half the misses
 * keeps the leases, the takeover and so the RTO (shared/consensus/lease-timings.ts).
 */
import t from 'tap'
import { leaseTimings } from '../../shared/consensus/lease-timings.js'
import { loadTopology, type Topology } from '../../shared/topology.js'

const defaultLab = loadTopology('topologies/two-site.json')
const withHeartbeat = (sameSite: [number, number], crossSite: [number, number]): Topology => ({
  ...defaultLab,
  heartbeat: {
    sameSite: { interval_ms: sameSite[0], missed_max: sameSite[1] },
    crossSite: { interval_ms: crossSite[0], missed_max: crossSite[1] },
  },
})

t.test('the default lab: 250 ms × 10 within a site, a 2 s lease renewed every 500 ms', async (t) => {
  const l = leaseTimings(defaultLab)
  t.match(l, { lease_ms: 2000, renew_interval_ms: 500, tick_ms: 125, election_timeout_ms: 3000, takeover_stagger_ms: 125 })
})

t.test('scale-16 beats every 500 ms with 5 and 10 missed: the same windows, the same timings', async (t) => {
  const scale = loadTopology('topologies/scale-16.json')
  t.same(scale.heartbeat.sameSite, { interval_ms: 500, missed_max: 5 })
  t.same(leaseTimings(scale), leaseTimings(defaultLab))
  t.same(leaseTimings(withHeartbeat([125, 20], [125, 40])), leaseTimings(defaultLab), 'twice as often with twice the misses: the same')
})

t.test("WSFC 2016's 1 s × 10 / 20: an 8 s lease; the shorter window decides", async (t) => {
  t.match(leaseTimings(withHeartbeat([1000, 10], [1000, 20])), { lease_ms: 8000, renew_interval_ms: 2000, tick_ms: 250 })
  // A cross-site window shorter than the same-site one (an odd profile) is the one that counts.
  t.match(leaseTimings(withHeartbeat([1000, 10], [250, 10])), { lease_ms: 2000 })
})
