/**
 * A reverse replica's disk (disk-image.ts) on a cluster host: the VM's own volume on the
 * cluster's storage, read and written the way the VM's disk writer does it (vm-disk.ts):
 * through the host's block I/O port, each write carrying the cluster epoch this host holds,
 * so a fenced host cannot write it. Loaded whole once (the VM's disk as its primary left
 * it); each applied shipment's blocks are written, at most DISK_QUEUE_DEPTH at a time, and
 * the write resolves only once the array has them all durably.
 */
import { HvlabError } from '../../shared/errors.js'
import { BLOCKS_PER_IO_MAX } from '../../shared/protocol/storage-limits.js'
import type { VmDiskTarget } from '../clx/disk-target.js'
import { DISK_QUEUE_DEPTH, type BlockIoPort } from '../vm/vm-disk.js'
import type { DiskImage } from './disk-image.js'

export interface VolumeDiskImageOptions {
  /** This host (the writer the array's presentation knows). */
  readonly host: string
  readonly target: VmDiskTarget
  readonly io: BlockIoPort
  /** The cluster epoch this host holds now. */
  epoch(): number
}

export function volumeDiskImage(o: VolumeDiskImageOptions): DiskImage {
  const { target, io, host } = o
  return {
    async load(g) {
      const blocks = Math.floor(target.size_bytes / g.block_size_bytes)
      if (blocks !== g.disk_blocks)
        throw new HvlabError(
          'HVLAB_E_STATE',
          `vm ${g.vm}'s volume ${target.volume} holds ${blocks} blocks of ${g.block_size_bytes} bytes; its replica has ${g.disk_blocks}: the disks differ, replicate the VM again`,
        )
      const block_size_bytes = g.block_size_bytes
      const bytes = new Uint8Array(blocks * block_size_bytes)
      for (let block = 0; block < blocks; block += BLOCKS_PER_IO_MAX) {
        const n = Math.min(BLOCKS_PER_IO_MAX, blocks - block)
        bytes.set(await io.read(target.array, { volume: target.volume, host, block, blocks: n }), block * block_size_bytes)
      }
      return bytes
    },
    async write(blocks) {
      for (let i = 0; i < blocks.length; i += DISK_QUEUE_DEPTH)
        await Promise.all(
          blocks
            .slice(i, i + DISK_QUEUE_DEPTH)
            .map((b) => io.write(target.array, { volume: target.volume, host, epoch: o.epoch(), block: b.block, blocks: 1 }, b.data)),
        )
    },
  }
}
