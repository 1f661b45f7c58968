/**
 * The line format of a host's disk write journal (agent/vm/disk-write-journal.ts writes it;
 * the soak, scripts/soak, reads it): one JSON line per guest write when it is issued and one
 * when it has completed. Shared because a writer and a reader in two roles agree on it.
 *
 *   {"t":"issued","vm":"web1","host":"host-a1","array":"array-a","volume":"web1-disk0","epoch":7,"seq":12,"block":12,"value":9,"at_ms":…}
 *   {"t":"acked"|"refused"|"failed","vm":"web1","host":"host-a1","epoch":7,"seq":12,"block":12,"at_ms":…,"code":"HVLAB_E_…"|null}
 *
 * A data disk's lines (`vm create --disks N`) carry `"disk":K` (1…): each disk has its own
 * write sequence; absent: disk 0.
 */
import { z } from 'zod'
import { parseJsonLine } from './json-syntax.js'
import { field } from './protocol/define.js'

/** A line longer than this is not one the journal wrote. */
export const DISK_JOURNAL_LINE_CHARS_MAX = 2048
const NAME_CHARS_MAX = 128

const name = () => z.string().min(1).max(NAME_CHARS_MAX)
const errorCode = () => z.string().regex(/^HVLAB_E_[A-Z_]{1,48}$/)

export const diskJournalIssuedLine = z.strictObject({
  t: z.literal('issued'),
  vm: name(),
  host: name(),
  array: name(),
  volume: name(),
  epoch: field.uint(),
  seq: field.uint(),
  block: field.uint(),
  value: field.u32(),
  at_ms: field.uint(),
  disk: field.uint().optional(),
})

export const diskJournalCompletedLine = z.strictObject({
  t: z.enum(['acked', 'refused', 'failed']),
  vm: name(),
  host: name(),
  epoch: field.uint(),
  seq: field.uint(),
  block: field.uint(),
  at_ms: field.uint(),
  code: errorCode().nullable(),
  disk: field.uint().optional(),
})

/** One line of a disk write journal. */
export const diskJournalLine = z.union([diskJournalIssuedLine, diskJournalCompletedLine])
export type DiskJournalLine = z.infer<typeof diskJournalLine>
export type DiskJournalIssued = z.infer<typeof diskJournalIssuedLine>
export type DiskJournalCompleted = z.infer<typeof diskJournalCompletedLine>

/** One line (without its newline) as the journal wrote it, or null when it is not one (torn, foreign, out of bounds). */
export function parseDiskJournalLine(text: string): DiskJournalLine | null {
  const parsed = diskJournalLine.safeParse(parseJsonLine(text, DISK_JOURNAL_LINE_CHARS_MAX))
  return parsed.success ? parsed.data : null
}
