/**
 * The cluster settings of a host and of the witness, derived from the lab's topology:
 * sites and heartbeat profiles, quorum model and dynamic quorum/witness switches, and
 * the lease timings that follow from the heartbeat profile.
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
import type { Topology } from '../../shared/topology.js'
import type { ArbiterConfig } from '../../witness/arbiter.js'
import type { MembershipConfig } from './membership.js'

/** Clocks of lab processes on one machine agree closely; event-loop lag is the real skew. */
export const LAB_CLOCK_SKEW_MS = 100

export interface LeaseTimings {
  tick_ms: number
  lease_ms: number
  renew_interval_ms: number
  clock_skew_ms: number
  election_timeout_ms: number
  election_stagger_ms: number
  takeover_stagger_ms: number
  gather_ms: number
  phase_timeout_ms: number
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

export function membershipConfig(t: Topology, name: string): MembershipConfig {
  const timings = leaseTimings(t)
  return {
    name,
    sites: Object.fromEntries(t.hosts.map((h) => [h.name, h.site])),
    witness: t.quorum.model === 'node-and-file-share-majority' && t.witness ? t.witness.name : null,
    quorum: { model: t.quorum.model, dynamic_quorum: t.quorum.dynamicQuorum, dynamic_witness: t.quorum.dynamicWitness },
    heartbeat: {
      same_site_interval_ms: t.heartbeat.sameSite.interval_ms,
      same_site_missed_max: t.heartbeat.sameSite.missed_max,
      cross_site_interval_ms: t.heartbeat.crossSite.interval_ms,
      cross_site_missed_max: t.heartbeat.crossSite.missed_max,
    },
    ...timings,
    config_writes_pending_max: 16,
  }
}

export function arbiterConfig(t: Topology, name: string): ArbiterConfig {
  const timings = leaseTimings(t)
  return { name, nodes: t.hosts.map((h) => h.name).sort(), lease_ms: timings.lease_ms, clock_skew_ms: timings.clock_skew_ms }
}
