/**
 * Schema of the acceptor record every voter keeps on disk (part of a host's cluster.json,
 * all of the witness's witness.json). A record read back after a restart is checked before
 * the state machine trusts it; a damaged one stops the process with a clear message.
 */
import { z } from 'zod'
import { HvlabError } from '../errors.js'
import { acceptedSchema, ballotSchema } from '../protocol/cluster-messages.js'
import { field } from '../protocol/define.js'
import type { AcceptorRecord } from './acceptor.js'

export const acceptorRecordSchema = z.strictObject({
  committed_epoch: field.uint(),
  db_epoch: field.uint(),
  promised: ballotSchema.nullable(),
  accepted: acceptedSchema.nullable(),
  lease_epoch: field.uint(),
  lease_until_ms: field.time_ms(),
})

/** `raw` checked against `schema`; throws HVLAB_E_INTERNAL naming `file` and the first problem. */
export function parseRecord<T>(schema: z.ZodType<T>, raw: unknown, file: string): T {
  const r = schema.safeParse(raw)
  if (r.success) return r.data
  const issue = r.error.issues[0]
  const where = issue?.path.length ? issue.path.join('.') : '(record)'
  throw new HvlabError(
    'HVLAB_E_INTERNAL',
    `${file} is damaged (${where}: ${issue?.message ?? 'invalid'}); move it away to start this process with a fresh record (it then rejoins and catches up)`,
  )
}

export const parseAcceptorRecord = (raw: unknown, file: string): AcceptorRecord =>
  parseRecord(acceptorRecordSchema, upgradeAcceptorRecord(raw), file)

/**
 * Records written before views carried `leases_end_ms` (a lab's data dir from an earlier
 * version) read as if it were 0: those views were decided only after every earlier lease
 * had run out.
 */
export function upgradeView(view: unknown): unknown {
  if (!isPlainObject(view) || 'leases_end_ms' in view) return view
  return { ...view, leases_end_ms: 0, removed_lease_end_ms: 0 }
}

/** An acceptor record with its accepted value's view upgraded (see upgradeView). */
export function upgradeAcceptorRecord(raw: unknown): unknown {
  if (!isPlainObject(raw) || !isPlainObject(raw.accepted) || !isPlainObject(raw.accepted.value)) return raw
  const value = { ...raw.accepted.value, view: upgradeView(raw.accepted.value.view) }
  return { ...raw, accepted: { ...raw.accepted, value } }
}

function isPlainObject(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x)
}
