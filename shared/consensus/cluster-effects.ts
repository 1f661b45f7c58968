/**
 * What the cluster state machines — a host's Membership and the witness's Arbiter — take
 * in and give out. `step(input, now_ms)` returns effects that the process shell (or the
 * simulation) carries out in order; a `persist` must be durable before any effect after
 * it runs.
 */
import type { ClusterMessage } from '../protocol/cluster-messages.js'

export type ClusterCommand =
  /** Operator: start the cluster on this node without quorum; its database wins. */
  | { kind: 'force-quorum' }
  /** Operator: pause (drain) or resume this node; recorded in the cluster database. */
  | { kind: 'pause' }
  | { kind: 'resume' }
  /** Operator: this node leaves the cluster (stops voting and heartbeating). */
  | { kind: 'leave' }
  /** Write (or, with null, delete) one configuration entry through the quorum. */
  | { kind: 'set-config'; key: string; value: string | null }

export type TimerToken = 'tick'

export type ClusterInput =
  { kind: 'message'; message: ClusterMessage } | { kind: 'timer'; token: TimerToken } | { kind: 'command'; command: ClusterCommand }

export interface ClusterEvent {
  kind: string
  source: string
  details: Record<string, unknown>
}

export type Effect<R> =
  | { kind: 'send'; to: string; message: ClusterMessage }
  | { kind: 'set-timer'; at_ms: number; token: TimerToken }
  | { kind: 'persist'; record: R }
  | { kind: 'emit'; event: ClusterEvent }
