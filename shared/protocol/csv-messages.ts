/**
 * Messages of Cluster Shared Volumes (agent/csv/): the operator's requests (create, move,
 * list, region allocate/release, test I/O), the per-node I/O state, and the host ↔ host
 * traffic — region requests forwarded to the CSV's coordinator node and the I/O a node
 * without a path to the array redirects through it (data as the frame's attachment).
 */
import { z } from 'zod'
import { defineMessage, field } from './define.js'
import { BLOCKS_PER_IO_MAX, PATTERN_SEED_CHARS_MAX } from './storage-messages.js'

export const CSV_LISTED_MAX = 16
export const CSV_REGIONS_LISTED_MAX = 64
/** Largest CSV the CLI creates (sparse files on the array). */
export const CSV_SIZE_BYTES_MAX = 64 * 2 ** 30

/** CSV names are shorter than other names so that `csv/NAME/region/VM` fits a database key (128). */
export const CSV_NAME_CHARS_MAX = 48
export const CSV_NAME_RE = new RegExp(`^[a-z0-9][a-z0-9._-]{0,${CSV_NAME_CHARS_MAX - 1}}$`)

const csvName = () =>
  z.string().regex(CSV_NAME_RE, `a CSV name is 1–${CSV_NAME_CHARS_MAX} of a-z 0-9 . _ - starting with a letter or digit`)
const blockCount = () => z.number().int().min(1).max(BLOCKS_PER_IO_MAX)
const ioPath = z.enum(['direct', 'redirected'])

export const csvRegionSchema = z.strictObject({ region: field.name(), offset_block: field.uint(), blocks: field.uint() })
export const csvInfoSchema = z.strictObject({
  name: csvName(),
  array: field.name(),
  volume: field.name(),
  size_bytes: field.uint(),
  block_size_bytes: field.u32(),
  /** The coordinator node (owner of the metadata). */
  owner: field.name(),
  regions: field.list(csvRegionSchema, CSV_REGIONS_LISTED_MAX),
})
export type CsvInfo = z.infer<typeof csvInfoSchema>

export const csvNodeStateSchema = z.strictObject({
  csv: csvName(),
  mode: z.enum(['Direct', 'Redirected']),
  state_info: z.enum(['Direct', 'BlockRedirected']),
  reason: z.enum(['NotBlockRedirected', 'NoDiskConnectivity']),
  detail: field.text(512),
  since_ms: field.time_ms(),
  bytes_direct: field.uint(),
  bytes_redirected: field.uint(),
  /** I/O this node did for others as their coordinator node. */
  bytes_served: field.uint(),
})
export type CsvNodeState = z.infer<typeof csvNodeStateSchema>

// ---------------------------------------------------------------- operator → host

export const csvCreateRequest = defineMessage('csv-create-request', () => ({
  name: csvName(),
  array: field.name(),
  size_bytes: z.number().int().min(1).max(CSV_SIZE_BYTES_MAX),
}))
export const csvMoveRequest = defineMessage('csv-move-request', () => ({ name: csvName(), to: field.name() }))
export const csvListRequest = defineMessage('csv-list-request', () => ({}))
export const csvListReply = defineMessage('csv-list-reply', () => ({ from: field.name(), csvs: field.list(csvInfoSchema, CSV_LISTED_MAX) }))
export const csvStateRequest = defineMessage('csv-state-request', () => ({}))
export const csvStateReply = defineMessage('csv-state-reply', () => ({
  host: field.name(),
  volumes: field.list(csvNodeStateSchema, CSV_LISTED_MAX),
}))
/** Write test data (derived from `pattern`, see shared/block-pattern.ts) through this host's CSV I/O path. */
export const csvWriteRequest = defineMessage('csv-write-request', () => ({
  csv: csvName(),
  region: field.name(),
  block: field.uint(),
  blocks: blockCount(),
  pattern: z.string().min(1).max(PATTERN_SEED_CHARS_MAX),
}))
export const csvReadRequest = defineMessage('csv-read-request', () => ({
  csv: csvName(),
  region: field.name(),
  block: field.uint(),
  blocks: blockCount(),
}))
export const csvIoReply = defineMessage('csv-io-reply', () => ({
  host: field.name(),
  path: ioPath,
  /** The coordinator node that did redirected I/O, or null for direct. */
  via: field.name().nullable(),
  sha256: field.sha256Hex(),
}))

// ---------------------------------------------------------------- operator/host → coordinator node

/** Allocate or release a region; a host that is not the coordinator node forwards it there (`forwarded`). */
export const csvRegionRequest = defineMessage('csv-region-request', () => ({
  csv: csvName(),
  region: field.name(),
  op: z.enum(['allocate', 'release']),
  size_bytes: field.uint().optional(),
  forwarded: z.boolean(),
}))
export const csvRegionReply = defineMessage('csv-region-reply', () => ({
  csv: csvName(),
  region: field.name(),
  /** Null after a release. */
  allocation: csvRegionSchema.nullable(),
  owner: field.name(),
}))

/** Host → coordinator node: write on my behalf (I have no path to the array); attachment = data. */
export const csvRedirectWrite = defineMessage(
  'csv-redirect-write',
  () => ({ from: field.name(), csv: csvName(), region: field.name(), block: field.uint(), blocks: blockCount(), epoch: field.uint() }),
  { attachment: 'required' },
)
export const csvRedirectWritten = defineMessage('csv-redirect-written', () => ({ csv: csvName(), blocks: blockCount() }))
export const csvRedirectRead = defineMessage('csv-redirect-read', () => ({
  from: field.name(),
  csv: csvName(),
  region: field.name(),
  block: field.uint(),
  blocks: blockCount(),
}))
export const csvRedirectData = defineMessage('csv-redirect-data', () => ({ csv: csvName(), blocks: blockCount() }), {
  attachment: 'required',
})

/**
 * Coordinator node → another node: can you reach the CSV's array yourself? (It checks now,
 * with a one-block read.) Asked by a coordinator node that lost its own path, to hand the
 * CSV to a node that has one.
 */
export const csvPathCheck = defineMessage('csv-path-check', () => ({ csv: csvName() }))
export const csvPathChecked = defineMessage('csv-path-checked', () => ({
  csv: csvName(),
  host: field.name(),
  direct: z.boolean(),
  detail: field.text(512),
}))

export const csvMessages = [
  csvCreateRequest,
  csvMoveRequest,
  csvListRequest,
  csvListReply,
  csvStateRequest,
  csvStateReply,
  csvWriteRequest,
  csvReadRequest,
  csvIoReply,
  csvRegionRequest,
  csvRegionReply,
  csvRedirectWrite,
  csvRedirectWritten,
  csvRedirectRead,
  csvRedirectData,
  csvPathCheck,
  csvPathChecked,
] as const
