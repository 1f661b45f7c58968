/**
 * Messages of the failover cluster: heartbeats, view changes (one Paxos decision per
 * epoch: prepare / promise / accept / accepted / commit), quorum leases that also carry
 * the cluster database, catch-up and operator requests. Hosts and the file-share
 * witness speak them; the state machines in agent/cluster/ and witness/arbiter.ts use
 * the inferred types below, so the simulation and the real processes share one protocol.
 */
import { guestLoadSchema, type GuestLoadSetting } from './guest-load.js'
import { replicaBrokerSettingsSchema, replicationSettingSchema } from './replica-messages.js'
import { z } from 'zod'
import { defineMessage, field } from './define.js'
import {
  GUEST_HANG_MS_MAX,
  ROLE_FAILOVER_PERIOD_H_MAX,
  ROLE_FAILOVER_PERIOD_H_MIN,
  ROLE_FAILOVER_THRESHOLD_MAX,
  ROLE_PRIORITIES,
  VM_DISK_IOPS_MAX,
} from './cluster-limits.js'
import { RC_PERIOD_MS_MAX, VM_DISKS_MAX } from './storage-limits.js'

export { GUEST_HANG_MS_MAX, ROLE_PRIORITIES, VM_DISK_IOPS_MAX }

/** Limits of the cluster database and of a view (a peer cannot make us allocate more). */
export const CLUSTER_NODES_MAX = 64
export const CONFIG_ENTRIES_MAX = 256
export const CONFIG_KEY_CHARS_MAX = 128
export const CONFIG_VALUE_CHARS_MAX = 1024

export const ballotSchema = z.strictObject({ n: field.uint(), node: field.name() })
export type Ballot = z.infer<typeof ballotSchema>

/** One agreed membership: who is in the cluster at this epoch and who votes. */
export const clusterViewSchema = z.strictObject({
  epoch: field.uint(),
  members: field.list(field.name(), CLUSTER_NODES_MAX),
  voters: field.list(field.name(), CLUSTER_NODES_MAX),
  witness_vote: z.boolean(),
  coordinator: field.name(),
  forced: z.boolean(),
  /**
   * Every quorum lease granted in an earlier view ends by then (hosts' clocks, within the
   * clock skew): a removed host's roles are free, and a new coordinator may act, after it
   * (shared/consensus/acceptor.ts). 0 for the genesis view and a forced one.
   */
  leases_end_ms: field.time_ms(),
  /** The hosts this view left out hold no lease after then (at most `leases_end_ms`; membership.ts). */
  removed_lease_end_ms: field.time_ms(),
})
export type ClusterView = z.infer<typeof clusterViewSchema>

/** The replicated configuration store; `db_epoch` grows on every write and view change. */
export const clusterDatabaseSchema = z.strictObject({
  db_epoch: field.uint(),
  config: z
    .record(z.string().min(1).max(CONFIG_KEY_CHARS_MAX), z.string().max(CONFIG_VALUE_CHARS_MAX))
    .refine((c) => Object.keys(c).length <= CONFIG_ENTRIES_MAX, `at most ${CONFIG_ENTRIES_MAX} config entries`),
})
export type ClusterDatabase = z.infer<typeof clusterDatabaseSchema>

/** The value decided for one epoch: the next view and the database it starts with. */
export const viewProposalSchema = z.strictObject({ view: clusterViewSchema, db: clusterDatabaseSchema })
export type ViewProposal = z.infer<typeof viewProposalSchema>

export const acceptedSchema = z.strictObject({ ballot: ballotSchema, value: viewProposalSchema })
export type AcceptedValue = z.infer<typeof acceptedSchema>

/** Host → every other host, at the same-site or cross-site interval. */
export const clusterHeartbeat = defineMessage('cluster-heartbeat', () => ({
  from: field.name(),
  epoch: field.uint(),
  db_epoch: field.uint(),
  sent_ms: field.time_ms(),
}))

/** Proposer → hosts and witness: phase 1 for the view of epoch `slot`. */
export const clusterPrepare = defineMessage('cluster-prepare', () => ({
  from: field.name(),
  slot: field.uint(),
  ballot: ballotSchema,
}))

