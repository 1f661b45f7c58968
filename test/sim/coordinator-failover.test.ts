/**
 * Membership timing when a host dies, on the simulated network (seeded; a failing seed is
 * printed with the command that reruns it alone, HVLAB_SEED=<seed>; see seed.ts):
 *
 * - kill the coordinator: the survivors take over as soon as the old lease (+ skew) has
 *   run out, so a new view holds the lease within TAKEOVER_BOUND_MS of the old lease's
 *   expiry, and no survivor is without a lease longer than the roles' grace would allow;
 * - kill an ordinary host: the coordinator's view change leaves the others without a
 *   lease for about one Paxos round;
 * - restart every host at once: the restored coordinator renews its old view (documented
 *   in Membership.coordinate), and a host with an old database still cannot form one.
 *
 * The roles' grace in the real lab is noQuorumGraceMs(roles_stop_bound_ms = 2 × lease_ms)
 * = 1.75 × lease_ms (2000 → 3500 ms), roomy for loaded machines; the simulated network has
 * no event-loop stalls, so the sim holds takeover to the much tighter 0.75 × lease_ms.
 */
import t from 'tap'
import { membershipConfig } from '../../agent/cluster/cluster-config.js'
import { leaseTimings } from '../../shared/consensus/lease-timings.js'
import { loadTopology } from '../../shared/topology.js'
import { checkSafety, convergenceProblem, hostConfig, makeLab, DEFAULT_SITES, type InvariantState } from './cluster-fixture.js'
import type { SimNetwork } from './network.js'
import { forEachSeed, seeds } from './seed.js'

const C = hostConfig(
  'host-a1',
  DEFAULT_SITES,
  { model: 'node-and-file-share-majority', dynamic_quorum: true, dynamic_witness: true },
  'witness-c',
)
/** A bound much tighter than the lab's no-quorum grace (1500 ms for a 2000 ms lease, vs 3500). */
const GRACE_MS = 0.75 * C.lease_ms
/**
 * Old lease end → new view's lease at every survivor: skew, up to a tick to notice, one
 * takeover stagger (the first candidate may be dead or slow), prepare + accept + lease
 * round trips (≤ 15 ms each way in these scenarios), and one tick of slack.
 */
const TAKEOVER_BOUND_MS = C.clock_skew_ms + 2 * C.tick_ms + C.takeover_stagger_ms + 6 * 15
const SEEDS = seeds(import.meta.url, { base: 1, count: 200 })
/** The lab's own (slower) timings: fewer seeds. */
const LAB_TIMING_SEEDS = seeds(import.meta.url, { base: 1, count: 40 })

interface Gaps {
  /** Longest time any survivor held no lease, from the end of its lease to the next one. */
  longest_gap_ms: number
  /** When every survivor held a lease of a view newer than `epoch_before`, or null. */
  all_leased_new_at_ms: number | null
  problem: string | null
}

/** Runs `duration_ms`, checking safety and measuring lease gaps of `survivors` after `from_ms`. */
function watchGaps(net: SimNetwork, survivors: string[], epoch_before: number, duration_ms: number): Gaps {
  const s: InvariantState = { witness_epoch: 0, witness_db_epoch: 0 }
  const lost_at = new Map<string, number>()
  const g: Gaps = { longest_gap_ms: 0, all_leased_new_at_ms: null, problem: null }
  net.runFor(duration_ms, (n) => {
    g.problem ??= checkSafety(n, s)
    let all_new = true
    for (const name of survivors) {
      const h = n.hosts.get(name)
      if (!h) continue
      const holds = h.holdsLease(n.now_ms)
      if (!holds && !lost_at.has(name)) lost_at.set(name, Math.max(h.leaseUntil(), n.now_ms - 1))
      if (holds && lost_at.has(name)) {
        g.longest_gap_ms = Math.max(g.longest_gap_ms, n.now_ms - lost_at.get(name)!)
        lost_at.delete(name)
      }
      if (!holds || h.view().epoch <= epoch_before) all_new = false
    }
    if (all_new && g.all_leased_new_at_ms === null) g.all_leased_new_at_ms = n.now_ms
  })
  for (const [name, at] of lost_at) g.problem ??= `${name} has held no lease since ${at.toFixed(0)} ms`
  return g
}

function coordinatorOf(net: SimNetwork): string {
  return net.hosts.get('host-a2')!.view().coordinator
}

