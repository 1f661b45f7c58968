/**
 * Messages of the storage arrays: block I/O from hosts, volume and presentation admin,
 * Remote Copy group admin, and the replication traffic between two arrays.
 *
 * Requests and replies ride in the codec's 'req'/'res' envelopes (errors in 'err'), so
 * these messages carry no request ids. Block data always travels as the frame's byte
 * attachment: `blocks` consecutive blocks (block-write, block-data, rc-write) or the
 * blocks of `block_list` in list order (rc-blocks), each `block_size_bytes` long.
 */
import { z } from 'zod'
import { ERROR_CODES } from '../errors.js'
import { defineMessage, field } from './define.js'
import { BLOCKS_PER_IO_MAX, DIGEST_BLOCKS_MAX, RC_MODES, RC_WRITE_ERROR_POLICIES } from './storage-limits.js'
import { DISK_FSYNC_DELAY_MS_MAX } from '../fault-limits.js'

export { BLOCKS_PER_IO_MAX, DIGEST_BLOCKS_MAX, RC_MODES, RC_WRITE_ERROR_POLICIES }

/** Most blocks in one resync/delta batch between arrays. */
export const BLOCKS_PER_BATCH_MAX = 256
export const VOLUMES_LISTED_MAX = 1024
export const GROUPS_LISTED_MAX = 256
export const GROUP_VOLUMES_MAX = 64

const volume = field.name
const blockCount = () => z.number().int().min(1).max(BLOCKS_PER_IO_MAX)
/** A Fibre Channel port WWN, 16 hex digits, with or without colons (c0:03:ff:…). */
export const wwnSchema = z
  .string()
  .regex(
    /^(?:[0-9a-fA-F]{16}|(?:[0-9a-fA-F]{2}:){7}[0-9a-fA-F]{2})$/,
    'an initiator id is a WWN: 16 hex digits, optionally colon-separated',
  )

// ---------------------------------------------------------------- host block I/O

/** Host → array (request): write `blocks` blocks from `block`; the attachment is the data. */
export const blockWrite = defineMessage(
  'block-write',
  () => ({
    volume: volume(),
    host: field.name(),
    initiator: wwnSchema.optional(),
    /** The writer's cluster epoch (its reservation); older than the volume's is refused. */
    epoch: field.uint(),
    block: field.uint(),
    blocks: blockCount(),
  }),
  { attachment: 'required' },
)

/** Array → host (reply to block-write): the write is durable (and on the partner, in sync mode). */
export const blockWritten = defineMessage('block-written', () => ({
  volume: volume(),
  block: field.uint(),
  blocks: blockCount(),
}))

/** Host → array (request): read `blocks` blocks from `block`. */
export const blockRead = defineMessage('block-read', () => ({
  volume: volume(),
  host: field.name(),
  initiator: wwnSchema.optional(),
  block: field.uint(),
  blocks: blockCount(),
}))

/** Array → host (reply to block-read); the attachment is the data. */
export const blockData = defineMessage('block-data', () => ({ volume: volume(), block: field.uint(), blocks: blockCount() }), {
  attachment: 'required',
})

/** Longest pattern seed of a block-write-pattern. */
export const PATTERN_SEED_CHARS_MAX = 128

/**
 * Operator → array (request, relayed by the controller, so no attachment): a test/demo
 * write whose data the array derives from `pattern` (see shared/block-pattern.ts).
 * Masking and fencing apply exactly as for a host's block-write. Reply: block-written.
 */
export const blockWritePattern = defineMessage('block-write-pattern', () => ({
  volume: volume(),
  host: field.name(),
  initiator: wwnSchema.optional(),
  epoch: field.uint(),
  block: field.uint(),
  blocks: blockCount(),
  pattern: z.string().min(1).max(PATTERN_SEED_CHARS_MAX),
}))

/**
 * Operator → array (request): sha256 of `blocks` blocks from `block` (and of each block,
 * when there are at most BLOCKS_PER_IO_MAX). With `host`, masking applies as for a host's
 * read; without, it is an administrator's read. Reply: block-digest.
 */
export const blockDigestRequest = defineMessage('block-digest-request', () => ({
  volume: volume(),
  host: field.name().optional(),
  initiator: wwnSchema.optional(),
  block: field.uint(),
  blocks: z.number().int().min(1).max(DIGEST_BLOCKS_MAX),
}))
export const blockDigest = defineMessage('block-digest', () => ({
  volume: volume(),
  block: field.uint(),
  blocks: z.number().int().min(1).max(DIGEST_BLOCKS_MAX),
  sha256: field.sha256Hex(),
  block_sha256: field.list(field.sha256Hex(), BLOCKS_PER_IO_MAX).optional(),
}))