/** Acceptor → proposer: promised; what it accepted before, and its newest database. */
export const clusterPromise = defineMessage('cluster-promise', () => ({
  from: field.name(),
  slot: field.uint(),
  ballot: ballotSchema,
  accepted: acceptedSchema.nullable(),
  db_epoch: field.uint(),
  /** The database contents; null from the witness, which keeps only the epoch. */
  db: clusterDatabaseSchema.nullable(),
  /** Every lease this voter confirmed ends by then. */
  leases_until_ms: field.time_ms(),
}))

export const REFUSE_REASONS = ['decided', 'behind', 'promised', 'lease', 'stale'] as const
export const refuseReasonSchema = z.enum(REFUSE_REASONS)
export type RefuseReason = z.infer<typeof refuseReasonSchema>

/** Acceptor → proposer: not this ballot, and why. */
export const clusterRefuse = defineMessage('cluster-refuse', () => ({
  from: field.name(),
  slot: field.uint(),
  ballot: ballotSchema,
  reason: refuseReasonSchema,
  committed_epoch: field.uint(),
  db_epoch: field.uint(),
  promised: ballotSchema.nullable(),
  /** For 'lease': when the acceptor stops counting the current view's coordinator as alive. */
  retry_at_ms: field.time_ms().nullable(),
}))

/** Proposer → acceptors: phase 2. */
export const clusterAccept = defineMessage('cluster-accept', () => ({
  from: field.name(),
  slot: field.uint(),
  ballot: ballotSchema,
  value: viewProposalSchema,
}))

export const clusterAccepted = defineMessage('cluster-accepted', () => ({
  from: field.name(),
  slot: field.uint(),
  ballot: ballotSchema,
}))

/** A decided view and the current database (after a decision, and to catch a peer up). */
export const clusterCommit = defineMessage('cluster-commit', () => ({
  from: field.name(),
  view: clusterViewSchema,
  db: clusterDatabaseSchema,
}))

/** A host that saw a newer epoch → that peer: send me your view and database. */
export const clusterCatchUp = defineMessage('cluster-catch-up', () => ({
  from: field.name(),
  epoch: field.uint(),
}))

/**
 * Coordinator → members and witness: confirm quorum for this view at database `db_epoch`.
 * `db` carries that database, or is null where the receiver already holds it (it voted on
 * a request that carried it, membership.ts; the witness keeps only the epoch): a member
 * that does not asks to catch up. Sending it to every host twice a second cost each an
 * unpack and a validation of the whole database per round, idle or not (issue 12).
 */
export const clusterLeaseRequest = defineMessage('cluster-lease-request', () => ({
  from: field.name(),
  epoch: field.uint(),
  round: field.uint(),
  started_ms: field.time_ms(),
  db_epoch: field.uint(),
  db: clusterDatabaseSchema.nullable(),
}))

export const clusterLeaseAck = defineMessage('cluster-lease-ack', () => ({
  from: field.name(),
  epoch: field.uint(),
  round: field.uint(),
  /**
   * False: the member is alive and in the view but has promised a successor, so its ack is
   * no vote for the lease (acceptor.ts); it still earns the member its grant.
   */
  vote: z.boolean(),
  /**
   * The database epoch this voter has on disk, sent after the write (what a configuration
   * write's commit counts); null on the ack sent at once, before any write, which is a
   * vote for the lease alone.
   */
  db_epoch: field.uint().nullable(),
}))

/** Coordinator → members: a quorum confirmed the view; run roles until `until_ms`. */
export const clusterLeaseGrant = defineMessage('cluster-lease-grant', () => ({
  from: field.name(),
  epoch: field.uint(),
  until_ms: field.time_ms(),
}))

/** Host → coordinator: write (or, with null, delete) one configuration entry. */
export const clusterConfigWrite = defineMessage('cluster-config-write', () => ({
  from: field.name(),
  key: z.string().min(1).max(CONFIG_KEY_CHARS_MAX),
  value: z.string().max(CONFIG_VALUE_CHARS_MAX).nullable(),
}))

/** Host → every host: I am leaving the cluster (operator command); stop counting on me. */
export const clusterLeave = defineMessage('cluster-leave', () => ({ from: field.name() }))

