/**
 * Which regions of a volume were written since the array created it: the allocation map of
 * a thin volume, as a real array keeps the pages it has allocated. A read of regions never
 * written returns zeros without touching the file (a new VM's disk is almost all such
 * regions, and its first remote-copy sync reads it whole on both arrays).
 *
 * Kept in memory only. A volume the array opens from disk (after a restart) counts as
 * written throughout, which is always safe: it is only read from the file, as before.
 * A region is marked before its write is issued, so a read racing the write reads the file.
 */
/** Blocks per region: 1 MiB of 4 KiB blocks, one byte of map each (64 KiB for a 64 GiB volume). */
export const REGION_BLOCKS = 256

export class WrittenRegions {
  /** One byte per region, 1 once written; null: every region counts as written. */
  private map: Uint8Array | null

  private constructor(map: Uint8Array | null) {
    this.map = map
  }

  /** A volume the array has just created: nothing written. */
  static empty(block_count: number): WrittenRegions {
    return new WrittenRegions(new Uint8Array(regionsOf(block_count)))
  }

  /** A volume opened from disk: what was written is not known, so all of it counts. */
  static unknown(): WrittenRegions {
    return new WrittenRegions(null)
  }

  markWritten(block: number, blocks: number): void {
    if (this.map === null) return
    this.map.fill(1, Math.floor(block / REGION_BLOCKS), Math.floor((block + blocks - 1) / REGION_BLOCKS) + 1)
  }

  /** Whether any block of the range may have been written. */
  anyWritten(block: number, blocks: number): boolean {
    if (this.map === null) return true
    const last = Math.floor((block + blocks - 1) / REGION_BLOCKS)
    for (let r = Math.floor(block / REGION_BLOCKS); r <= last; r++) if (this.map[r] !== 0) return true
    return false
  }

  /** The volume grew to `block_count` blocks: the new regions are unwritten. */
  grow(block_count: number): void {
    if (this.map === null || regionsOf(block_count) <= this.map.length) return
    const next = new Uint8Array(regionsOf(block_count))
    next.set(this.map)
    this.map = next
  }
}

const regionsOf = (block_count: number): number => Math.ceil(block_count / REGION_BLOCKS)
