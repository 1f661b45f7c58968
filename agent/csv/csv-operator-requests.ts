/**
 * The operator's CSV requests on a host (`hvlab csv create|move|list|state|write|read|region`):
 * create makes the CSV's volume on the array, presents it to every host and commits the
 * record with this host as coordinator node; move commits another coordinator node; write
 * and read do pattern I/O through this host's CsvVolume.
 */
import { patternData, sha256Hex } from '../../shared/block-pattern.js'
import { HvlabError } from '../../shared/errors.js'
import type { CsvInfo } from '../../shared/protocol/csv-messages.js'
import type { Message, MessageOf } from '../../shared/protocol/messages.js'
import { expectReply, meshArrayAdmin, type ArrayAdmin } from '../clx/array-admin.js'
import type { CsvHostContext } from './csv-host-context.js'
import { CSVS_MAX, checkCsvName, csvKey, csvVolumeName, encodeCsv, type CsvEntry } from './csv-record.js'
import type { CsvRegionMetadata } from './csv-region-metadata.js'
import { answerRegionRequest } from './csv-region-request.js'
import type { CsvVolumes } from './csv-volumes.js'

export const CSV_ADMIN_TIMEOUT_MS = 5000

export function serveCsvOperator(ctx: CsvHostContext, volumes: CsvVolumes, metadata: CsvRegionMetadata): void {
  const { p, db, membership: m } = ctx
  const admin = meshArrayAdmin(p.mesh)
  p.serveOperator('csv-create-request', (q) => createCsv(ctx, admin, q))
  p.serveOperator('csv-move-request', (q) => moveCsv(ctx, q))
  p.serveOperator('csv-list-request', () => ({ t: 'csv-list-reply', from: p.name, csvs: [...db.all().csvs.values()].map(csvInfo) }))
  p.serveOperator('csv-state-request', () => volumes.states())
  p.serveOperator('csv-write-request', async (q) => {
    const e = ctx.mustExist(q.csv)
    const data = patternData(q.pattern, q.block, q.blocks, e.block_size_bytes)
    const r = await volumes.volume(q.csv).write({ region: q.region, block: q.block, blocks: q.blocks, data, epoch: m.view().epoch })
    return { t: 'csv-io-reply', host: p.name, path: r.path, via: r.via, sha256: sha256Hex(data) }
  })
  p.serveOperator('csv-read-request', async (q) => {
    const r = await volumes.volume(q.csv).read({ region: q.region, block: q.block, blocks: q.blocks })
    return { t: 'csv-io-reply', host: p.name, path: r.path, via: r.via, sha256: sha256Hex(r.data) }
  })
  p.serveOperator('csv-region-request', (q) => answerRegionRequest(ctx, volumes, metadata, { ...q, forwarded: false }))
}

function csvInfo(e: CsvEntry): CsvInfo {
  return {
    name: e.name,
    array: e.array,
    volume: e.volume,
    size_bytes: e.size_bytes,
    block_size_bytes: e.block_size_bytes,
    owner: e.owner,
    regions: [...e.regions].map(([region, r]) => ({ region, ...r })),
  }
}

async function createCsv(ctx: CsvHostContext, admin: ArrayAdmin, q: MessageOf<'csv-create-request'>): Promise<Message> {
  const { p, db } = ctx
  checkCsvName(q.name)
  ctx.requireQuorum(`create CSV ${q.name}`)
  if (db.entry(q.name)) throw new HvlabError('HVLAB_E_STATE', `CSV ${q.name} already exists; \`hvlab csv list\` shows it`)
  if (db.all().csvs.size >= CSVS_MAX) throw new HvlabError('HVLAB_E_REFUSED', `the cluster already has ${CSVS_MAX} CSVs (its limit)`)
  if (!p.topology.arrays.some((a) => a.name === q.array))
    throw new HvlabError('HVLAB_E_USAGE', `there is no array ${q.array}; the arrays are ${p.topology.arrays.map((a) => a.name).join(', ')}`)
  const vol = csvVolumeName(q.name)
  const listing = await createVolume(admin, q.array, vol, q.size_bytes)
  const size_bytes = listing.volumes.find((v) => v.volume === vol)?.size_bytes ?? q.size_bytes
  for (const h of p.topology.hosts) {
    await admin.request(q.array, { t: 'lun-present', volume: vol, host: h.name, initiators: [] }, CSV_ADMIN_TIMEOUT_MS)
  }
  await db.commit(
    csvKey(q.name),
    encodeCsv({ array: q.array, volume: vol, size_bytes, block_size_bytes: listing.block_size_bytes, owner: p.name }),
  )
  p.emitEvent('csv.created', { csv: q.name, array: q.array, volume: vol, size_bytes, coordinator: p.name })
  return { t: 'csv-list-reply', from: p.name, csvs: [csvInfo(ctx.mustExist(q.name))] }
}

/** Creates volume `vol` on `array`; the array's listing after. */
async function createVolume(admin: ArrayAdmin, array: string, vol: string, size_bytes: number): Promise<MessageOf<'volume-listing'>> {
  try {
    const reply = await admin.request(array, { t: 'volume-create', volume: vol, size_bytes }, CSV_ADMIN_TIMEOUT_MS)
    return expectReply(array, 'volume-create', reply, 'volume-listing')
  } catch (e) {
    // A create that failed half-way may have left the volume: reuse it if it is big enough.
    if (!(e instanceof HvlabError && e.code === 'HVLAB_E_STATE')) throw e
    const listing = expectReply(
      array,
      'volume-list',
      await admin.request(array, { t: 'volume-list' }, CSV_ADMIN_TIMEOUT_MS),
      'volume-listing',
    )
    const had = listing.volumes.find((v) => v.volume === vol)
    if (!had || had.size_bytes < size_bytes) throw e
    return listing
  }
}

async function moveCsv(ctx: CsvHostContext, q: MessageOf<'csv-move-request'>): Promise<Message> {
  const { p } = ctx
  const e = ctx.mustExist(q.name)
  ctx.requireQuorum(`move the coordinator of CSV ${q.name}`)
  const members = ctx.membership.view().members
  if (!members.includes(q.to))
    throw new HvlabError('HVLAB_E_STATE', `${q.to} is not a member of the cluster now (members: ${members.join(', ')}); pick one of them`)
  if (e.owner !== q.to) {
    await ctx.setOwner(e, q.to)
    p.emitEvent('csv.coordinator-moved', { csv: q.name, from: e.owner, to: q.to, reason: 'operator' })
  }
  return { t: 'csv-list-reply', from: p.name, csvs: [csvInfo(ctx.mustExist(q.name))] }
}