// ---- operator requests (CLI → controller → a host) and their replies -----------------

export const NODE_STATES = ['Up', 'Down', 'Paused', 'Joining'] as const
/** Get-ClusterNode's DrainStatus. */
export const DRAIN_STATUSES = ['NotInitiated', 'InProgress', 'Completed', 'Failed'] as const
export const nodeStateSchema = z.enum(NODE_STATES)

/** What one host knows of the cluster right now, for `hvlab status` and `hvlab cluster status`. */
export const clusterStatusSchema = z.strictObject({
  node: field.name(),
  model: z.enum(['node-majority', 'node-and-file-share-majority']),
  dynamic_quorum: z.boolean(),
  dynamic_witness: z.boolean(),
  epoch: field.uint(),
  db_epoch: field.uint(),
  coordinator: field.name(),
  is_coordinator: z.boolean(),
  forced: z.boolean(),
  holds_lease: z.boolean(),
  lease_until_ms: field.time_ms().nullable(),
  members: field.list(field.name(), CLUSTER_NODES_MAX),
  voters: field.list(field.name(), CLUSTER_NODES_MAX),
  witness: z.strictObject({ name: field.name(), votes: z.boolean(), reachable: z.boolean() }).nullable(),
  votes_total: field.uint(),
  votes_present: field.uint(),
  votes_needed: field.uint(),
  nodes: field.list(
    z.strictObject({
      name: field.name(),
      site: field.name(),
      state: nodeStateSchema,
      voter: z.boolean(),
      /** NodeWeight: the vote it is configured with (0 or 1). */
      node_weight: z.number().int().min(0).max(1).optional(),
      /** DynamicWeight: whether its vote counts now (dynamic quorum may take it away). */
      dynamic_weight: z.number().int().min(0).max(1).optional(),
    }),
    CLUSTER_NODES_MAX,
  ),
})
export type ClusterStatus = z.infer<typeof clusterStatusSchema>

export const clusterStatusRequest = defineMessage('cluster-status-request', () => ({}))
export const clusterStatusReply = defineMessage('cluster-status-reply', () => ({ status: clusterStatusSchema }))

/** Operator → the host that should form the cluster alone (it must be told directly). */
export const clusterForceQuorumRequest = defineMessage('cluster-force-quorum-request', () => ({}))

// ---- VM roles: coordinator ↔ hosts (requests over the mesh) and operator requests ------

export const ROLES_MAX = 200
export const ROLE_REASON_CHARS_MAX = 512
export const ROLE_STATES = ['stopped', 'pending', 'starting', 'running', 'stopping', 'failed'] as const
/** Why a role's owner was asked to stop it (agent/cluster/vm-role.ts StopCause). */
export const ROLE_STOP_CAUSES = ['operator', 'move', 'drain', 'failback', 'policy'] as const

export const rolePrioritySchema = z.enum(ROLE_PRIORITIES)

/** Failures counted against the failover policy, kept in the role record so a new coordinator continues them. */
export const FAILURE_HISTORY_ENTRIES_MAX = 64
export const failureHistorySchema = z.strictObject({
  restarts: field.list(z.strictObject({ node: field.name(), at_ms: field.time_ms() }), FAILURE_HISTORY_ENTRIES_MAX),
  failovers_ms: field.list(field.time_ms(), FAILURE_HISTORY_ENTRIES_MAX),
})

export const failbackSchema = z.strictObject({
  enabled: z.boolean(),
  window: z.strictObject({ start_hour: z.number().int().min(0).max(23), end_hour: z.number().int().min(0).max(23) }).nullable(),
})

const dataDisks = field.list(field.name(), VM_DISKS_MAX - 1)
/** Disks of a VM (`--disks`); absent: 1. */
const diskCount = z.number().int().min(1).max(VM_DISKS_MAX)

