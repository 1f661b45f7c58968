/**
 * What a soak's checker concludes from a history (checker.ts), and what the report
 * renderers (report-render.ts: JSON, Markdown, one self-contained HTML page) draw. All
 * times are ms since the epoch on one machine's wall clock; durations are in ms.
 */

/** Percentiles of a set of durations, ms; null when there were none. */
export interface DurationStats {
  count: number
  p50_ms: number
  p99_ms: number
  max_ms: number
}

/** The violation kinds a checker reports: each breaks a promise the lab makes. */
export type ViolationKind =
  /** One VM ran on two hosts at the same time. */
  | 'double-owner'
  /** An array accepted a write carrying an older epoch after it had acknowledged one with a newer epoch. */
  | 'stale-write-accepted'
  /** An acknowledged write is gone where the configuration promises none is lost. */
  | 'write-lost'
  /** A block holds data no write put there. */
  | 'write-invented'
  /** Writes lost under asynchronous replication beyond the promised RPO. */
  | 'rpo-breached'
  /** A VM was not running and answering within the recovery bound once faults stopped. */
  | 'not-recovered'
  /** The cluster had more than one membership (or none) once faults stopped. */
  | 'split-membership'
  /** A process exited that the schedule did not kill or stop. */
  | 'crash'
  /** A process's memory or open files grew beyond their bound. */
  | 'resource-leak'
  /** Hyper-V Replica: acknowledged writes reached the replica later than the RPO with nothing on the path to excuse it, or replication never caught up at the end. */
  | 'replica-rpo-breached'
  /** Hyper-V Replica: once caught up, a replica block lacks what the primary's disk holds. */
  | 'replica-write-lost'
  /** Hyper-V Replica: a replica block holds data no write put there. */
  | 'replica-write-invented'

/** One timeline event, as shown next to a violation. */
export interface EventExcerpt {
  at_ms: number
  source: string
  kind: string
  /** The event's details as one JSON text, cut at 300 characters. */
  details: string
}

export interface Violation {
  kind: ViolationKind
  /** One line a user reads first. */
  summary: string
  at_ms: number
  vm: string | null
  process: string | null
  /** The timeline events around it (a few seconds either side). */
  events_around: EventExcerpt[]
}

/** What followed one injected fault. */
export interface FaultOutcome {
  id: number
  /** A fault name of the schedule: kill, pause, partition, wan, clock, array-kill, witness-kill, disk. */
  kind: string
  /** What it hit, as a user reads it: `host-a1`, `site-a | site-b`, `array-a fsync-delay 200ms`. */
  target: string
  start_ms: number
  /** When the schedule healed it; null if the run ended first. */
  heal_ms: number | null
  /** From its start to the cluster's first `node.lost` after it; null when none followed. */
  detection_ms: number | null
  /** Per VM the fault interrupted: the client's longest gap between replies that overlaps the fault and its recovery. */
  rto_ms_by_vm: { vm: string; rto_ms: number }[]
  /** `role.failed-over` events that followed before the next fault. */
  failovers: number
  /**
   * Acknowledged writes lost that go to this fault (loss-attribution.ts: the first fault not
   * yet healed when the write was acknowledged), and their bytes: violations …
   */
  writes_lost: number
  bytes_lost: number
  /** … and losses the configuration allows (within an RPO, a group out of sync). */
  writes_lost_allowed: number
  bytes_lost_allowed: number
}

/** Acknowledged writes of a replicated VM that reached the replica later than the RPO, all carried by one delivery. */
export interface LateWrites {
  from_ms: number
  /** When the last of them was acknowledged. */
  to_ms: number
  writes: number
  /** The longest wait from an acknowledgement to the replica having it. */
  lag_max_ms: number
  /** When the delivery that carried them reached the replica; null: none did. */
  reached_ms: number | null
  /** What on the replication path held them back (allowed), or null: nothing did (a violation). */
  cause: string | null
}

/** How a VM's Hyper-V Replica kept its promises (replica-check.ts). */
export interface ReplicationOutcome {
  vm: string
  server: string
  frequency_ms: number
  /** A write reaches the replica within this: one cycle to wait for its log to close, one for the transfer (2 × frequency). */
  rpo_ms: number
  cycles_applied: number
  resyncs: number
  /** Acknowledged writes since the initial replication, each judged against the RPO. */
  writes_judged: number
  /** From each judged write's acknowledgement to the replica having it. */
  lag: DurationStats | null
  late: LateWrites[]
  /** When replication had caught up once the writers stopped; null: it never did. */
  caught_up_ms: number | null
  /** Blocks of the replica compared with the primary's disk at the end, and how many differed (a violation) … */
  blocks_compared: number
  blocks_differing: number
  /** … or differed only by a write in doubt (it failed on the primary's array yet reached the replica log; allowed). */
  blocks_in_doubt: number
}

export interface MigrationOutcome {
  vm: string
  from: string
  to: string
  mode: string
  start_ms: number
  end_ms: number
  ok: boolean
  /** The blackout the source measured (migration.completed), null if it did not complete. */
  reported_blackout_ms: number | null
  /** The client's longest gap between replies during the migration; null without replies around it. */
  client_gap_ms: number | null
}

export interface OperatorActionOutcome {
  /** live-migrate, quick-move, drain, rcopy-switchover. */
  kind: string
  target: string
  start_ms: number
  end_ms: number
  ok: boolean
  /** The CLI's stable error code when it failed. */
  error_code: string | null
  /** What the CLI said when it failed, for the reader. */
  said: string | null
}

export interface ProcessResources {
  name: string
  /** The largest resident set seen, bytes. */
  rss_max_bytes: number
  /** The most open file descriptors seen. */
  fds_max: number
  /** Times it exited without the schedule asking. */
  crashes: number
  /** Times the schedule killed it. */
  kills: number
}

/** One VM's client as the plot draws it. */
export interface VmSeries {
  vm: string
  /** [reply time, round trip ms], thinned to at most a few thousand points. */
  rtt: [number, number][]
  /** Gaps between replies longer than the gap threshold. */
  gaps: { from_ms: number; to_ms: number }[]
  /** Where it ran: [from_ms, to_ms, host]. */
  runs: [number, number, string][]
}

export interface SoakSummary {
  faults: number
  operator_actions: number
  client_requests: number
  client_replies: number
  disk_writes: number
  disk_writes_acked: number
  acked_writes_lost: number
  acked_bytes_lost: number
  /**
   * Acknowledged writes lost where the configuration allows it (no violation): within the
   * RPO of asynchronous replication, or taken by a synchronous group while its link was down.
   */
  writes_lost_allowed: number
  violations: number
  detection: DurationStats | null
  rto: DurationStats | null
  /** Reported by the source hosts. */
  blackout: DurationStats | null
  /** As the clients saw it. */
  client_blackout: DurationStats | null
}

export interface SoakReport {
  format: 1
  verdict: 'pass' | 'fail'
  seed: number
  /** The command that reproduces the run. */
  reproduce: string
  topology: string
  faults_enabled: string[]
  vms: string[]
  started_ms: number
  ended_ms: number
  /** When the schedule stopped injecting faults and healed everything. */
  faults_stopped_ms: number
  /** The recovery bound every VM had to meet after `faults_stopped_ms`. */
  recovery_bound_ms: number
  summary: SoakSummary
  violations: Violation[]
  faults: FaultOutcome[]
  migrations: MigrationOutcome[]
  operator_actions: OperatorActionOutcome[]
  /** One per VM the soak replicated with Hyper-V Replica (none without a standalone host). */
  replication: ReplicationOutcome[]
  processes: ProcessResources[]
  series: VmSeries[]
}
