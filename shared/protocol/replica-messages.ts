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
import { defineMessage, field } from './define.js'

/** Why a replica did not apply a shipment (agent/replica/shipment-check.ts decides). */
export const SHIPMENT_REFUSALS = ['replayed', 'cycle-gap', 'from-future', 'wrong-vm', 'malformed'] as const
export type ShipmentRefusal = (typeof SHIPMENT_REFUSALS)[number]

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

export const replicaMessages = [replicaLogPart, replicaLogAnswer] as const
