/**
 * Schema of the record a host keeps on disk (cluster.json): its acceptor record, view,
 * cluster database and ballot counter. A record read back after a restart is checked
 * before the state machine trusts it; a damaged one stops the process with a clear message.
 */
import { z } from 'zod'
import { acceptorRecordSchema, parseRecord, upgradeAcceptorRecord, upgradeView } from '../../shared/consensus/acceptor-record.js'
import { clusterDatabaseSchema, clusterViewSchema } from '../../shared/protocol/cluster-messages.js'
import { field } from '../../shared/protocol/define.js'
import type { NodeRecord } from './membership.js'

export const nodeRecordSchema = z.strictObject({
  acceptor: acceptorRecordSchema,
  view: clusterViewSchema,
  db: clusterDatabaseSchema,
  ballot_n: field.uint(),
  left: z.boolean(),
})

export const parseNodeRecord = (raw: unknown, file: string): NodeRecord => parseRecord(nodeRecordSchema, upgradeNodeRecord(raw), file)

/** A record of an earlier version read as this one (acceptor-record.ts upgradeView). */
function upgradeNodeRecord(raw: unknown): unknown {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return raw
  const r = raw as Record<string, unknown>
  return { ...r, view: upgradeView(r.view), acceptor: upgradeAcceptorRecord(r.acceptor) }
}
