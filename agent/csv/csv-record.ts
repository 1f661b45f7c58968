/**
 * How Cluster Shared Volumes live in the replicated cluster database: one entry per CSV
 * (`csv/NAME` → {array, volume, size_bytes, block_size_bytes, owner}; `owner` is the
 * coordinator node that does the CSV's metadata changes) and one per region inside it
 * (`csv/NAME/region/REGION` → {offset_block, blocks}; a VM's disk is a region named after
 * the VM). A damaged entry is skipped and reported, never trusted.
 */
import { z } from 'zod'
import { HvlabError } from '../../shared/errors.js'
import { CSV_NAME_CHARS_MAX, CSV_NAME_RE } from '../../shared/protocol/csv-messages.js'

export const CSV_KEY_PREFIX = 'csv/'
const REGION_INFIX = '/region/'
const NAME_RE = /^[a-z0-9][a-z0-9._-]{0,62}$/
/** Most regions (VM disks) in one CSV: each is a database entry, and the database holds 256 in all. */
export const REGIONS_PER_CSV_MAX = 64
/** Most CSVs in a cluster. */
export const CSVS_MAX = 16

const csvRecordSchema = z.strictObject({
  array: z.string().regex(NAME_RE),
  volume: z.string().regex(NAME_RE),
  size_bytes: z.number().int().positive().max(Number.MAX_SAFE_INTEGER),
  block_size_bytes: z
    .number()
    .int()
    .positive()
    .max(1 << 20),
  owner: z.string().regex(NAME_RE),
})
export type CsvRecord = z.infer<typeof csvRecordSchema>

const regionRecordSchema = z.strictObject({
  offset_block: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
  blocks: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER),
})
export type RegionRecord = z.infer<typeof regionRecordSchema>

export interface CsvEntry extends CsvRecord {
  name: string
  /** Regions by name, sorted by name. */
  regions: Map<string, RegionRecord>
}

export interface DecodedCsvs {
  csvs: Map<string, CsvEntry>
  damaged: { key: string; reason: string }[]
}

export function csvVolumeName(name: string): string {
  return `csv-${name}`
}
export function csvKey(name: string): string {
  return `${CSV_KEY_PREFIX}${name}`
}
export function regionKey(csv: string, region: string): string {
  return `${CSV_KEY_PREFIX}${csv}${REGION_INFIX}${region}`
}

export function checkCsvName(name: string): void {
  if (!CSV_NAME_RE.test(name)) {
    throw new HvlabError(
      'HVLAB_E_USAGE',
      `CSV name ${JSON.stringify(name.slice(0, 80))} is not valid: use 1–${CSV_NAME_CHARS_MAX} of a-z 0-9 . _ - starting with a letter or digit`,
    )
  }
}
export function checkRegionName(name: string): void {
  if (!NAME_RE.test(name))
    throw new HvlabError(
      'HVLAB_E_USAGE',
      `region name ${JSON.stringify(name.slice(0, 80))} is not valid: use 1–63 of a-z 0-9 . _ - (a VM name)`,
    )
}

export function blockCount(r: Pick<CsvRecord, 'size_bytes' | 'block_size_bytes'>): number {
  return Math.floor(r.size_bytes / r.block_size_bytes)
}

export const encodeCsv = (r: CsvRecord): string => JSON.stringify(csvRecordSchema.parse(r))
export const encodeRegion = (r: RegionRecord): string => JSON.stringify(regionRecordSchema.parse(r))

function parse<T>(schema: z.ZodType<T>, value: string): { ok: true; value: T } | { ok: false; reason: string } {
  let raw: unknown
  try {
    raw = JSON.parse(value)
  } catch {
    return { ok: false, reason: 'not JSON' }
  }
  const r = schema.safeParse(raw)
  return r.success ? { ok: true, value: r.data } : { ok: false, reason: r.error.issues[0]?.message ?? 'invalid' }
}

/** Every CSV and its regions in a database's entries. */
export function decodeCsvs(config: Readonly<Record<string, string>>): DecodedCsvs {
  const out: DecodedCsvs = { csvs: new Map(), damaged: [] }
  const regions: [string, string, string, string][] = []
  for (const [key, value] of Object.entries(config).sort(([a], [b]) => (a < b ? -1 : 1))) {
    if (!key.startsWith(CSV_KEY_PREFIX)) continue
    const rest = key.slice(CSV_KEY_PREFIX.length)
    const at = rest.indexOf(REGION_INFIX)
    if (at >= 0) {
      regions.push([key, rest.slice(0, at), rest.slice(at + REGION_INFIX.length), value])
      continue
    }
    if (!CSV_NAME_RE.test(rest)) {
      out.damaged.push({ key, reason: 'not a valid CSV name' })
      continue
    }
    const r = parse(csvRecordSchema, value)
    if (!r.ok) out.damaged.push({ key, reason: r.reason })
    else out.csvs.set(rest, { ...r.value, name: rest, regions: new Map() })
  }
  for (const [key, csv, region, value] of regions) {
    const entry = out.csvs.get(csv)
    if (entry === undefined) {
      out.damaged.push({ key, reason: `region of unknown CSV ${csv}` })
      continue
    }
    if (!NAME_RE.test(region)) {
      out.damaged.push({ key, reason: 'not a valid region name' })
      continue
    }
    const r = parse(regionRecordSchema, value)
    if (!r.ok) out.damaged.push({ key, reason: r.reason })
    else entry.regions.set(region, r.value)
  }
  return out
}