/** A VM's disk as the cluster keeps it (agent/clx/vm-storage.ts VmStorageSpec). */
export const vmStorageSpecSchema = z.discriminatedUnion('kind', [
  z.strictObject({
    kind: z.literal('replicated'),
    group: field.name(),
    volume: field.name(),
    size_bytes: field.uint(),
    mode: z.enum(['sync', 'periodic']),
    arrays: z.strictObject({ primary: field.name(), secondary: field.name() }),
    hosts: field.list(field.name(), CLUSTER_NODES_MAX),
    /** The VM's data disks (disks 1…), volumes of `size_bytes` in the same group; absent: none. */
    data_volumes: dataDisks.optional(),
  }),
  z.strictObject({ kind: z.literal('local') }),
  /** A region (named after the VM) of a Cluster Shared Volume: every node reads and writes it. */
  z.strictObject({
    kind: z.literal('csv'),
    csv: field.name(),
    region: field.name(),
    size_bytes: field.uint(),
    array: field.name(),
    volume: field.name(),
    /** The VM's data disks (disks 1…), regions of `size_bytes` of the same CSV; absent: none. */
    data_regions: dataDisks.optional(),
  }),
])
export type VmStorageSpecRecord = z.infer<typeof vmStorageSpecSchema>

/**
 * What `vm create` asks for: a replicated disk of `size_bytes` (default storage; with
 * `period_ms` its group is periodic, a delta every period, else synchronous), a CSV region,
 * or none beyond the host (local); `disks` of that size each (default 1).
 */
export const vmStorageRequestSchema = z.discriminatedUnion('kind', [
  z.strictObject({
    kind: z.literal('replicated'),
    size_bytes: field.uint(),
    period_ms: z.number().int().min(1).max(RC_PERIOD_MS_MAX).optional(),
    disks: diskCount.optional(),
  }),
  z.strictObject({ kind: z.literal('local') }),
  z.strictObject({ kind: z.literal('csv'), csv: field.name(), size_bytes: field.uint(), disks: diskCount.optional() }),
])
export type VmStorageRequest = z.infer<typeof vmStorageRequestSchema>

export { guestLoadSchema, type GuestLoadSetting }

/** A VM role as the cluster keeps it (agent/cluster/vm-role.ts). */
const failoverThreshold = () => z.number().int().min(0).max(ROLE_FAILOVER_THRESHOLD_MAX)
const failoverPeriodH = () => z.number().int().min(ROLE_FAILOVER_PERIOD_H_MIN).max(ROLE_FAILOVER_PERIOD_H_MAX)

export const vmRoleSchema = z.strictObject({
  name: field.name(),
  memory_mib: field.uint(),
  preferred_owners: field.list(field.name(), CLUSTER_NODES_MAX),
  possible_owners: field.list(field.name(), CLUSTER_NODES_MAX).nullable(),
  failback: failbackSchema,
  state: z.enum(ROLE_STATES),
  owner: field.name().nullable(),
  last_owner: field.name().nullable(),
  reason: field.text(ROLE_REASON_CHARS_MAX),
  /** Its disk; absent in records written before VMs had storage (= local). */
  storage: vmStorageSpecSchema.nullable().optional(),
  /** Why its owner was asked to stop it: present only while stopping (absent in older records: unknown). */
  stop_cause: z.enum(ROLE_STOP_CAUSES).optional(),
  /** The migration under way, to `to` as start `op`: present only while one is (absent in older records). */
  migration: z.strictObject({ to: field.name(), op: field.uint() }).optional(),
  /** Absent in older records: medium. */
  priority: rolePrioritySchema.optional(),
  /** WSFC AntiAffinityClassNames (one class): roles of a class go to different nodes when possible. Absent: none. */
  anti_affinity: field.name().nullable().optional(),
  /** WSFC FailoverThreshold: failovers allowed within the period. Absent or null: the cluster's (nodes − 1). */
  failover_threshold: failoverThreshold().nullable().optional(),
  /** WSFC FailoverPeriod, hours. Absent: the cluster's (6). */
  failover_period_h: failoverPeriodH().optional(),
  /** Restarts and failovers within the policy's windows (absent in older records: none). */
  failures: failureHistorySchema.optional(),
  /** The guest load `vm load` set; absent: none (idle). */
  load: guestLoadSchema.optional(),
  /** Hyper-V Replica (`hvlab replica enable`): whichever host runs the VM replicates it there. Absent: not replicated. */
  replication: replicationSettingSchema.optional(),
  /** The cluster's Replica Broker role (REPLICA_BROKER_ROLE) keeps its settings here; absent on every other role. */
  replica_broker: replicaBrokerSettingsSchema.optional(),
})
export type VmRoleRecord = z.infer<typeof vmRoleSchema>

