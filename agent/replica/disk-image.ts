/**
 * Where a replica's disk lies durably, under its store (replica-store.ts): a file on the
 * replica server's own storage (`disk.img`), or, for a reverse replica on a cluster host,
 * the VM's own volume on the cluster's storage (volume-disk-image.ts). The store keeps the
 * disk in memory as well and asks the image only to load it once and to write blocks.
 */
import { open, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { describeError } from '../../shared/errors.js'
import type { ShippedBlock } from './replica-log.js'
import type { ReplicaGeometry } from './replica-store.js'

export interface DiskImage {
  /** The whole disk: `fresh` (the store is new) creates it, all zeros, where it is not the VM's own. */
  load(g: ReplicaGeometry, fresh: boolean): Promise<Uint8Array>
  /** Writes `blocks`, durably, before it resolves. */
  write(blocks: readonly ShippedBlock[]): Promise<void>
}

/** Thrown where the image cannot be read: the store names it untrustworthy. */
export class DiskImageUnreadable extends Error {}

/** The replica disk as `disk.img` in the store's folder. */
export function fileDiskImage(dir: string, block_size_bytes: number): DiskImage {
  const path = join(dir, 'disk.img')
  return {
    async load(g, fresh) {
      const size = g.disk_blocks * g.block_size_bytes
      if (fresh) {
        const bytes = new Uint8Array(size)
        await writeFile(path, bytes, { mode: 0o600 })
        return bytes
      }
      const bytes = await readFile(path).catch((e: unknown) => {
        throw new DiskImageUnreadable(`disk.img cannot be read: ${describeError(e)}`)
      })
      if (bytes.length !== size) throw new DiskImageUnreadable(`disk.img is ${bytes.length} bytes`)
      return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength)
    },
    async write(blocks) {
      const fh = await open(path, 'r+')
      try {
        for (const b of blocks) await fh.write(b.data, 0, b.data.length, b.block * block_size_bytes)
        await fh.sync()
      } finally {
        await fh.close()
      }
    },
  }
}
