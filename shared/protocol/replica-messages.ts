/**
 * Hyper-V Replica between a primary server and its replica server (seed 002): each cycle's
 * closed log (agent/replica/replica-log.ts) travels as one or more parts, in order, each a
 * request the replica answers. The replica stages the parts and judges and applies the
 * shipment only once the last has come, so it never holds half a cycle.
 *
 *   replica-log-part (req, attachment = part body) → replica-log-answer
 *
 * A part's body (agent/replica/shipment-frames.ts), deflated when `compression` says so:
 *   u32 LE count · count × u32 LE block number · count × block_size_bytes of block data
 * `body_bytes` is its length before deflation: the replica inflates no further than that.
 */
import { z } from 'zod'
import { guestLoadSchema } from './guest-load.js'
import { defineMessage, field } from './define.js'
import {
  APP_CONSISTENT_EVERY_H_MAX,
  APP_CONSISTENT_EVERY_H_MIN,
  EXTENDED_FREQUENCIES_MS,
  HASHES_PER_REQUEST_MAX,
  INITIAL_REPLICATION_MODES,
  REPLICA_PATH_BYTES_MAX,
  RECOVERY_POINTS_MAX,
  REPLICA_ALLOW_MAX,
  REPLICA_BROKER_ALLOW_MAX,
  REPLICA_DISK_BLOCKS_MAX,
  REPLICATION_FREQUENCIES_MS,
  REPLICATION_MBIT_MAX,
  REPLICATION_MBIT_MIN,
  RECOVERY_POINT_KINDS,
  REPLICA_DISK_BYTES_MAX,
  STANDALONE_VM_BLOCK_BYTES,
  STANDALONE_VM_MEMORY_MIB_MAX,
  STANDALONE_VM_MEMORY_MIB_MIN,
} from './replica-limits.js'

import { VM_DISKS_MAX } from './storage-limits.js'

export * from './replica-limits.js'

/** Why a replica did not apply a shipment (agent/replica/shipment-check.ts decides; `not-begun`: the replica server holds no open replica of the VM, e.g. after its restart, so the primary resyncs). */
export const SHIPMENT_REFUSALS = ['replayed', 'cycle-gap', 'from-future', 'wrong-vm', 'malformed', 'not-begun', 'failed-over'] as const
export type ShipmentRefusal = (typeof SHIPMENT_REFUSALS)[number]

/**
 * A VM on a replica server: `replicating` (its replica, from its primary), `failed-over` (the
 * VM runs here from its replica), `created-here` (a VM of this standalone host's own, created
 * here: its primary copy, which may replicate to the cluster).
 */
export const REPLICA_VM_STATES = ['replicating', 'failed-over', 'created-here'] as const
export type ReplicaVmState = (typeof REPLICA_VM_STATES)[number]

/** What a replica server tells a primary that begins (replica-begin-reply `handover`). */
export const PRIMARY_HANDOVERS = ['continue', 'take-over', 'wait'] as const
export type PrimaryHandover = (typeof PRIMARY_HANDOVERS)[number]

export const SHIPMENT_COMPRESSIONS = ['none', 'deflate'] as const
export type ShipmentCompression = (typeof SHIPMENT_COMPRESSIONS)[number]

/** A part's body before deflation, at most: 4 MiB (a frame's attachment is at most 8 MiB). */
export const SHIPMENT_PART_BODY_BYTES_MAX = 4 * 1024 * 1024
/** Parts of one shipment at most (4 TiB of changes at 4 MiB a part). */
export const SHIPMENT_PARTS_MAX = 1 << 20
/** A replicated disk's block: 512 bytes to 64 KiB. */
export const REPLICA_BLOCK_BYTES_MIN = 512
export const REPLICA_BLOCK_BYTES_MAX = 64 * 1024

/** Which part of which shipment: a part and its answer both name it. */
const partOf = () => ({
  vm: field.name(),
  cycle: field.uint(),
  /** 0, 1, … parts - 1, in order. */
  part: z
    .number()
    .int()
    .min(0)
    .max(SHIPMENT_PARTS_MAX - 1),
})

