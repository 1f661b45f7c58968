/**
 * A VM disk on a Cluster Shared Volume: the disk writer (agent/vm/vm-disk.ts) writes its
 * own block numbers, and this port turns them into I/O on the VM's region of the CSV
 * through the host's CsvVolume — direct to the array, or redirected through the CSV's
 * coordinator node when this host lost its path. The writer's epoch goes along, so the
 * array's fencing applies on both paths.
 */
import type { BlockIoPort } from '../vm/vm-disk.js'
import type { CsvVolume } from './csv-volume.js'

export function csvDiskPort(volume: Pick<CsvVolume, 'write' | 'read'>, region: string): BlockIoPort {
  return {
    async write(_array, request, data) {
      await volume.write({ region, block: request.block, blocks: request.blocks, data, epoch: request.epoch })
    },
    async read(_array, request) {
      return (await volume.read({ region, block: request.block, blocks: request.blocks })).data
    },
  }
}
