/**
 * Live migration between two hosts: the source drives, the destination answers.
 *
 *   migration-begin (req)  → migration-ready        setup: config, skeleton VM, memory
 *   migration-pages (msg, attachment = page batch)  pre-copy data, in order, per round
 *   migration-round-end (req) → migration-round-ack the round is applied (stepped as it
 *                                                   arrives, answered once its batches are in)
 *   migration-applied (msg, destination → source)   batch bytes applied so far: the source keeps
 *                                                   what is in flight within the window granted
 *                                                   in migration-ready (a `paced` begin only)
 *   migration-blackout (req, attachment = device state) → migration-prepared
 *                                                   last pages applied, device state loaded
 *   migration-resume (req) → migration-running      destination runs the VM, announced
 *   migration-blackout with resume (req) → migration-running
 *                                                   both at once, when the storage needs
 *                                                   no hand-over between them (CSV)
 *   migration-abort (msg)                           source → destination: discard it all
 *
 * Page batches and device state are raw bytes in the frame's attachment, never msgpack
 * arrays. Every message names its migration; a destination checks it against the
 * migration it runs for that source.
 */
import { z } from 'zod'
import { defineMessage, field } from './define.js'

/** Pages of guest memory at most (4 GiB of 4 KiB pages; see agent/vm/guest-memory.ts). */
export const MIGRATION_PAGES_MAX = 1 << 20
/** Device state (vCPU registers, counters) is small. */
export const DEVICE_STATE_BYTES_MAX = 64 * 1024
/** Rounds numbered 0 (all memory) … ; the source's round cap keeps this far lower. */
export const MIGRATION_ROUND_MAX = 10_000

export const migrationIdSchema = z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, 'a migration id is 1–64 of A-Z a-z 0-9 _ -')
export const STORAGE_MODES = ['csv', 'owned', 'clx'] as const
export const storageModeSchema = z.enum(STORAGE_MODES)
export type StorageMode = z.infer<typeof storageModeSchema>

const round = () => z.number().int().min(0).max(MIGRATION_ROUND_MAX)

export const migrationBegin = defineMessage('migration-begin', () => ({
  migration_id: migrationIdSchema,
  vm: field.name(),
  page_count: z.number().int().min(1).max(MIGRATION_PAGES_MAX),
  storage: storageModeSchema,
  /** Hash destination memory once the last pages are in (costs blackout time). */
  verify: z.boolean(),
  /** The cluster's start op and epoch the VM will run under on the destination (absent outside a cluster). */
  placement: z.strictObject({ op: field.uint(), epoch: field.uint() }).optional(),
  /** The source paces its batches by migration-applied, which the destination then sends (and only then). */
  paced: z.literal(true).optional(),
}))

export const migrationReady = defineMessage('migration-ready', () => ({
  migration_id: migrationIdSchema,
  /** To a paced begin: batch bytes the source may have sent and not yet seen applied. */
  window_bytes: field.uint().min(1).optional(),
}))

export const migrationApplied = defineMessage('migration-applied', () => ({
  migration_id: migrationIdSchema,
  /** Bytes of the batches applied so far, every round together (attachment bytes, as sent). */
  bytes: field.uint(),
}))

export const migrationPages = defineMessage(
  'migration-pages',
  () => ({
    migration_id: migrationIdSchema,
    round: round(),
    /** 0, 1, 2 … within the round: the destination checks none is missing or repeated. */
    seq: field.u32(),
    /** The blackout's round: the guest is paused and waits for these pages (the destination applies them on its main thread). */
    final: z.literal(true).optional(),
  }),
  { attachment: 'required' },
)

export const migrationRoundEnd = defineMessage('migration-round-end', () => ({
  migration_id: migrationIdSchema,
  round: round(),
  batches: field.u32(),
}))

export const migrationRoundAck = defineMessage('migration-round-ack', () => ({
  migration_id: migrationIdSchema,
  round: round(),
  batches: field.u32(),
  pages: field.uint(),
}))

export const migrationBlackout = defineMessage(
  'migration-blackout',
  () => ({
    migration_id: migrationIdSchema,
    /** The final round, whose batches were sent with the guest paused. */
    round: round(),
    batches: field.u32(),
    /** Resume the VM at once, answering migration-running (no storage step comes between; never with verify). */
    resume: z.literal(true).optional(),
  }),
  { attachment: 'required' },
)

export const migrationPrepared = defineMessage('migration-prepared', () => ({
  migration_id: migrationIdSchema,
  /** sha256 of destination memory when the migration asked to verify, else null. */
  memory_sha256: field.sha256Hex().nullable(),
}))

export const migrationResume = defineMessage('migration-resume', () => ({
  migration_id: migrationIdSchema,
}))

export const migrationRunning = defineMessage('migration-running', () => ({
  migration_id: migrationIdSchema,
  /** The host the VM now runs on (announced to the virtual switch). */
  host: field.name(),
  /** When the guest resumed there: wall-clock ms (the system clock, `Date.now()`), comparable with the source's on one machine. */
  resumed_at_ms: field.time_ms().optional(),
}))

export const migrationAbort = defineMessage('migration-abort', () => ({
  migration_id: migrationIdSchema,
  reason: field.text(1024),
}))

export const migrationMessages = [
  migrationBegin,
  migrationReady,
  migrationPages,
  migrationRoundEnd,
  migrationRoundAck,
  migrationApplied,
  migrationBlackout,
  migrationPrepared,
  migrationResume,
  migrationRunning,
  migrationAbort,
] as const