/** Coordinator → host: start this VM (op echoed in the reply; epoch fences stale coordinators). */
export const vmStartRequest = defineMessage('vm-start-request', () => ({
  from: field.name(),
  role: field.name(),
  op: field.uint(),
  epoch: field.uint(),
  memory_mib: field.uint(),
  /** The VM's disk: a replicated one is made writable in the host's site (CLX) before the VM starts. */
  storage: vmStorageSpecSchema.nullable().optional(),
  /** The operator forces CLX to use this site's copy even though it is not in sync. */
  force_storage: z.boolean().optional(),
  /** The guest load the role keeps, applied as the VM starts. */
  load: guestLoadSchema.optional(),
}))

/** Coordinator → host: stop this VM. */
export const vmStopRequest = defineMessage('vm-stop-request', () => ({
  from: field.name(),
  role: field.name(),
  op: field.uint(),
  epoch: field.uint(),
  reason: field.text(ROLE_REASON_CHARS_MAX),
}))

/** Host → coordinator: the answer to a start or stop; `ok` false with why for a refused start. */
export const vmOpReply = defineMessage('vm-op-reply', () => ({
  role: field.name(),
  op: field.uint(),
  ok: z.boolean(),
  reason: field.text(ROLE_REASON_CHARS_MAX),
  /** A start CLX refused (the disk cannot be made writable there): the role fails, it is not a node failure. */
  storage_refused: z.boolean().optional(),
  /**
   * A start refused because this host holds no quorum lease at that moment (its lease
   * lapsed: a stalled process, a busy machine): no failure of the role, the coordinator
   * places it again a little later (role-controller.ts deferStart).
   */
  no_lease: z.boolean().optional(),
}))

/** Host → coordinator: a VM failed (health check: gone false; crash or stop by itself: gone true). */
export const vmFailedReport = defineMessage('vm-failed-report', () => ({
  from: field.name(),
  role: field.name(),
  op: field.uint(),
  gone: z.boolean(),
  reason: field.text(ROLE_REASON_CHARS_MAX),
}))

export const inventoryVmSchema = z.strictObject({
  role: field.name(),
  op: field.uint(),
  epoch: field.uint(),
  memory_mib: field.uint(),
  state: z.enum(['running', 'stopped']),
  guest_heartbeats: field.uint(),
  /** What the host knows of the VM's disk (agent/cluster/vm-storage-health.ts); absent from older hosts. */
  storage: z.strictObject({ state: z.enum(['ok', 'lost', 'none']), reason: field.text(ROLE_REASON_CHARS_MAX) }).optional(),
})
export type InventoryVmRecord = z.infer<typeof inventoryVmSchema>

/** Coordinator (or the CLI) → host: which VMs do you run? */
export const vmInventoryRequest = defineMessage('vm-inventory-request', () => ({ from: field.name() }))
export const vmInventoryReply = defineMessage('vm-inventory-reply', () => ({ from: field.name(), vms: field.list(inventoryVmSchema, 256) }))