t.test(`kill the coordinator: a new view holds the lease within ${TAKEOVER_BOUND_MS} ms of the old lease's expiry`, async (t) => {
  let worst_after_expiry_ms = 0
  let worst_gap_ms = 0
  const { runs, failures } = await forEachSeed(t, SEEDS, (seed) => {
    const net = makeLab({ seed })
    net.runFor(3000 + Math.floor(net.rng() * 1000))
    const formed = convergenceProblem(net)
    if (formed !== null) return `no cluster before the kill: ${formed}`
    const coordinator = coordinatorOf(net)
    const survivors = [...net.hosts.keys()].filter((h) => h !== coordinator)
    const epoch_before = net.hosts.get(survivors[0]!)!.view().epoch
    net.kill(coordinator)
    // No grant can come any more: the old lease ends at the latest one a survivor holds.
    const old_expiry_ms = Math.max(...survivors.map((h) => net.hosts.get(h)!.leaseUntil()))
    const g = watchGaps(net, survivors, epoch_before, 3000)
    const after_ms = g.all_leased_new_at_ms === null ? Infinity : g.all_leased_new_at_ms - old_expiry_ms
    worst_after_expiry_ms = Math.max(worst_after_expiry_ms, after_ms)
    worst_gap_ms = Math.max(worst_gap_ms, g.longest_gap_ms)
    const problem =
      g.problem ??
      (after_ms > TAKEOVER_BOUND_MS
        ? `the new view held the lease ${after_ms.toFixed(0)} ms after the old lease expired (bound ${TAKEOVER_BOUND_MS} ms)`
        : null) ??
      (g.longest_gap_ms >= GRACE_MS
        ? `a survivor was without a lease for ${g.longest_gap_ms.toFixed(0)} ms (grace ${GRACE_MS} ms)`
        : null) ??
      (net.hosts.get(survivors[0]!)!.view().members.includes(coordinator) ? 'the dead coordinator is still a member' : null)
    return problem
  })
  t.equal(
    failures,
    0,
    `${runs} seeds; worst: new lease ${worst_after_expiry_ms.toFixed(0)} ms after the old one expired, longest gap ${worst_gap_ms.toFixed(0)} ms`,
  )
  t.ok(worst_after_expiry_ms < GRACE_MS, "inside the roles' grace")
})

t.test('kill an ordinary host: the others are without a lease only for about one Paxos round', async (t) => {
  let worst_gap_ms = 0
  const { runs, failures } = await forEachSeed(t, SEEDS, (seed) => {
    const net = makeLab({ seed })
    net.runFor(3000 + Math.floor(net.rng() * 1000))
    const coordinator = coordinatorOf(net)
    const others = [...net.hosts.keys()].filter((h) => h !== coordinator)
    const victim = others[Math.floor(net.rng() * others.length)]!
    const survivors = [...net.hosts.keys()].filter((h) => h !== victim)
    const epoch_before = net.hosts.get(coordinator)!.view().epoch
    net.kill(victim)
    const g = watchGaps(net, survivors, epoch_before, 4000)
    worst_gap_ms = Math.max(worst_gap_ms, g.longest_gap_ms)
    const problem =
      g.problem ??
      (g.all_leased_new_at_ms === null ? `no new view without ${victim}` : null) ??
      (g.longest_gap_ms > TAKEOVER_BOUND_MS
        ? `a survivor was without a lease for ${g.longest_gap_ms.toFixed(0)} ms (bound ${TAKEOVER_BOUND_MS} ms)`
        : null) ??
      (net.hosts.get(coordinator)!.view().coordinator !== coordinator ? 'the coordinator changed although it lives' : null)
    return problem
  })
  t.equal(failures, 0, `${runs} seeds; longest gap ${worst_gap_ms.toFixed(0)} ms`)
})

t.test('restart every host at once: the restored coordinator renews its old view', async (t) => {
  const net = makeLab({ seed: 11 })
  net.runFor(4000)
  t.equal(convergenceProblem(net), null)
  const before = net.hosts.get('host-a1')!.view()
  for (const h of [...net.hosts.keys()]) net.kill(h)
  net.runFor(1000)
  for (const h of [...net.hosts.keys()]) net.restart(h)
  const g = watchGaps(net, [...net.hosts.keys()], -1, 3000)
  t.equal(g.problem, null)
  t.equal(convergenceProblem(net), null, 'one cluster again')
  const after = net.hosts.get('host-a1')!.view()
  t.equal(after.epoch, before.epoch, 'no new epoch: every member heard, the old view is renewed')
  t.equal(after.coordinator, before.coordinator)
})

