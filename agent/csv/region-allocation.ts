/**
 * Where a VM's disk (a region) goes inside a CSV, and which volume blocks an I/O to a
 * region touches. Pure: the coordinator node decides allocations with it, every node
 * translates I/O with it. Regions never overlap and never leave the volume.
 */
import { HvlabError } from '../../shared/errors.js'
import type { RegionRecord } from './csv-record.js'

/** First fit: the lowest offset where `blocks` fit between the existing regions. */
export function allocateBlocks(
  existing: ReadonlyMap<string, RegionRecord>,
  volume_blocks: number,
  blocks: number,
  what: string,
): RegionRecord {
  if (!Number.isSafeInteger(blocks) || blocks < 1)
    throw new HvlabError('HVLAB_E_USAGE', `${what}: a region needs at least one block, not ${blocks}`)
  const taken = [...existing.values()].sort((a, b) => a.offset_block - b.offset_block)
  let at = 0
  let free = 0
  for (const r of taken) {
    if (r.offset_block - at >= blocks) return { offset_block: at, blocks }
    free += Math.max(0, r.offset_block - at)
    at = Math.max(at, r.offset_block + r.blocks)
  }
  if (volume_blocks - at >= blocks) return { offset_block: at, blocks }
  free += Math.max(0, volume_blocks - at)
  throw new HvlabError(
    'HVLAB_E_REFUSED',
    `${what}: no room for ${blocks} blocks (${free} blocks free in all, none of the gaps is big enough); release a region or create a bigger CSV`,
  )
}

/** Do any two regions overlap, or does one leave the volume? (an invariant check) */
export function layoutProblems(regions: ReadonlyMap<string, RegionRecord>, volume_blocks: number): string[] {
  const problems: string[] = []
  const sorted = [...regions.entries()].sort(([, a], [, b]) => a.offset_block - b.offset_block)
  sorted.forEach(([name, r], i) => {
    if (r.offset_block + r.blocks > volume_blocks)
      problems.push(`region ${name} ends at block ${r.offset_block + r.blocks}, past the volume's ${volume_blocks}`)
    const next = sorted[i + 1]
    if (next && r.offset_block + r.blocks > next[1].offset_block) problems.push(`regions ${name} and ${next[0]} overlap`)
  })
  return problems
}

/** The volume block where an I/O of `blocks` blocks at region block `block` starts; throws if it leaves the region. */
export function volumeBlock(region: RegionRecord, block: number, blocks: number, what: string): number {
  if (!Number.isSafeInteger(block) || block < 0 || !Number.isSafeInteger(blocks) || blocks < 1 || block + blocks > region.blocks) {
    throw new HvlabError(
      'HVLAB_E_REFUSED',
      `${what}: blocks ${block}..${block + blocks - 1} are outside the region's ${region.blocks} blocks (0..${region.blocks - 1}); nothing was read or written`,
    )
  }
  return region.offset_block + block
}