const ownerList = field.list(field.name(), CLUSTER_NODES_MAX)
export const roleCommandSchema = z.discriminatedUnion('op', [
  z.strictObject({
    op: z.literal('create'),
    spec: z.strictObject({
      name: field.name(),
      memory_mib: field.uint().optional(),
      preferred_owners: ownerList.optional(),
      possible_owners: ownerList.nullable().optional(),
      storage: vmStorageRequestSchema.optional(),
    }),
  }),
  z.strictObject({ op: z.literal('start'), name: field.name(), force_storage: z.boolean().optional() }),
  /** `vm set`: change a role's settings; an absent field keeps its value. */
  z.strictObject({
    op: z.literal('set'),
    name: field.name(),
    changes: z.strictObject({
      preferred_owners: ownerList.optional(),
      priority: rolePrioritySchema.optional(),
      failback: failbackSchema.optional(),
      anti_affinity: field.name().nullable().optional(),
      memory_mib: field.uint().optional(),
      /** null: back to the cluster's (nodes − 1). */
      failover_threshold: failoverThreshold().nullable().optional(),
      failover_period_h: failoverPeriodH().optional(),
      /** Merged into the role's load (`vm load`). */
      load: guestLoadSchema.optional(),
      /** `replica enable` (a setting) or `replica disable` (null). */
      replication: replicationSettingSchema.nullable().optional(),
      /** `replica server enable cluster`: the Replica Broker's settings (its role only). */
      replica_broker: replicaBrokerSettingsSchema.optional(),
    }),
  }),
  /**
   * `replica failover --planned` of a VM on its replica server, once it left there: its replication goes forward again, and the cluster may start it;
   * null: the VM runs from its replica here now (an unplanned failover from another cluster), replicating nowhere until set up again.
   */
  z.strictObject({ op: z.literal('fail-back'), name: field.name(), replication: replicationSettingSchema.nullable() }),
  z.strictObject({ op: z.literal('stop'), name: field.name() }),
  z.strictObject({ op: z.literal('move'), name: field.name(), to: field.name() }),
  z.strictObject({ op: z.literal('pause'), node: field.name(), drain: z.boolean() }),
  z.strictObject({ op: z.literal('resume'), node: field.name(), failback: z.boolean() }),
])
export type RoleCommandMessage = z.infer<typeof roleCommandSchema>

/** Operator → any host (which forwards it to the coordinator): a VM role or node maintenance command. */
export const roleCommandRequest = defineMessage('role-command-request', () => ({ command: roleCommandSchema, forwarded: z.boolean() }))

/** Operator → any host: every VM role; answered by the coordinator, or from the database when it cannot be reached. */
export const roleListRequest = defineMessage('role-list-request', () => ({ forwarded: z.boolean() }))
export const roleListReply = defineMessage('role-list-reply', () => ({
  coordinator: field.name(),
  /** 'coordinator': live; 'database': the last committed records (the coordinator did not answer). */
  source: z.enum(['coordinator', 'database']),
  roles: field.list(vmRoleSchema, ROLES_MAX),
  /** The failover policy the failure counters are judged by (failovers_max resolved for the cluster's size). */
  failover_policy: z
    .strictObject({
      restarts_max: field.uint(),
      restart_period_ms: field.time_ms(),
      failovers_max: field.uint(),
      failover_period_ms: field.time_ms(),
    })
    .optional(),
  /** Each node's drain as the coordinator runs it (Get-ClusterNode DrainStatus); absent from the database. */
  drains: field.list(z.strictObject({ node: field.name(), status: z.enum(DRAIN_STATUSES) }), CLUSTER_NODES_MAX).optional(),
}))

// ── live and quick migration of VM roles ─────────────────────────────────────────────

export const MIGRATION_MODES = ['live', 'quick'] as const
export const migrationTicketSchema = z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, 'a ticket is 1–64 of A-Z a-z 0-9 _ -')
const migrationOptionsSchema = z.strictObject({
  mode: z.enum(MIGRATION_MODES),
  /** Downtime budget for the switch-over, ms (null: the engine's default). */
  budget_ms: z.number().int().min(1).max(60_000).nullable(),
  /** Pre-copy rounds at most (null: the engine's default). */
  max_rounds: z.number().int().min(1).max(1000).nullable(),
  verify: z.boolean(),
  /** Chosen by the CLI: the source's status names the migration it started for it. */
  ticket: migrationTicketSchema,
})
export type MigrationOptionsMessage = z.infer<typeof migrationOptionsSchema>

/** Operator → any host (forwarded to the coordinator): move a running VM role to `to` by live or quick migration. */
export const vmMigrateCommandRequest = defineMessage('vm-migrate-command-request', () => ({
  name: field.name(),
  to: field.name(),
  options: migrationOptionsSchema,
  forwarded: z.boolean(),
}))

/** Coordinator → the VM's owner: migrate it to `to`; the VM runs there as start `op`. Answered at once; the outcome comes as vm-migrated-report. */
export const vmMigrateRequest = defineMessage('vm-migrate-request', () => ({
  from: field.name(),
  role: field.name(),
  to: field.name(),
  op: field.uint(),
  epoch: field.uint(),
  options: migrationOptionsSchema,
}))