export const replicaLogPart = defineMessage(
  'replica-log-part',
  () => ({
    ...partOf(),
    parts: z.number().int().min(1).max(SHIPMENT_PARTS_MAX),
    /** When the primary closed the log (its clock): the point the shipment brings the replica to. */
    closed_at_ms: field.time_ms(),
    block_size_bytes: z.number().int().min(REPLICA_BLOCK_BYTES_MIN).max(REPLICA_BLOCK_BYTES_MAX),
    /** Writes the log took in the cycle and the bytes it grew by (the same in every part). */
    writes_logged: field.uint(),
    logged_bytes: field.uint(),
    compression: z.enum(SHIPMENT_COMPRESSIONS),
    body_bytes: z.number().int().min(4).max(SHIPMENT_PART_BODY_BYTES_MAX),
    /** `application`: the guest was quiesced when the log closed, so the replica takes an application-consistent point of it; absent: crash. */
    point_kind: z.enum(RECOVERY_POINT_KINDS).optional(),
  }),
  { attachment: 'required' },
)

/**
 * The replica's answer for one part: `staged` for every part but the last; for the last,
 * what became of the whole shipment (`applied`, `ignored` as a replay, or `refused` with
 * why, and whether the VM needs a resync).
 */
export const replicaLogAnswer = defineMessage('replica-log-answer', () => ({
  ...partOf(),
  outcome: z.enum(['staged', 'applied', 'ignored', 'refused']),
  refusal: z.enum(SHIPMENT_REFUSALS).optional(),
  resync: z.boolean(),
}))

/** An absolute path on this machine, without NUL bytes (a folder or file the operator names). */
const absolutePath = () =>
  z
    .string()
    .min(1)
    .max(REPLICA_PATH_BYTES_MAX)
    .refine((p) => p.startsWith('/') && !p.includes('\0'), 'an absolute path without NUL bytes')

/** Disks of a VM that replicate: distinct numbers 0…VM_DISKS_MAX-1, ascending, disk 0 (the VM's system disk) among them. */
export const includedDisks = () =>
  field
    .list(
      z
        .number()
        .int()
        .min(0)
        .max(VM_DISKS_MAX - 1),
      VM_DISKS_MAX,
    )
    .refine((d) => d[0] === 0 && d.every((k, i) => i === 0 || k > d[i - 1]!), 'distinct disk numbers in ascending order, disk 0 first')

/** A VM's replication as its role keeps it (`hvlab replica enable`): whoever runs the VM replicates it. */
export const replicationSettingSchema = z
  .strictObject({
    /** The replica server. */
    to: field.name(),
    frequency_ms: z.union(REPLICATION_FREQUENCIES_MS.map((f) => z.literal(f))),
    recovery_points: z.number().int().min(0).max(RECOVERY_POINTS_MAX),
    compress: z.boolean(),
    /** How the initial copy reaches the replica; absent: over the network. */
    initial: z.enum(INITIAL_REPLICATION_MODES).optional(),
    /** `export`: the folder (the offline media) the host running the VM exports its disk to. */
    export_dir: absolutePath().optional(),
    /** The initial replication begins at this wall-clock time, not at once (a quiet hour). */
    start_at_ms: field.time_ms().optional(),
    /** Replication's own bandwidth cap, Mbit/s on average (agent/replica/send-pacer.ts); absent: none. */
    max_mbit: z.number().min(REPLICATION_MBIT_MIN).max(REPLICATION_MBIT_MAX).optional(),
    /**
     * Reverse replication: after a planned failover the VM runs on its replica server `to`,
     * which replicates its changes back to the cluster, into the VM's own disk on the
     * cluster's storage, through this member: where the cluster's Replica Broker placed the
     * reverse replica (it places it again when that member is gone). The cluster does not
     * start the VM until it fails back.
     */
    reversed_to: field.name().optional(),
    /** Every this many hours (scaled like the points) a recovery point is application-consistent; absent: all crash-consistent. */
    app_consistent_every_h: z.number().int().min(APP_CONSISTENT_EVERY_H_MIN).max(APP_CONSISTENT_EVERY_H_MAX).optional(),
    /** The VM's disks that replicate (`--disks`), disk 0 among them; absent: every one. A disk left out fails over blank. */
    disks: includedDisks().optional(),
    /**
     * `to` names a failover cluster of the lab, not a server (`replica enable VM --to
     * cluster:NAME`): that cluster's Replica Broker places the replica on one of its members,
     * and the VM's role there keeps this setting with `to` the cluster it runs in.
     */
    to_cluster: z.literal(true).optional(),
  })
  .refine(
    (s) => s.app_consistent_every_h === undefined || s.app_consistent_every_h <= s.recovery_points,
    'app_consistent_every_h needs at least that many recovery_points (the history it refers to)',
  )
