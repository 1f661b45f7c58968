/**
 * The lease timings hosts and the witness share, derived from the lab's topology (the
 * shortest detection window): how long a quorum lease lasts, how often it is renewed,
 * the clock skew a lease promise allows for, and when a host tries to form a view.
 *
 * Timing rule of thumb (all in ms): a lease is a few heartbeat intervals long and is
 * renewed four times per lease. A view change carries the lease over (acceptor.ts): the
 * coordinator changes the view at once, and a member whose coordinator went silent takes
 * over while its lease still runs, with a renewal interval of it left (`takeover_stagger_ms`
 * less per rank), so no member of the new view is without a lease. A host that loses its
 * lease has `roles_stop_bound_ms` to stop its VMs (the no-quorum grace rides out a short
 * renewal hiccup, vm-agent.ts), and the surviving side waits the lease's end + skew + that
 * bound (`roles_free_at_ms`) before restarting them.
 */
import type { Topology } from '../topology.js'

/** Clocks of lab processes on one machine agree closely; event-loop lag is the real skew. */
export const LAB_CLOCK_SKEW_MS = 100

export interface LeaseTimings {
  tick_ms: number
  lease_ms: number
  renew_interval_ms: number
  clock_skew_ms: number
  /** With no valid lease for this long (plus `election_stagger_ms` × rank), try to form a view. */
  election_timeout_ms: number
  election_stagger_ms: number
  /**
   * A takeover (the coordinator went silent and the lease ran out) starts this much later
   * per rank among the surviving members: long enough for the first one's prepare to
   * arrive, short enough that the new view holds a lease well inside the roles' grace.
   */
  takeover_stagger_ms: number
  /** How long a proposer waits for more promises once it has a quorum. */
  gather_ms: number
  /** A view change not decided in this time is abandoned and retried. */
  phase_timeout_ms: number
  /** How long a host that lost its lease may take to stop its roles. */
  roles_stop_bound_ms: number
}

/**
 * Lease timings scaled from the shortest detection window of the topology (interval ×
 * missed, within a site or across): a tenth of it is the unit (the heartbeat interval of
 * a profile with 10 missed, as the default lab's 250 ms × 10 and WSFC's 1 s × 10). So the
 * leases and the RTO follow how soon a host is declared down, not how often it heartbeats:
 * a profile that beats half as often with half the misses (500 ms × 5) keeps them.
 */
export function leaseTimings(t: Topology): LeaseTimings {
  const window_ms = Math.min(
    t.heartbeat.sameSite.interval_ms * t.heartbeat.sameSite.missed_max,
    t.heartbeat.crossSite.interval_ms * t.heartbeat.crossSite.missed_max,
  )
  const beat_ms = Math.max(1, Math.floor(window_ms / 10))
  const lease_ms = Math.max(1000, 8 * beat_ms)
  return {
    tick_ms: Math.max(20, Math.min(250, Math.floor(beat_ms / 2))),
    lease_ms,
    renew_interval_ms: Math.floor(lease_ms / 4),
    clock_skew_ms: LAB_CLOCK_SKEW_MS,
    election_timeout_ms: Math.floor(lease_ms * 1.5),
    election_stagger_ms: Math.max(100, beat_ms),
    takeover_stagger_ms: Math.max(50, Math.floor(beat_ms / 2)),
    gather_ms: Math.max(100, beat_ms),
    phase_timeout_ms: lease_ms,
    // No view change leaves a gap to ride out any more, so the bound only covers a short
    // no-quorum grace, two checks and event-loop lag (vm-agent.ts noQuorumGraceMs): it is
    // most of what a killed host's VMs wait after its detection (RTO, README).
    roles_stop_bound_ms: Math.floor((3 * lease_ms) / 8),
  }
}
