/** The witness's Arbiter settings, derived from the lab's topology (its lease timings). */
import { leaseTimings } from '../shared/consensus/lease-timings.js'
import type { Topology } from '../shared/topology.js'
import type { ArbiterConfig } from './arbiter.js'

export function arbiterConfig(t: Topology, name: string): ArbiterConfig {
  const timings = leaseTimings(t)
  return {
    name,
    nodes: t.hosts.map((h) => h.name).sort(),
    lease_ms: timings.lease_ms,
    clock_skew_ms: timings.clock_skew_ms,
    renew_interval_ms: timings.renew_interval_ms,
  }
}