// ---------------------------------------------------------------- volume and LUN admin

export const volumeCreate = defineMessage('volume-create', () => ({ volume: volume(), size_bytes: field.uint() }))
export const volumeGrow = defineMessage('volume-grow', () => ({ volume: volume(), size_bytes: field.uint() }))
export const volumeRemove = defineMessage('volume-remove', () => ({ volume: volume() }))
export const volumeList = defineMessage('volume-list', () => ({}))
export const volumeListing = defineMessage('volume-listing', () => ({
  block_size_bytes: field.u32(),
  /** Each volume with the hosts it is presented to (LUN masking). */
  volumes: field.list(
    z.strictObject({ volume: volume(), size_bytes: field.uint(), presented_to: field.list(field.name(), 4096) }),
    VOLUMES_LISTED_MAX,
  ),
}))

/** An array's disk faults (issue 13): fsyncs that take longer or fail, or a full disk. */
export const diskFaultsSchema = z.strictObject({
  fsync_delay_ms: z.number().int().min(0).max(DISK_FSYNC_DELAY_MS_MAX),
  fsync_fails: z.boolean(),
  full: z.boolean(),
})
/** Operator → array: its disk's faults from now on (all off: a healthy disk); answered with disk-faults. */
export const diskFaultSet = defineMessage('disk-fault-set', () => diskFaultsSchema.shape)
export const diskFaults = defineMessage('disk-faults', () => diskFaultsSchema.shape)

/** Present a volume to a host; with initiators, only I/O from those (VFC WWN A/B) is allowed. */
export const lunPresent = defineMessage('lun-present', () => ({
  volume: volume(),
  host: field.name(),
  initiators: field.list(wwnSchema, 2),
}))
export const lunUnpresent = defineMessage('lun-unpresent', () => ({ volume: volume(), host: field.name() }))
/** Array → operator (reply to lun-present/lun-unpresent): the volume's presentations now. */
export const lunPresentations = defineMessage('lun-presentations', () => ({
  volume: volume(),
  presentations: field.list(z.strictObject({ host: field.name(), initiators: field.list(z.string().max(23), 2) }), 4096),
}))

// ---------------------------------------------------------------- Remote Copy admin

export const RC_ROLES = ['primary', 'secondary', 'primary-rev', 'secondary-rev'] as const
export const rcRoleSchema = z.enum(RC_ROLES)
export const rcModeSchema = z.enum(RC_MODES)
export const RC_VOLUME_STATES = ['New', 'Syncing', 'Synced', 'NotSynced', 'Stopped', 'Stale'] as const
export const RC_VERBS = ['start', 'stop', 'sync', 'failover', 'recover', 'restore', 'reverse', 'switchover'] as const

/** CLI/controller → array: create one side of a group (run on both arrays). */
export const rcCreate = defineMessage('rc-create', () => ({
  group: field.name(),
  partner: field.name(),
  role: z.enum(['primary', 'secondary']),
  mode: rcModeSchema,
  period_ms: field.uint().optional(),
  write_error_policy: z.enum(RC_WRITE_ERROR_POLICIES).optional(),
  auto_recover: z.boolean().optional(),
  /** Peer Persistence-style: the cluster (CLX) fails it over, and it recovers by itself once the link is back. */
  auto_failover: z.boolean().optional(),
}))

/** CLI/controller → the primary array: add a volume pair to a group (admitrcopyvv). */
export const rcAdmit = defineMessage('rc-admit', () => ({
  group: field.name(),
  volume: volume(),
  remote_volume: volume(),
}))

/** CLI/controller → array: one of the group verbs, run where 3PAR runs it. */
export const rcVerb = defineMessage('rc-verb', () => ({
  group: field.name(),
  verb: z.enum(RC_VERBS),
  /** failover onto volumes that never completed a sync. */
  force: z.boolean().optional(),
}))

export const rcStatusRequest = defineMessage('rc-status-request', () => ({ group: field.name().optional() }))

export const rcVolumeStatusSchema = z.strictObject({
  volume: volume(),
  remote_volume: volume(),
  state: z.enum(RC_VOLUME_STATES),
  bytes_behind: field.uint(),
})

