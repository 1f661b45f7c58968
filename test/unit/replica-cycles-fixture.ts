/**
 * Cycles of seeded random writes to a small replica disk, as a primary's log ships them,
 * with the disk each leaves (images[c - 1] is the disk after cycle c): the replica store
 * tests apply them and check the disk, and any recovery point, against these.
 */
import { ReplicaLog, type LogShipment } from '../../agent/replica/replica-log.js'
import { mulberry32 } from '../../shared/seeded-random.js'

export const BS = 512
export const BLOCKS = 32
export const G = { vm: 'vm1', block_size_bytes: BS, disk_blocks: BLOCKS }

export function cycles(n: number, seed = 11): { shipments: LogShipment[]; images: Uint8Array[] } {
  const rand = mulberry32(seed)
  const log = new ReplicaLog({ vm: 'vm1', block_size_bytes: BS, disk_blocks: BLOCKS })
  const disk = new Uint8Array(BLOCKS * BS)
  const shipments: LogShipment[] = []
  const images: Uint8Array[] = []
  for (let c = 1; c <= n; c++) {
    for (let i = 0; i < 10; i++) {
      const block = Math.floor(rand() * BLOCKS)
      const data = new Uint8Array(BS).fill(1 + Math.floor(rand() * 255))
      disk.set(data, block * BS)
      log.append(block, data)
    }
    shipments.push(log.close(c * 1000))
    images.push(disk.slice())
  }
  return { shipments, images }
}
