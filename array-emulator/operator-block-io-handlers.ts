/**
 * The operator's test and demo I/O on the array's volumes (the CLI's `array write` and
 * `array read`): write seeded test data to a range of blocks as a host would (masking and
 * fencing apply), and digest a range. Only the operator may ask for these, never a host.
 */
import type { LabProcess } from '../shared/lab-process.js'
import { patternData } from '../shared/block-pattern.js'
import type { BlockIo } from './block-io.js'
import type { VolumeStore } from './volume-store.js'

export function serveOperatorBlockIo(p: LabProcess, store: VolumeStore, io: BlockIo): void {
  p.serveOperator('block-write-pattern', async (m) => {
    const bs = store.block_size_bytes
    await io.write(m, patternData(m.pattern, m.block, m.blocks, bs))
    return { t: 'block-written', volume: m.volume, block: m.block, blocks: m.blocks }
  })
  p.serveOperator('block-digest-request', async (m) => {
    const d = await io.digest(m)
    return { t: 'block-digest', volume: m.volume, block: m.block, blocks: m.blocks, ...d }
  })
}
