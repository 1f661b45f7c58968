/**
 * The coordinator node's metadata work on its CSVs: allocate or release a region (a VM
 * disk's blocks), or remove the CSV's record, one change at a time per CSV, committed through the quorum. Only the
 * coordinator node of the CSV, holding quorum, does it; the others forward to it.
 */
import { HvlabError } from '../../shared/errors.js'
import { SerialQueue } from '../../shared/serial-queue.js'
import type { CsvHostContext } from './csv-host-context.js'
import { REGIONS_PER_CSV_MAX, blockCount, csvKey, encodeRegion, regionKey, type CsvEntry, type RegionRecord } from './csv-record.js'
import { allocateBlocks } from './region-allocation.js'

export class CsvRegionMetadata {
  private readonly queues = new Map<string, SerialQueue>()

  constructor(private readonly ctx: CsvHostContext) {}

  /** Allocates region `region` of `size_bytes` in CSV `csv` (or releases it, with null); the committed allocation. */
  change(csv: string, region: string, size_bytes: number | null): Promise<RegionRecord | null> {
    return this.queueOf(csv).run(async () => {
      const e = this.ownEntry(csv, `change the regions of CSV ${csv}`)
      return size_bytes === null ? this.release(e, region) : this.allocate(e, region, size_bytes)
    })
  }

  /**
   * Removes CSV `csv`'s record (`hvlab csv remove`), in turn with its region changes so none
   * can slip in; refused while it has regions. The entry as it was.
   */
  remove(csv: string): Promise<CsvEntry> {
    return this.queueOf(csv).run(async () => {
      const e = this.ownEntry(csv, `remove CSV ${csv}`)
      if (e.regions.size > 0) {
        const regions = [...e.regions.keys()].join(', ')
        throw new HvlabError(
          'HVLAB_E_STATE',
          `cannot remove CSV ${csv}: regions ${regions} are allocated in it; a VM's disk is the region named after the VM (\`hvlab vm remove NAME\`), release any other with \`hvlab csv release ${csv} --region NAME\``,
        )
      }
      await this.ctx.db.commit(csvKey(csv), null)
      return e
    })
  }

  private queueOf(csv: string): SerialQueue {
    let q = this.queues.get(csv)
    if (!q) this.queues.set(csv, (q = new SerialQueue()))
    return q
  }

  /** CSV `csv`, which this host must coordinate, holding quorum, to `what`. */
  private ownEntry(csv: string, what: string): CsvEntry {
    const { p } = this.ctx
    const e = this.ctx.mustExist(csv)
    if (e.owner !== p.name)
      throw new HvlabError(
        'HVLAB_E_STATE',
        `${p.name} is not the coordinator node of CSV ${csv} (${e.owner} is); retry, the request follows the coordinator`,
      )
    this.ctx.requireQuorum(what)
    return e
  }

  private async release(e: CsvEntry, region: string): Promise<null> {
    if (!e.regions.has(region)) return null
    await this.ctx.db.commit(regionKey(e.name, region), null)
    this.ctx.p.emitEvent('csv.region-released', { csv: e.name, region, coordinator: this.ctx.p.name })
    return null
  }

  private async allocate(e: CsvEntry, region: string, size_bytes: number): Promise<RegionRecord> {
    const csv = e.name
    const existing = e.regions.get(region)
    const blocks = Math.ceil(size_bytes / e.block_size_bytes)
    if (existing !== undefined) {
      if (existing.blocks === blocks) return existing
      throw new HvlabError(
        'HVLAB_E_STATE',
        `CSV ${csv} already has region ${region} of ${existing.blocks} blocks; release it first to change its size`,
      )
    }
    if (e.regions.size >= REGIONS_PER_CSV_MAX)
      throw new HvlabError('HVLAB_E_REFUSED', `CSV ${csv} already holds ${REGIONS_PER_CSV_MAX} regions (its limit); release one first`)
    const r = allocateBlocks(e.regions, blockCount(e), blocks, `allocate region ${region} in CSV ${csv}`)
    await this.ctx.db.commit(regionKey(csv, region), encodeRegion(r))
    this.ctx.p.emitEvent('csv.region-allocated', {
      csv,
      region,
      offset_block: r.offset_block,
      blocks: r.blocks,
      coordinator: this.ctx.p.name,
    })
    return r
  }
}
