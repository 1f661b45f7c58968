/**
 * The topology's transport limits (`limits` in shared/topology.ts) as the transport's
 * options: what every connection bounds, and what a listener bounds before a peer has
 * proved the lab's secret.
 */
import type { Limits } from '../topology.js'
import type { TransportLimits } from './peer-connection.js'
import type { PeerServerOptions } from './peer-server.js'

/** `probe_offset_ms`: where in each interval the process's liveness probe runs (its tick offset, periodic-task.ts). */
export function connectionLimitsOf(l: Limits, probe_offset_ms = 0): Partial<TransportLimits> {
  // The same bound both ways: a peer that keeps to its own sending bound never meets the receiving one.
  return {
    probe_offset_ms,
    requests_in_flight_max: l.requests_in_flight_max,
    inbound_requests_in_flight_max: l.requests_in_flight_max,
    preauth_bytes_max: l.preauth_bytes_max,
  }
}

export function listenerLimitsOf(
  l: Limits,
  probe_offset_ms = 0,
): Pick<PeerServerOptions, 'connections_max' | 'unauthenticated_connections_max' | 'http' | 'limits'> {
  return {
    connections_max: l.peer_connections_max,
    unauthenticated_connections_max: l.unauthenticated_connections_max,
    http: l,
    limits: connectionLimitsOf(l, probe_offset_ms),
  }
}