export const rcGroupStatusSchema = z.strictObject({
  group: field.name(),
  partner: field.name(),
  role: rcRoleSchema,
  mode: rcModeSchema,
  /** Periodic mode: time between delta cycles, already scaled by the lab's timeScale. */
  period_ms: field.uint().optional(),
  started: z.boolean(),
  link_up: z.boolean(),
  /** The partner's role as its last rc-hello told it since the link came up; absent until then. */
  partner_role: rcRoleSchema.optional(),
  /** The consistent point the partner last completed (ms on this array's clock); absent if never. */
  last_sync_ms: field.time_ms().optional(),
  bytes_behind: field.uint(),
  bytes_resynced_total: field.uint(),
  /** Raised by every failover: when both arrays act as primary, the higher one holds the current copy. */
  generation: field.uint(),
  volumes: field.list(rcVolumeStatusSchema, GROUP_VOLUMES_MAX),
  /** What a write does while the partner is unreachable: no_fail_wrt_on_err acknowledges on this array alone (NotSynced), fail_wrt_on_err refuses it. */
  write_error_policy: z.enum(RC_WRITE_ERROR_POLICIES).optional(),
  /** Sync mode: how long a write may wait for the partner's acknowledgement before the link counts as failed. */
  sync_write_timeout_ms: field.uint().optional(),
  /** Sync mode: host writes waiting for the partner now, and how many of them are past sync_write_timeout_ms (stuck). */
  sync_writes_waiting: field.uint().optional(),
  sync_writes_overdue: field.uint().optional(),
  /** This array's link session with the partner (rc-hello); raised by every link-up and link failure. */
  incarnation: field.uint().optional(),
  /** Times the link failed while connected (a write refused by the partner or past its timeout, an input dropped). */
  link_failures_total: field.uint().optional(),
  /** The last such failure: its stable code, a reason for people, when (ms on this array's clock). */
  last_link_failure: z.strictObject({ code: z.enum(ERROR_CODES), reason: field.text(1024), at_ms: field.time_ms() }).optional(),
  /** The group's journal was damaged when the array opened it; present until a full resync has completed. */
  journal_damaged: z.literal(true).optional(),
})

export const rcStatus = defineMessage('rc-status', () => ({ groups: field.list(rcGroupStatusSchema, GROUPS_LISTED_MAX) }))

// ---------------------------------------------------------------- array ↔ array

/** Either side on link-up and after a change: who I am in this group now. */
export const rcHello = defineMessage('rc-hello', () => ({
  group: field.name(),
  role: rcRoleSchema,
  started: z.boolean(),
  /** Raised by every failover; when both arrays act as primary, the higher one is current. */
  generation: field.uint(),
  /**
   * The sender's link session (raised by every link-up and link failure, durable before
   * this hello is sent): its rc-writes carry it, and a new one resets what the receiver
   * expects of them (remote-copy-group.ts).
   */
  incarnation: field.uint(),
}))

/** Primary → secondary: a volume pair was admitted; `volume` is the receiver's name. */
export const rcAdmitPeer = defineMessage('rc-admit-peer', () => ({
  group: field.name(),
  volume: volume(),
  remote_volume: volume(),
  block_count: field.uint(),
}))

/** Source → target: one host write, in group write order within the source's link session `incarnation` (sync mode); attachment = data. */
export const rcWrite = defineMessage(
  'rc-write',
  () => ({
    group: field.name(),
    incarnation: field.uint(),
    seq: field.uint(),
    volume: volume(),
    block: field.uint(),
    blocks: blockCount(),
  }),
  { attachment: 'required' },
)
/** Target → source: rc-write (`incarnation`, `seq`) is durable on the target. */
export const rcWriteAck = defineMessage('rc-write-ack', () => ({ group: field.name(), incarnation: field.uint(), seq: field.uint() }))
/**
 * Target → source: rc-write (`incarnation`, `seq`) was refused and not written; `code` says
 * why (a stale link session or order: HVLAB_E_PROTOCOL; a full input queue:
 * HVLAB_E_BACKPRESSURE; …). The source treats it as a link failure.
 */
export const rcWriteNack = defineMessage('rc-write-nack', () => ({
  group: field.name(),
  incarnation: field.uint(),
  seq: field.uint(),
  code: z.enum(ERROR_CODES),
  reason: field.text(1024),
}))