export type ReplicationSetting = z.infer<typeof replicationSettingSchema>

/**
 * Reverse replication as the replica server running a failed-over VM keeps it: back to the
 * cluster, whose Replica Broker places the replica on a member (agent/replica/reverse-placement.ts).
 */
export const reverseSchema = z.strictObject({
  frequency_ms: z.union(REPLICATION_FREQUENCIES_MS.map((f) => z.literal(f))),
  compress: z.boolean(),
  /** The recovery points the member holding the reverse replica keeps (absent: none, as before they could be kept). */
  recovery_points: z.number().int().min(0).max(RECOVERY_POINTS_MAX).optional(),
})
export type Reverse = z.infer<typeof reverseSchema>

/** The Replica Broker's settings, kept in its role in the cluster database: the replica servers it takes replication from. */
export const replicaBrokerSettingsSchema = z
  .strictObject({
    allow_any: z.boolean(),
    /** Servers, hosts, or failover clusters (by name: every member of it) the cluster takes replication from. */
    allow: field.list(field.name(), REPLICA_BROKER_ALLOW_MAX),
    /** Where the replica of a VM from another cluster goes: `csv:NAME`, or absent: the cluster's default storage (`vm create`'s). */
    storage: z
      .string()
      .regex(/^csv:[a-z0-9][a-z0-9._-]{0,47}$/)
      .optional(),
  })
  .refine((s) => !(s.allow_any && s.allow.length > 0), 'allow_any takes no allow list')
export type ReplicaBrokerSettings = z.infer<typeof replicaBrokerSettingsSchema>

/**
 * Operator (a planned failover, `first`) or the replica server running a failed-over VM →
 * any cluster member: where does `vm`'s reverse replica from `server` go? The broker's owner
 * places it (and records it in the role); another member names the owner (`broker_owner`).
 */
export const replicaBrokerPlaceRequest = defineMessage('replica-broker-place-request', () => ({
  vm: field.name(),
  server: field.name(),
  first: z.boolean(),
}))
/** `host`: the member holding the reverse replica (null: ask `broker_owner`, which may be null while the broker has no owner). */
export const replicaBrokerPlaceReply = defineMessage('replica-broker-place-reply', () => ({
  vm: field.name(),
  host: field.name().nullable(),
  broker_owner: field.name().nullable(),
}))

/** Operator → a standalone host: become a replica server for these primary servers (`any`: every host of the lab). */
export const replicaServerEnableRequest = defineMessage('replica-server-enable-request', () => ({
  allow_any: z.boolean(),
  allow: field.list(field.name(), REPLICA_ALLOW_MAX),
}))

/** A replicated VM's disk geometry and memory, as a primary tells them (a begin) and an export records them. */
export const replicatedVmShape = () => ({
  block_size_bytes: z.number().int().min(REPLICA_BLOCK_BYTES_MIN).max(REPLICA_BLOCK_BYTES_MAX),
  /** Blocks of every disk of the VM together (agent/replica/disk-set.ts). */
  disk_blocks: z.number().int().min(1).max(REPLICA_DISK_BLOCKS_MAX),
  /** How many disks of disk_blocks / disks each; absent: 1. */
  disks: z.number().int().min(1).max(VM_DISKS_MAX).optional(),
  /** Which of them replicate; absent: every one. */
  included_disks: includedDisks().optional(),
  /** The VM's memory: the replica VM starts with it at a failover. */
  memory_mib: z
    .number()
    .int()
    .min(1)
    .max(4 * 1024 * 1024),
})

/** How many times a VM has moved by migration (its device state counts them); a VM started afresh has 0. */
const vmMoves = () =>
  z
    .number()
    .int()
    .min(0)
    .max(2 ** 31)

/**
 * Primary → replica server: replication of `vm` begins (or goes on from another primary); the reply says where the replica stands.
 * `arrived`: the VM came here by a live or quick migration, its `moves`-th: if its previous primary ended cleanly (replica-primary-end
 * of move `moves - 1`) at the cycle the replica applied last, this primary goes on from it without a resync; `wait`: while the
 * previous primary has not ended, leave the replica to it and say so (`handover: wait`) rather than take it over.
 */
