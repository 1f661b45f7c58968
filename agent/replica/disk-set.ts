/**
 * A VM's disks as Hyper-V Replica sees them, PURE: one block space in which block b of disk
 * k is block k × blocks_per_disk + b (a lab VM's disks are all of one size: `vm create
 * --disks N`). The replica log, its shipments, the replica's image, a resync, an export and
 * a recovery point all work on that one space, so a point holds every disk at one moment
 * (crash-consistent across them, as Replica's one log per VM is).
 *
 * A disk left out of replication (`replica enable --disks`, Hyper-V's excluded paging disk)
 * costs no bandwidth: it is never logged, a resync does not compare it, and an export reads
 * it as blank. The replica keeps its range blank by itself (replica-vm.ts blanks what an
 * earlier setting sent there, or what the VM wrote while it ran there), so a VM that fails
 * over starts with that disk blank.
 */
import { HvlabError } from '../../shared/errors.js'

export interface DiskSet {
  /** Disks of the VM (1: disk 0 only). */
  readonly disks: number
  readonly blocks_per_disk: number
  /** The disks replicated, ascending; every one of them by default. */
  readonly included: readonly number[]
}

/** Every disk of `disks`, ascending. */
export const allDisks = (disks: number): number[] => Array.from({ length: disks }, (_, k) => k)

/** The set of `disks` disks of `blocks_per_disk` each, `included` (default all) replicated; throws on a disk it does not have. */
export function diskSet(disks: number, blocks_per_disk: number, included?: readonly number[]): DiskSet {
  if (!Number.isSafeInteger(disks) || disks < 1 || !Number.isSafeInteger(blocks_per_disk) || blocks_per_disk < 1)
    throw new HvlabError('HVLAB_E_INTERNAL', `a disk set needs disks and blocks per disk, got ${disks} × ${blocks_per_disk}`)
  const chosen = included === undefined ? allDisks(disks) : [...new Set(included)].sort((a, b) => a - b)
  const missing = chosen.find((k) => !Number.isSafeInteger(k) || k < 0 || k >= disks)
  if (missing !== undefined)
    throw new HvlabError(
      'HVLAB_E_USAGE',
      `the VM has ${disks} disk(s), 0–${disks - 1}; it has no disk ${missing} to replicate — name its disks with --disks 0,1,…`,
    )
  return { disks, blocks_per_disk, included: chosen }
}

/** Blocks of the whole set. */
export const setBlocks = (s: DiskSet): number => s.disks * s.blocks_per_disk

/** Block `block` of disk `disk` in the set's one block space. */
export function setBlockOf(s: DiskSet, disk: number, block: number): number {
  return disk * s.blocks_per_disk + block
}

export const isIncluded = (s: DiskSet, disk: number): boolean => s.included.includes(disk)

/**
 * Reads blocks first … first + blocks - 1 of the set, a disk at a time through
 * `readDisk(disk, first_block_of_that_disk, blocks)`; a disk left out reads as blank
 * (zeros) without being read.
 */
export async function readSet(
  s: DiskSet,
  block_size_bytes: number,
  first: number,
  blocks: number,
  readDisk: (disk: number, first: number, blocks: number) => Promise<Uint8Array>,
): Promise<Uint8Array> {
  if (first < 0 || blocks < 0 || first + blocks > setBlocks(s))
    throw new HvlabError('HVLAB_E_INTERNAL', `blocks ${first}+${blocks} lie outside the disk set's ${setBlocks(s)}`)
  const out = new Uint8Array(blocks * block_size_bytes)
  for (let at = first; at < first + blocks;) {
    const disk = Math.floor(at / s.blocks_per_disk)
    const within = at - disk * s.blocks_per_disk
    const n = Math.min(first + blocks - at, s.blocks_per_disk - within)
    if (isIncluded(s, disk)) out.set(await readDisk(disk, within, n), (at - first) * block_size_bytes)
    at += n
  }
  return out
}