/** Source → target: a resync/delta cycle starts from the consistent point taken at `consistent_at_ms`. */
export const rcCycleBegin = defineMessage('rc-cycle-begin', () => ({
  group: field.name(),
  cycle: field.uint(),
  consistent_at_ms: field.time_ms(),
}))
/** Source → target: a batch of changed blocks of one volume; attachment = blocks in list order. */
export const rcBlocks = defineMessage(
  'rc-blocks',
  () => ({
    group: field.name(),
    cycle: field.uint(),
    batch: field.uint(),
    volume: volume(),
    block_list: field.list(field.uint(), BLOCKS_PER_BATCH_MAX).min(1),
  }),
  { attachment: 'required' },
)
/** Target → source: batch `batch` is durable; `blocks`: how many blocks it carried (a compared batch sends only those that differ). */
export const rcBlocksAck = defineMessage('rc-blocks-ack', () => ({
  group: field.name(),
  cycle: field.uint(),
  batch: field.uint(),
  blocks: field.uint().optional(),
}))
/** Source → target: every block of the cycle was acknowledged; the target is at the consistent point. */
export const rcCycleEnd = defineMessage('rc-cycle-end', () => ({
  group: field.name(),
  cycle: field.uint(),
  consistent_at_ms: field.time_ms(),
}))
export const rcCycleDone = defineMessage('rc-cycle-done', () => ({ group: field.name(), cycle: field.uint() }))

/** A role change that both arrays of a group make together. */
export const rcRoleChange = defineMessage('rc-role-change', () => ({
  group: field.name(),
  op: z.enum(['recover', 'restore', 'reverse', 'switchover']),
}))
export const rcRoleChangeAck = defineMessage('rc-role-change-ack', () => ({
  group: field.name(),
  op: z.enum(['recover', 'restore', 'reverse', 'switchover']),
  role: rcRoleSchema,
}))

/**
 * Old primary → Primary-Rev during recover: the blocks it changed that the other side
 * may not have. `volume` is the receiver's name; attachment = a bitmap, bit i = block i.
 */
export const rcDirtySet = defineMessage('rc-dirty-set', () => ({ group: field.name(), volume: volume(), block_count: field.uint() }), {
  attachment: 'required',
})

/** sha256 is 32 bytes; a hash list is that many bytes per block, in list order. */
export const BLOCK_HASH_BYTES = 32

/**
 * Source → target (request) during a full resync: the sha256 of each block of
 * `block_list` of `volume` (the receiver's name) as the target holds it now, so that only
 * blocks that differ are sent. Reply: rc-hash-list. At most BLOCKS_PER_BATCH_MAX blocks.
 */
export const rcHashRequest = defineMessage('rc-hash-request', () => ({
  group: field.name(),
  cycle: field.uint(),
  volume: volume(),
  block_list: field.list(field.uint(), BLOCKS_PER_BATCH_MAX).min(1),
}))
/** Target → source (reply to rc-hash-request); attachment = BLOCK_HASH_BYTES per block, in list order. */
export const rcHashList = defineMessage(
  'rc-hash-list',
  () => ({ group: field.name(), cycle: field.uint(), volume: volume(), blocks: z.number().int().min(1).max(BLOCKS_PER_BATCH_MAX) }),
  { attachment: 'required' },
)

export const storageMessages = [
  blockWrite,
  blockWritten,
  blockRead,
  blockData,
  blockWritePattern,
  blockDigestRequest,
  blockDigest,
  volumeCreate,
  volumeGrow,
  volumeRemove,
  volumeList,
  volumeListing,
  diskFaultSet,
  diskFaults,
  lunPresent,
  lunUnpresent,
  lunPresentations,
  rcCreate,
  rcAdmit,
  rcVerb,
  rcStatusRequest,
  rcStatus,
  rcHello,
  rcAdmitPeer,
  rcWrite,
  rcWriteAck,
  rcWriteNack,
  rcCycleBegin,
  rcBlocks,
  rcBlocksAck,
  rcCycleEnd,
  rcCycleDone,
  rcRoleChange,
  rcRoleChangeAck,
  rcDirtySet,
  rcHashRequest,
  rcHashList,
] as const

export type RcPeerMessage =
  | z.infer<typeof rcHello.schema>
  | z.infer<typeof rcAdmitPeer.schema>
  | z.infer<typeof rcWrite.schema>
  | z.infer<typeof rcWriteAck.schema>
  | z.infer<typeof rcWriteNack.schema>
  | z.infer<typeof rcCycleBegin.schema>
  | z.infer<typeof rcBlocks.schema>
  | z.infer<typeof rcBlocksAck.schema>
  | z.infer<typeof rcCycleEnd.schema>
  | z.infer<typeof rcCycleDone.schema>
  | z.infer<typeof rcRoleChange.schema>
  | z.infer<typeof rcRoleChangeAck.schema>
  | z.infer<typeof rcDirtySet.schema>

export type RcGroupStatus = z.infer<typeof rcGroupStatusSchema>