export const replicaBeginRequest = defineMessage('replica-begin-request', () => ({
  vm: field.name(),
  ...replicatedVmShape(),
  recovery_points: z.number().int().min(0).max(RECOVERY_POINTS_MAX),
  arrived: z.strictObject({ moves: vmMoves().min(1), wait: z.boolean() }).optional(),
}))
/**
 * `has_copy`: the replica holds an initial copy (imported, or from a finished resync), so a resync sends only differences.
 * `handover` (agent/replica/primary-handover.ts): `continue` from the clean end of `previous` (its last cycle is `applied_cycle`),
 * `take-over` (this primary replicates the VM now and resyncs first), or `wait` (nothing changed: `previous` has not ended yet).
 */
export const replicaBeginReply = defineMessage('replica-begin-reply', () => ({
  vm: field.name(),
  applied_cycle: field.uint(),
  has_copy: z.boolean(),
  handover: z.enum(PRIMARY_HANDOVERS),
  /** The primary before this one (null: none). */
  previous: field.name().nullable(),
}))

/**
 * Primary → replica server: the VM left this primary (a migration, a shutdown) and every change it made here is applied, up to
 * `cycle`; nothing more comes from here. `moves`: the VM's moves when it ran here. The next primary, the VM's next move, goes on
 * from it without a resync (replica-begin `arrived`). Answered `ok`, or refused HVLAB_E_STATE when the replica does not stand there.
 */
export const replicaPrimaryEnd = defineMessage('replica-primary-end', () => ({ vm: field.name(), cycle: field.uint(), moves: vmMoves() }))

/** Operator → replica server: import the initial copy of `vm` from an export file (offline media) before its primary sends the differences. */
export const replicaImportRequest = defineMessage('replica-import-request', () => ({ vm: field.name(), path: absolutePath() }))
export const replicaImportReply = defineMessage('replica-import-reply', () => ({
  vm: field.name(),
  blocks_imported: field.uint(),
  exported_at_ms: field.time_ms(),
}))

/** Primary → replica server: the SHA-256 of blocks first_block … first_block + blocks - 1 of the replica (a resync compares them). */
export const replicaHashesRequest = defineMessage('replica-hashes-request', () => ({
  vm: field.name(),
  first_block: z
    .number()
    .int()
    .min(0)
    .max(REPLICA_DISK_BLOCKS_MAX - 1),
  blocks: z.number().int().min(1).max(HASHES_PER_REQUEST_MAX),
}))
/** The attachment: 32 bytes per block, in block order. */
export const replicaHashesReply = defineMessage(
  'replica-hashes-reply',
  () => ({ vm: field.name(), first_block: field.uint(), blocks: field.uint() }),
  {
    attachment: 'required',
  },
)

/** Primary → replica server: blocks that differ, written durably (the attachment is a part body, not deflated). */
export const replicaResyncBlocks = defineMessage(
  'replica-resync-blocks',
  () => ({ vm: field.name(), body_bytes: z.number().int().min(4).max(SHIPMENT_PART_BODY_BYTES_MAX) }),
  { attachment: 'required' },
)

/** Primary → replica server: the resync is done; the replica equals the primary as of the log `next_cycle` opened. */
export const replicaResyncDone = defineMessage('replica-resync-done', () => ({ vm: field.name(), next_cycle: z.number().int().min(1) }))

/**
 * Operator → replica server: start the replica VM here from the replica (a failover), from
 * the latest cycle applied or (`recovery_cycle`) the recovery point of that cycle; `load`:
 * the guest load the VM's role keeps (its applications start again). Replication in this
 * direction ends; `reverse` (a planned failover): the VM's changes replicate back from here.
 */
export const replicaFailoverRequest = defineMessage('replica-failover-request', () => ({
  vm: field.name(),
  recovery_cycle: field.uint().nullable(),
  load: guestLoadSchema.optional(),
  reverse: reverseSchema.optional(),
  /** A planned failover between standalone hosts: the VM's changes replicate to that host from now on. */
  replication: replicationSettingSchema.optional(),
}))

/**
 * Operator → the replica server a VM failed over to (planned, reversed): a fail-back's two
 * steps there. `stop-vm`: shut the VM down (its last changes then go back); `replicate-forward`:
 * once they are sent, the replica takes its primary's replication again (its disk is the one
 * the VM left, so the resync that follows sends nothing that did not change).
 */
export const replicaFailbackRequest = defineMessage('replica-failback-request', () => ({
  vm: field.name(),
  step: z.enum(['stop-vm', 'replicate-forward']),
}))