/** Owner → coordinator: how the migration `op` of `role` ended; `ok`: it runs on `to` now and not here. */
export const vmMigratedReport = defineMessage('vm-migrated-report', () => ({
  from: field.name(),
  role: field.name(),
  to: field.name(),
  op: field.uint(),
  ok: z.boolean(),
  reason: field.text(ROLE_REASON_CHARS_MAX),
}))

/** Operator → the VM's owner: cancel its outgoing migration (it stays on the owner). */
export const vmMigrateCancelRequest = defineMessage('vm-migrate-cancel-request', () => ({ vm: field.name() }))

/** Operator → a host: the state of the latest migration of `vm` it started (progress, or the result when done). */
export const vmMigrationStatusRequest = defineMessage('vm-migration-status-request', () => ({ vm: field.name() }))

const migrationRoundSchema = z.strictObject({
  round: field.uint(),
  dirty_pages: field.uint(),
  bytes_sent: field.uint(),
  duration_ms: field.time_ms(),
  throttle_pct: z.number().min(0).max(100),
})
export const migrationResultSchema = z.strictObject({
  migration_id: field.id(),
  vm: field.name(),
  mode: z.enum(MIGRATION_MODES),
  source: field.name(),
  destination: field.name(),
  outcome: z.enum(['completed', 'failed', 'cancelled', 'in_doubt']),
  reason: field.text(1024),
  total_ms: field.time_ms(),
  /** Live: start → the destination was ready (its skeleton VM made and its memory committed); null if it never was. */
  setup_ms: field.time_ms().nullable().optional(),
  /** Live: guest paused on the source → the source heard the destination runs it (the source's own clock). */
  blackout_ms: field.time_ms().nullable(),
  /** Live: wall-clock ms (the system clock, `Date.now()`) when the guest paused on the source; null if it never paused. */
  paused_at_ms: field.time_ms().nullable().optional(),
  /** Live: the guest's last instruction on the source (its pause) → its first on the destination (its resume), wall clocks of both hosts. */
  guest_paused_ms: field.time_ms().nullable().optional(),
  /** Quick migration: the VM was down from the pause on the source until it ran on the destination. */
  downtime_ms: field.time_ms().nullable(),
  expected_blackout_ms: field.time_ms().nullable(),
  switch_reason: z.enum(['fits_budget', 'round_cap']).nullable(),
  memory_bytes: field.uint(),
  bytes_sent: field.uint(),
  bytes_raw: field.uint(),
  rounds: field.list(migrationRoundSchema, 1001),
  final_pages: field.uint(),
  pages: z.strictObject({ scanned: field.uint(), skipped: field.uint(), zero: field.uint(), delta: field.uint(), full: field.uint() }),
  bandwidth_bytes_per_s: z.number().min(0),
  dirty_rate_bytes_per_s: z.number().min(0),
  throttle_pct_max: z.number().min(0).max(100),
  source_sha256: z.string().max(64).nullable(),
  destination_sha256: z.string().max(64).nullable(),
})
export type MigrationResultMessage = z.infer<typeof migrationResultSchema>

export const vmMigrationStatusReply = defineMessage('vm-migration-status-reply', () => ({
  vm: field.name(),
  host: field.name(),
  /** none: this host started no migration of it. */
  state: z.enum(['none', 'queued', 'running', 'done']),
  ticket: migrationTicketSchema.nullable(),
  to: field.name().nullable(),
  stage: field.text(64),
  round: field.uint(),
  pages_left: field.uint(),
  bandwidth_bytes_per_s: z.number().min(0),
  /** Guest memory copied per second in the round being sent (pages × page size; the wire carries less). */
  copy_rate_bytes_per_s: z.number().min(0).optional(),
  expected_blackout_ms: field.time_ms().nullable(),
  result: migrationResultSchema.nullable(),
}))

/** Operator → the VM's owner: change its guest workload live; an absent field keeps its value. */
export const vmLoadRequest = defineMessage('vm-load-request', () => ({
  vm: field.name(),
  dirty_mib_per_s: z.number().min(0).max(4096).optional(),
  hot_fraction: z.number().gt(0).max(1).nullable(),
  /** Block writes per second to the VM's disk (0 = idle). */
  disk_iops: z.number().int().min(0).max(VM_DISK_IOPS_MAX).optional(),
}))

