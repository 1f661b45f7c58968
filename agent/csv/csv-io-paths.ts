/**
 * The two I/O paths a CsvVolume uses on this host: DIRECT, block requests to the CSV's
 * array, and through the CSV's coordinator node over the cluster network (redirected I/O
 * and region changes, which the coordinator does itself when it is this host). Each
 * counts its bytes in hvlab_csv_io_bytes_total.
 */
import type { Message } from '../../shared/protocol/messages.js'
import type { CsvHostContext } from './csv-host-context.js'
import type { CsvRegionMetadata } from './csv-region-metadata.js'
import type { CoordinatorPath, DirectPath } from './csv-volume.js'

export function directPath(ctx: CsvHostContext, csv: string): DirectPath {
  const host = ctx.p.name
  return {
    async write(volume, block, data, epoch) {
      const e = ctx.mustExist(csv)
      await ctx.ask(
        e.array,
        { t: 'block-write', volume, host, epoch, block, blocks: data.length / e.block_size_bytes },
        'block-written',
        data,
      )
      ctx.bytes.inc({ path: 'direct' }, data.length)
    },
    async read(volume, block, blocks) {
      const e = ctx.mustExist(csv)
      const r = await ctx.ask(e.array, { t: 'block-read', volume, host, block, blocks }, 'block-data')
      ctx.bytes.inc({ path: 'direct' }, r.attachment.length)
      return r.attachment
    },
  }
}

export function coordinatorPath(ctx: CsvHostContext, metadata: CsvRegionMetadata, csv: string): CoordinatorPath {
  const from = ctx.p.name
  return {
    async write(owner, w, data) {
      await ctx.ask(owner, { t: 'csv-redirect-write', from, csv, ...w }, 'csv-redirect-written', data)
      ctx.bytes.inc({ path: 'redirected' }, data.length)
    },
    async read(owner, r) {
      const reply = await ctx.ask(owner, { t: 'csv-redirect-read', from, csv, ...r }, 'csv-redirect-data')
      ctx.bytes.inc({ path: 'redirected' }, reply.attachment.length)
      return reply.attachment
    },
    async region(owner, region, size_bytes) {
      if (owner === from) return metadata.change(csv, region, size_bytes)
      const q: Message = {
        t: 'csv-region-request',
        csv,
        region,
        op: size_bytes === null ? 'release' : 'allocate',
        forwarded: true,
        ...(size_bytes === null ? {} : { size_bytes }),
      }
      const r = await ctx.ask(owner, q, 'csv-region-reply')
      return r.message.allocation && { offset_block: r.message.allocation.offset_block, blocks: r.message.allocation.blocks }
    },
  }
}