/**
 * Operator → the replica server a VM failed over to unplanned (not reversed): replicate its
 * changes back to the cluster from now on (seed 002: after an unplanned failover "to get back
 * to the primary site, you will have to reconfigure replication"), as a planned failover would have.
 */
export const replicaReverseRequest = defineMessage('replica-reverse-request', () => ({ vm: field.name(), reverse: reverseSchema }))

/**
 * Operator → a standalone Hyper-V host: create VM `vm` there and start it, on new disks of
 * `disk_bytes` each on the host's own storage, with `memory_mib` of memory and the guest `load`.
 * Not a cluster role: it runs there alone until it replicates to the cluster
 * (`hvlab replica enable VM --to cluster`).
 */
export const standaloneVmCreateRequest = defineMessage('standalone-vm-create-request', () => ({
  vm: field.name(),
  memory_mib: z.number().int().min(STANDALONE_VM_MEMORY_MIB_MIN).max(STANDALONE_VM_MEMORY_MIB_MAX),
  disk_bytes: z
    .number()
    .int()
    .min(STANDALONE_VM_BLOCK_BYTES)
    .max(REPLICA_DISK_BYTES_MAX)
    .refine((n) => n % STANDALONE_VM_BLOCK_BYTES === 0, `a whole number of ${STANDALONE_VM_BLOCK_BYTES}-byte blocks`),
  /** Disks of `disk_bytes` each (`--disks`); absent: 1. Together at most REPLICA_DISK_BYTES_MAX. */
  disks: z.number().int().min(1).max(VM_DISKS_MAX).optional(),
  load: guestLoadSchema.optional(),
}))

/** Operator → a standalone Hyper-V host: VM `vm`, which runs there and is no cluster role's, replicates to standalone host `replication.to` from now on (null: no longer). */
export const standaloneReplicateRequest = defineMessage('standalone-replicate-request', () => ({
  vm: field.name(),
  replication: replicationSettingSchema.nullable(),
}))

/** Operator → a standalone Hyper-V host: start, stop or remove a VM that runs from its disk there (created there; start and stop: or failed over there). */
export const standaloneVmRequest = defineMessage('standalone-vm-request', () => ({
  vm: field.name(),
  op: z.enum(['start', 'stop', 'remove']),
}))

/** Operator → the cluster host a VM's changes replicated back to: the fail-back is done, drop the reverse replica (its disk is the VM's own). */
export const replicaReverseDropRequest = defineMessage('replica-reverse-drop-request', () => ({ vm: field.name() }))

/**
 * Operator → the member holding the replica of another cluster's VM, at an unplanned failover
 * into this cluster: return the VM's disks to the recovery point of `recovery_cycle` (null:
 * the latest cycle applied), then drop the replica; the cluster starts the VM from them.
 */
export const replicaReverseTakeoverRequest = defineMessage('replica-reverse-takeover-request', () => ({
  vm: field.name(),
  recovery_cycle: field.uint().nullable(),
}))

/** Where a replica server forwards a replica (extended replication), every 5 or 15 minutes. */
export const extensionSchema = z.strictObject({
  to: field.name(),
  frequency_ms: z.union(EXTENDED_FREQUENCIES_MS.map((f) => z.literal(f))),
})
export type Extension = z.infer<typeof extensionSchema>

/** Operator → replica server: forward `vm`'s replica to a third server (extended replication), or with null no longer. */
export const replicaExtendRequest = defineMessage('replica-extend-request', () => ({
  vm: field.name(),
  extension: extensionSchema.nullable(),
}))

/** Operator → replica server: a test failover of `vm` (its copy runs isolated as VM-test while replication goes on), or with `stop` its end. */
export const replicaTestFailoverRequest = defineMessage('replica-test-failover-request', () => ({
  vm: field.name(),
  stop: z.boolean(),
  load: guestLoadSchema.optional(),
}))

/** Operator → replica server or a VM's primary: how replication stands (one VM, or all when `vm` is null). */
export const replicaStatusRequest = defineMessage('replica-status-request', () => ({ vm: field.name().nullable() }))

