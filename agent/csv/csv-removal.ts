/**
 * `hvlab csv remove`: the CSV's coordinator node removes its record from the cluster
 * database (refused while regions are allocated; csv-region-metadata.ts), then takes its
 * volume `csv-NAME` — which `csv create` made for it and presented to every host — off the
 * array: unpresented from each host, then removed. If the array cannot do that now, the
 * record is gone all the same and the reply says why the volume stays (remove it later
 * with `hvlab array volume remove ARRAY csv-NAME --unpresent`). Any host takes the
 * request and forwards it to the coordinator node once.
 */
import { describeError, isHvlabError } from '../../shared/errors.js'
import type { MessageOf } from '../../shared/protocol/messages.js'
import { askPeer } from '../../shared/transport/peer-ask.js'
import { expectReply, meshArrayAdmin, type ArrayAdmin } from '../clx/array-admin.js'
import type { CsvHostContext } from './csv-host-context.js'
import { CSV_ADMIN_TIMEOUT_MS } from './csv-operator-requests.js'
import { checkCsvName, type CsvEntry } from './csv-record.js'
import type { CsvRegionMetadata } from './csv-region-metadata.js'

/** A forwarded removal waits for the record's commit and the array's answers. */
export const CSV_REMOVE_TIMEOUT_MS = 30_000

type CsvRemoveReply = MessageOf<'csv-remove-reply'>

export function serveCsvRemoval(ctx: CsvHostContext, metadata: CsvRegionMetadata): void {
  const admin = meshArrayAdmin(ctx.p.mesh)
  const handle = (q: MessageOf<'csv-remove-request'>, forwarded: boolean): Promise<CsvRemoveReply> =>
    removeCsv(ctx, metadata, admin, q.name, forwarded)
  ctx.p.serveOperator('csv-remove-request', (q) => handle(q, false))
  ctx.p.onPeer((conn) => {
    if (ctx.p.isClusterPeer(conn)) conn.onRequest('csv-remove-request', async ({ message: q }) => ({ message: await handle(q, true) }))
  })
}

async function removeCsv(
  ctx: CsvHostContext,
  metadata: CsvRegionMetadata,
  admin: ArrayAdmin,
  name: string,
  forwarded: boolean,
): Promise<CsvRemoveReply> {
  const { p } = ctx
  checkCsvName(name)
  const owner = ctx.mustExist(name).owner
  if (owner !== p.name && !forwarded) {
    const q = { t: 'csv-remove-request', name, forwarded: true } as const
    return (await askPeer(p.mesh, p.name, owner, q, 'csv-remove-reply', { timeout_ms: CSV_REMOVE_TIMEOUT_MS })).message
  }
  const e = await metadata.remove(name)
  const volume = await removeVolume(admin, e)
  p.emitEvent('csv.removed', { csv: name, array: e.array, volume: e.volume, coordinator: p.name, volume_removed: volume.removed })
  return {
    t: 'csv-remove-reply',
    name,
    array: e.array,
    volume: e.volume,
    coordinator: p.name,
    unpresented: volume.unpresented,
    volume_removed: volume.removed,
    volume_kept_because: volume.kept_because,
  }
}

/** Unpresents the CSV's volume from every host and removes it; what it did, and why not when it could not. */
async function removeVolume(
  admin: ArrayAdmin,
  e: CsvEntry,
): Promise<{ unpresented: string[]; removed: boolean; kept_because: CsvRemoveReply['volume_kept_because'] }> {
  const unpresented: string[] = []
  try {
    const listing = expectReply(
      e.array,
      'volume-list',
      await admin.request(e.array, { t: 'volume-list' }, CSV_ADMIN_TIMEOUT_MS),
      'volume-listing',
    )
    const v = listing.volumes.find((x) => x.volume === e.volume)
    if (v === undefined) return { unpresented, removed: false, kept_because: null } // gone already
    for (const host of v.presented_to) {
      await admin.request(e.array, { t: 'lun-unpresent', volume: e.volume, host }, CSV_ADMIN_TIMEOUT_MS)
      unpresented.push(host)
    }
    await admin.request(e.array, { t: 'volume-remove', volume: e.volume }, CSV_ADMIN_TIMEOUT_MS)
    return { unpresented, removed: true, kept_because: null }
  } catch (err) {
    const code = isHvlabError(err) ? err.code : 'HVLAB_E_INTERNAL'
    return { unpresented, removed: false, kept_because: { code, reason: describeError(err).slice(0, 1024) } }
  }
}
