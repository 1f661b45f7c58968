/**
 * The answer to a `csv-region-request` (allocate or release a region): from the operator it
 * goes through this host's CsvVolume (which finds the coordinator node); forwarded by
 * another host it is this host's own metadata work as coordinator node.
 */
import { HvlabError } from '../../shared/errors.js'
import type { Message, MessageOf } from '../../shared/protocol/messages.js'
import type { CsvHostContext } from './csv-host-context.js'
import { checkRegionName, type RegionRecord } from './csv-record.js'
import type { CsvRegionMetadata } from './csv-region-metadata.js'
import type { CsvVolumes } from './csv-volumes.js'

export async function answerRegionRequest(
  ctx: CsvHostContext,
  volumes: CsvVolumes,
  metadata: CsvRegionMetadata,
  q: MessageOf<'csv-region-request'>,
): Promise<Message> {
  checkRegionName(q.region)
  const e = ctx.mustExist(q.csv)
  if (q.op === 'allocate' && (q.size_bytes === undefined || q.size_bytes < 1))
    throw new HvlabError('HVLAB_E_USAGE', `allocating region ${q.region} needs a size in bytes`)
  let allocation: RegionRecord | null = null
  if (q.forwarded) allocation = await metadata.change(q.csv, q.region, q.op === 'allocate' ? q.size_bytes! : null)
  else if (q.op === 'allocate') allocation = await volumes.volume(q.csv).allocateRegion(q.region, q.size_bytes!)
  else await volumes.volume(q.csv).releaseRegion(q.region)
  return {
    t: 'csv-region-reply',
    csv: q.csv,
    region: q.region,
    allocation: allocation && { region: q.region, ...allocation },
    owner: ctx.db.entry(q.csv)?.owner ?? e.owner,
  }
}