const replicaSideStatus = () =>
  z.strictObject({
    vm: field.name(),
    from: field.name(),
    applied_cycle: field.uint(),
    /** When the log of the last cycle applied was closed (the primary's clock); null: none since the last resync. */
    applied_closed_at_ms: field.time_ms().nullable(),
    resyncing: z.boolean(),
    /** replicating; failed-over: the replica VM runs here from it (replication in this direction ended); created-here: a VM of this host's own. */
    state: z.enum(REPLICA_VM_STATES),
    /** The VM runs on this server now (after a failover, or created here). */
    vm_running: z.boolean(),
    memory_mib: field.uint(),
    /** A VM that runs here and is no cluster role's: the standalone host it replicates to, and how; null: none. */
    replication: replicationSettingSchema.nullable(),
    /** A VM that runs here: the guest load it last ran with (a planned failover starts it with that load elsewhere). */
    load: guestLoadSchema.optional(),
    /** A test failover's copy (VM-test) runs on this server now, isolated. */
    test_vm_running: z.boolean(),
    recovery_points: field.list(
      z.strictObject({ cycle: field.uint(), at_ms: field.time_ms(), kind: z.enum(RECOVERY_POINT_KINDS) }),
      RECOVERY_POINTS_MAX,
    ),
    /** Bytes of every disk of the VM together. */
    disk_bytes: field.uint(),
    /** How many disks those are, of disk_bytes / disks each; absent: 1. */
    disks: z.number().int().min(2).max(VM_DISKS_MAX).optional(),
    /** The disks its primary replicates; absent: every one. */
    included_disks: includedDisks().optional(),
  })
const primarySideStatus = () =>
  z.strictObject({
    vm: field.name(),
    to: field.name(),
    frequency_ms: field.uint(),
    health: z.enum(['Normal', 'Warning', 'Critical']),
    lag_ms: field.time_ms(),
    pending_bytes: field.uint(),
    in_flight: field.uint().nullable(),
    resyncing: z.boolean(),
    /** With `--app-consistent-every-h`: the cycles that closed crash-consistent because the guest did not quiesce in time. */
    quiesce_timeouts: field.uint().optional(),
    cycles_applied: field.uint(),
    last_cycle_bytes: field.uint().nullable(),
    last_error: field.text(300).nullable(),
    /** The last error's stable code (shared/errors.ts), for whoever decides on it. */
    last_error_code: field.text(64).nullable(),
    /** The VM no longer runs on this host: its last changes are being sent (a planned failover waits for them). */
    stopped: z.boolean(),
    /** How a stopped VM's last changes ended: sent (all applied on the replica) or abandoned; null while going or running. */
    finished: z.enum(['sent', 'abandoned']).nullable(),
    /** What the initial replication waits for: its scheduled start, or an initial copy imported on the replica server; null: nothing. */
    waiting_for: z.enum(['start-time', 'initial-copy']).nullable(),
    /** `export`: the file this host exported the VM's disk to (null until written). */
    export_file: field.text(REPLICA_PATH_BYTES_MAX + 256).nullable(),
    /** The VM moved here and replication went on from its previous primary's clean end at `cycle`, without a resync; null: it began with one (or has not begun). */
    continued_from: z.strictObject({ host: field.name(), cycle: field.uint() }).nullable(),
  })
export type ReplicaSideStatus = z.infer<ReturnType<typeof replicaSideStatus>>
export type PrimarySideStatus = z.infer<ReturnType<typeof primarySideStatus>>

export const replicaStatusReply = defineMessage('replica-status-reply', () => ({
  server: field.name(),
  /** On a replica server: whether it is enabled and whom it allows. */
  replica_server: z
    .strictObject({ enabled: z.boolean(), allow_any: z.boolean(), allow: field.list(field.name(), REPLICA_ALLOW_MAX) })
    .nullable(),
  replicas: field.list(replicaSideStatus(), 1024),
  primaries: field.list(primarySideStatus(), 1024),
}))

export const replicaMessages = [
  replicaLogPart,
  replicaLogAnswer,
  replicaServerEnableRequest,
  replicaBeginRequest,
  replicaBeginReply,
  replicaPrimaryEnd,
  replicaHashesRequest,
  replicaHashesReply,
  replicaResyncBlocks,
  replicaResyncDone,
  replicaImportRequest,
  replicaImportReply,
  replicaFailoverRequest,
  replicaFailbackRequest,
  replicaReverseRequest,
  replicaReverseDropRequest,
  replicaReverseTakeoverRequest,
  standaloneVmCreateRequest,
  standaloneVmRequest,
  standaloneReplicateRequest,
  replicaBrokerPlaceRequest,
  replicaBrokerPlaceReply,
  replicaExtendRequest,
  replicaTestFailoverRequest,
  replicaStatusRequest,
  replicaStatusReply,
] as const
