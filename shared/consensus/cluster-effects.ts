/**
 * What the cluster state machines — a host's Membership and the witness's Arbiter — take
 * in and give out. `step(input, now_ms)` returns effects that the process shell (or the
 * simulation) carries out in order; a `persist` must be durable before any effect after
 * it runs.
 */
import type { EmitEffect, PersistEffect, SendEffect, SetTimerEffect } from '../machine/effect.js'
import type { ClusterMessage } from '../protocol/cluster-messages.js'
import type { ClusterDetailsOf, ClusterEventKind, WitnessEventKind } from '../timeline/cluster-events.js'

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

/** What Membership and the Arbiter put on the timeline: a kind of their families (shared/timeline/cluster-events.ts) with its details. */
export type ClusterEvent = {
  [K in ClusterEventKind | WitnessEventKind]: { kind: K; source: string; details: ClusterDetailsOf<K> }
}[ClusterEventKind | WitnessEventKind]

/** The shared effect vocabulary (shared/machine/effect.ts), nothing more. */
export type Effect<R> = SendEffect<ClusterMessage> | SetTimerEffect<TimerToken> | PersistEffect<R> | EmitEffect<ClusterEvent>
