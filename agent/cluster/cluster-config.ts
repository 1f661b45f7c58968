/**
 * A host's cluster settings, derived from the lab's topology: sites and heartbeat
 * profiles, quorum model and dynamic quorum/witness switches, and the lease timings that
 * follow from the heartbeat profile (shared/consensus/lease-timings.ts, which the witness
 * uses too).
 */
import { leaseTimings } from '../../shared/consensus/lease-timings.js'
import { tickPhaseOf } from '../../shared/periodic-task.js'
import type { Topology } from '../../shared/topology.js'
import type { MembershipConfig } from './membership.js'

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
    tick_phase: tickPhaseOf(name),
  }
}