t.test("kill the coordinator with the default lab's timings: one takeover view, the dead host never asked back", async (t) => {
  // The lab's failure thresholds are longer than its lease (same site 2.5 s, across sites
  // 5 s, lease 2 s): the takeover view leaves the silent coordinator out while the new
  // coordinator's detector still counts it up. Asking it back in would change the view
  // again, and each change costs every survivor a lease gap.
  const topology = loadTopology()
  const timings = leaseTimings(topology)
  const { heartbeat } = membershipConfig(topology, topology.hosts[0]!.name)
  const down_after_ms = Math.max(
    heartbeat.same_site_interval_ms * heartbeat.same_site_missed_max,
    heartbeat.cross_site_interval_ms * heartbeat.cross_site_missed_max,
  )
  t.ok(
    down_after_ms > timings.lease_ms,
    `the scenario holds: a dead host is declared down (${down_after_ms} ms) after its lease ends (${timings.lease_ms} ms)`,
  )
  let worst_gap_ms = 0
  const { runs, failures } = await forEachSeed(t, LAB_TIMING_SEEDS, (seed) => {
    const net = makeLab({ seed, config: { ...timings, heartbeat } })
    net.runFor(4 * timings.election_timeout_ms + Math.floor(net.rng() * 1000))
    const formed = convergenceProblem(net)
    const coordinator = coordinatorOf(net)
    const survivors = [...net.hosts.keys()].filter((h) => h !== coordinator)
    const epoch_before = net.hosts.get(survivors[0]!)!.view().epoch
    const asked_back: number[] = []
    net.onEvent = (e) => {
      if (
        e.kind === 'cluster.view-changed' &&
        (e.details.members as string[]).includes(coordinator) &&
        (e.details.epoch as number) > epoch_before
      )
        asked_back.push(e.details.epoch as number)
    }
    net.kill(coordinator)
    const g = watchGaps(net, survivors, epoch_before, down_after_ms + 2 * timings.lease_ms)
    worst_gap_ms = Math.max(worst_gap_ms, g.longest_gap_ms)
    const epochs = [...new Set(survivors.map((h) => net.hosts.get(h)!.view().epoch))]
    const problem =
      (formed === null ? null : `no cluster before the kill: ${formed}`) ??
      g.problem ??
      (asked_back.length > 0 ? `the dead coordinator ${coordinator} was put back in view ${asked_back[0]}` : null) ??
      (epochs.length !== 1 || epochs[0]! !== epoch_before + 1
        ? `the survivors ended at epochs ${epochs.join(', ')}, not one takeover view (${epoch_before + 1})`
        : null) ??
      (g.longest_gap_ms >= 1.75 * timings.lease_ms
        ? `a survivor was without a lease for ${g.longest_gap_ms.toFixed(0)} ms, past the roles' grace`
        : null)
    return problem
  })
  t.equal(failures, 0, `${runs} seeds; longest gap ${worst_gap_ms.toFixed(0)} ms`)
})

t.test(
  'a member paused past its lease still knows, once awake, when that lease ended (the grace of its VMs counts from there)',
  async (t) => {
    const { runs, failures } = await forEachSeed(t, seeds(import.meta.url, { base: 1, count: 40 }), (seed) => {
      const net = makeLab({ seed })
      net.runFor(3000 + Math.floor(net.rng() * 1000))
      const formed = convergenceProblem(net)
      if (formed !== null) return `no cluster before the pause: ${formed}`
      const coordinator = coordinatorOf(net)
      const member = [...net.hosts.keys()].find((h) => h !== coordinator)!
      const host = net.hosts.get(member)!
      const until_ms = host.leaseUntil()
      const wake_ms = net.now_ms + 4 * C.lease_ms
      net.pause(member, 4 * C.lease_ms)
      net.runFor(4 * C.lease_ms + C.tick_ms) // it wakes, and its first tick finds the lease gone
      if (host.holdsLease(net.now_ms)) return null // renewed already: nothing to remember (rare)
      const ended_ms = host.leaseUntil()
      return ended_ms >= until_ms && ended_ms < wake_ms
        ? null
        : `awake without a lease, it says its lease ended at ${ended_ms} (held until ${until_ms} before the pause, woke at ${wake_ms})`
    })
    t.equal(failures, 0, `${runs} seeds`)
  },
)