/** A VM's disk writer as its host sees it (`hvlab vm inspect`). */
export const vmDiskCountersSchema = z.strictObject({
  array: field.name(),
  volume: field.name(),
  state: z.enum(['idle', 'writing', 'paused', 'fenced', 'detached']),
  disk_iops: z.number().int().min(0).max(VM_DISK_IOPS_MAX),
  in_flight: field.uint(),
  writes_issued: field.uint(),
  writes_acked: field.uint(),
  writes_refused: field.uint(),
  write_errors: field.uint(),
  /** Writes that were due while the queue was full (not issued). */
  writes_skipped: field.uint(),
  /** Writes acknowledged, and skipped, per second over the last measured interval (about a second). */
  writes_acked_per_s: z.number().min(0).optional(),
  writes_skipped_per_s: z.number().min(0).optional(),
  last_acked_seq: field.uint().nullable(),
  last_epoch: field.uint().nullable(),
  last_error: field.text(1024).nullable(),
})
export type VmDiskCountersMessage = z.infer<typeof vmDiskCountersSchema>

/** Operator → a host: one VM as it runs there (memory hash for checks, load, heartbeats). */
export const vmInspectRequest = defineMessage('vm-inspect-request', () => ({ vm: field.name() }))
export const vmInspectReply = defineMessage('vm-inspect-reply', () => ({
  vm: field.name(),
  host: field.name(),
  running: z.boolean(),
  paused: z.boolean(),
  memory_mib: field.uint(),
  memory_sha256: z.string().max(64).nullable(),
  guest_heartbeats: field.uint(),
  dirty_mib_per_s: z.number().min(0),
  hot_fraction: z.number().min(0).max(1),
  resumes: field.uint(),
  disk_iops: z.number().int().min(0).max(VM_DISK_IOPS_MAX).optional(),
  /** The VM's disk writer (disk 0); null when no disk is attached. */
  disk: vmDiskCountersSchema.nullable().optional(),
  /** Its data disks' writers (disks 1…), in order; absent or empty: none. */
  data_disks: field.list(vmDiskCountersSchema, VM_DISKS_MAX - 1).optional(),
}))

/**
 * Operator → the VM's owner (`hvlab vm hang`): the guest stops answering its heartbeat for
 * `for_ms` (null: until released or restarted), or with `release` answers again. Reply: ok.
 */
export const vmHangRequest = defineMessage('vm-hang-request', () => ({
  vm: field.name(),
  for_ms: z.number().int().min(1).max(GUEST_HANG_MS_MAX).nullable(),
  release: z.boolean(),
}))

export const clusterMessages = [
  clusterHeartbeat,
  clusterPrepare,
  clusterPromise,
  clusterRefuse,
  clusterAccept,
  clusterAccepted,
  clusterCommit,
  clusterCatchUp,
  clusterLeaseRequest,
  clusterLeaseAck,
  clusterLeaseGrant,
  clusterConfigWrite,
  clusterLeave,
] as const

export type ClusterMessage = z.infer<(typeof clusterMessages)[number]['schema']>
/**
 * Operator requests and replies, and the VM role requests between the coordinator and the
 * hosts; not part of the peer protocol the membership state machines speak.
 */
export const clusterOperatorMessages = [
  clusterStatusRequest,
  clusterStatusReply,
  clusterForceQuorumRequest,
  vmStartRequest,
  vmStopRequest,
  vmOpReply,
  vmFailedReport,
  vmInventoryRequest,
  vmInventoryReply,
  roleCommandRequest,
  roleListRequest,
  roleListReply,
  vmMigrateCommandRequest,
  vmMigrateRequest,
  vmMigratedReport,
  vmMigrateCancelRequest,
  vmMigrationStatusRequest,
  vmMigrationStatusReply,
  vmLoadRequest,
  vmInspectRequest,
  vmInspectReply,
  vmHangRequest,
] as const

export type ClusterMessageOf<T extends ClusterMessage['t']> = Extract<ClusterMessage, { t: T }>
