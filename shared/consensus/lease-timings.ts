/**
 * The lease timings hosts and the witness share, derived from the lab's topology (the
 * shortest heartbeat interval): how long a quorum lease lasts, how often it is renewed,
 * the clock skew a lease promise allows for, and when a host tries to form a view.
 *
 * Timing rule of thumb (all in ms): a lease is a few heartbeat intervals long and is
 * renewed four times per lease; a host without a lease waits longer than a lease before
 * it tries to form a view, except when its coordinator went silent: then it takes over
 * right after the old lease (+ skew), `takeover_stagger_ms` later per rank, so the gap
 * without a lease is about skew + tick + one Paxos round + one lease round — well inside
 * the roles' no-quorum grace (default lab: ~0.5 s against 3.5 s). A host that loses its
 * lease has `roles_stop_bound_ms` to stop its VMs, and the surviving side waits that out
 * (`roles_free_at_ms`) before restarting them.
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

/** Lease timings scaled from the shortest heartbeat interval of the topology. */
export function leaseTimings(t: Topology): LeaseTimings {
  const beat_ms = Math.min(t.heartbeat.sameSite.interval_ms, t.heartbeat.crossSite.interval_ms)
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
    // A host stops its VMs only after a no-quorum grace (vm-agent.ts) that outlasts the
    // lease gap of a view change even on a loaded machine (event loops stalled for a
    // second are common when 2 cores run 14 lab processes), so the bound is two leases.
    roles_stop_bound_ms: 2 * lease_ms,
  }
}
