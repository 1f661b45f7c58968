/**
 * A reverse replica's disk (disk-image.ts) on a cluster host: the VM's own volumes on the
 * cluster's storage, disk 0 first, as one block space (disk-set.ts), read and written the
 * way the VM's disk writers do it (vm-disk.ts): through the host's block I/O port, each
 * write carrying the cluster epoch this host holds, so a fenced host cannot write them.
 * Loaded whole once (the VM's disks as its primary left them); each applied shipment's
 * blocks are written, at most DISK_QUEUE_DEPTH at a time, and the write resolves only once
 * the array has them all durably.
 */
import { HvlabError } from '../../shared/errors.js'
import { BLOCKS_PER_IO_MAX } from '../../shared/protocol/storage-limits.js'
import type { VmDiskTarget } from '../clx/disk-target.js'
import { DISK_QUEUE_DEPTH, type BlockIoPort } from '../vm/vm-disk.js'
import type { DiskImage } from './disk-image.js'

export interface VolumeDiskImageOptions {
  /** This host (the writer the array's presentation knows). */
  readonly host: string
  /** The VM's disks, disk 0 first, each with the I/O that reaches it. */
  readonly disks: readonly { readonly target: VmDiskTarget; readonly io: BlockIoPort }[]
  /** The cluster epoch this host holds now. */
  epoch(): number
}

export function volumeDiskImage(o: VolumeDiskImageOptions): DiskImage {
  const { disks, host } = o
  let per_disk = 0
  return {
    async load(g) {
      const block_size_bytes = g.block_size_bytes
      per_disk = Math.floor(disks[0]!.target.size_bytes / block_size_bytes)
      const blocks = per_disk * disks.length
      if (blocks !== g.disk_blocks || disks.some((d) => Math.floor(d.target.size_bytes / block_size_bytes) !== per_disk))
        throw new HvlabError(
          'HVLAB_E_STATE',
          `vm ${g.vm}'s ${disks.length} volume(s) ${disks[0]!.target.volume}… hold ${blocks} blocks of ${g.block_size_bytes} bytes; its replica has ${g.disk_blocks}: the disks differ, replicate the VM again`,
        )
      const bytes = new Uint8Array(blocks * block_size_bytes)
      for (const [k, { target, io }] of disks.entries())
        for (let block = 0; block < per_disk; block += BLOCKS_PER_IO_MAX) {
          const n = Math.min(BLOCKS_PER_IO_MAX, per_disk - block)
          const at = (k * per_disk + block) * block_size_bytes
          bytes.set(await io.read(target.array, { volume: target.volume, host, block, blocks: n }), at)
        }
      return bytes
    },
    async write(blocks) {
      for (let i = 0; i < blocks.length; i += DISK_QUEUE_DEPTH)
        await Promise.all(
          blocks.slice(i, i + DISK_QUEUE_DEPTH).map((b) => {
            const { target, io } = disks[Math.floor(b.block / per_disk)]!
            const block = b.block % per_disk
            return io.write(target.array, { volume: target.volume, host, epoch: o.epoch(), block, blocks: 1 }, b.data)
          }),
        )
    },
  }
}
