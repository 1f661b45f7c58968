/**
 * Host block I/O on the array: every write is checked — the volume exists, it is
 * presented to the host (and initiator), the data is whole blocks matching the request,
 * the range is inside the volume, the writer's epoch is not fenced — before anything is
 * written; then it goes to the volume directly or, for a volume in a Remote Copy group,
 * through the group (which may hold the ack until the partner has it). Reads check the
 * volume, presentation (for hosts) and range. A refusal is an HvlabError that says why.
 */
import { createHash } from 'node:crypto'
import { HvlabError } from '../shared/errors.js'
import { BLOCKS_PER_IO_MAX, DIGEST_BLOCKS_MAX } from '../shared/protocol/storage-messages.js'
import type { ArrayMetrics, RefusalReason } from './array-metrics.js'
import type { FencingTable } from './fencing.js'
import type { LunMasking } from './lun-masking.js'
import type { RemoteCopyService } from './remote-copy-service.js'
import type { VolumeStore } from './volume-store.js'

export interface WriteRequest {
  volume: string
  host: string
  initiator?: string | undefined
  epoch: number
  block: number
  blocks: number
}

export interface ReadRequest {
  volume: string
  /** Absent: an administrator's read (no masking). */
  host?: string | undefined
  initiator?: string | undefined
  block: number
  blocks: number
}

export interface Digest {
  sha256: string
  block_sha256?: string[]
}

export class BlockIo {
  constructor(
    private readonly store: VolumeStore,
    private readonly masking: LunMasking,
    private readonly fencing: FencingTable,
    private readonly rc: RemoteCopyService | undefined,
    private readonly metrics: ArrayMetrics | undefined,
  ) {}

  async write(r: WriteRequest, data: Uint8Array): Promise<void> {
    const bs = this.store.block_size_bytes
    this.guard('unknown-volume', () => this.store.get(r.volume))
    this.guard('not-presented', () => this.masking.checkAccess(r.volume, r.host, r.initiator))
    if (data.length !== r.blocks * bs) {
      this.refuse(
        'wrong-size',
        `write to volume ${r.volume} refused: ${data.length} bytes of data for ${r.blocks} blocks of ${bs} bytes (expected ${r.blocks * bs}); nothing was written`,
      )
    }
    this.checkRange(r.volume, r.block, r.blocks, 'write', BLOCKS_PER_IO_MAX)
    await this.guardAsync('stale-epoch', () => this.fencing.admitWrite(r.volume, r.host, r.epoch))
    const group = this.rc?.groupOfVolume(r.volume)
    if (group !== undefined) await this.guardAsync('replication', () => this.rc!.hostWrite(group, r.volume, r.block, data))
    else await this.guardAsync('other', () => this.store.write(r.volume, r.block, data))
    this.metrics?.writes.inc()
    this.metrics?.writeBytes.inc(data.length)
  }

  async read(r: ReadRequest): Promise<Buffer> {
    this.checkRead(r, BLOCKS_PER_IO_MAX)
    const data = await this.store.read(r.volume, r.block, r.blocks)
    this.metrics?.reads.inc()
    this.metrics?.readBytes.inc(data.length)
    return data
  }

  /** sha256 of the range (read in bounded chunks), and of each block when the range is one I/O long. */
  async digest(r: ReadRequest): Promise<Digest> {
    this.checkRead(r, DIGEST_BLOCKS_MAX)
    const whole = createHash('sha256')
    const perBlock: string[] = []
    const bs = this.store.block_size_bytes
    for (let at = r.block; at < r.block + r.blocks; at += BLOCKS_PER_IO_MAX) {
      const n = Math.min(BLOCKS_PER_IO_MAX, r.block + r.blocks - at)
      const data = await this.store.read(r.volume, at, n)
      whole.update(data)
      if (r.blocks <= BLOCKS_PER_IO_MAX)
        for (let i = 0; i < n; i++)
          perBlock.push(
            createHash('sha256')
              .update(data.subarray(i * bs, (i + 1) * bs))
              .digest('hex'),
          )
      this.metrics?.readBytes.inc(data.length)
    }
    this.metrics?.reads.inc()
    return { sha256: whole.digest('hex'), ...(r.blocks <= BLOCKS_PER_IO_MAX ? { block_sha256: perBlock } : {}) }
  }

  private checkRead(r: ReadRequest, blocks_max: number): void {
    this.guard('unknown-volume', () => this.store.get(r.volume))
    if (r.host !== undefined) this.guard('not-presented', () => this.masking.checkAccess(r.volume, r.host!, r.initiator))
    this.checkRange(r.volume, r.block, r.blocks, 'read', blocks_max)
  }

  private checkRange(volume: string, block: number, blocks: number, what: 'read' | 'write', blocks_max: number): void {
    const { block_count } = this.store.get(volume)
    if (!Number.isSafeInteger(block) || block < 0 || !Number.isSafeInteger(blocks) || blocks < 1 || blocks > blocks_max) {
      this.refuse(
        'out-of-range',
        `${what} of ${blocks} blocks at block ${block} on volume ${volume} refused: the count must be 1 to ${blocks_max}${what === 'write' ? '; nothing was written' : ''}`,
      )
    }
    if (block + blocks > block_count) {
      this.refuse(
        'out-of-range',
        `${what} of blocks ${block}..${block + blocks - 1} on volume ${volume} refused: the volume has blocks 0..${block_count - 1}${what === 'write' ? '; nothing was written' : ''}`,
      )
    }
  }

  private refuse(reason: RefusalReason, message: string): never {
    this.metrics?.refusals.inc({ reason })
    throw new HvlabError('HVLAB_E_REFUSED', message)
  }

  private guard<T>(reason: RefusalReason, check: () => T): T {
    try {
      return check()
    } catch (e) {
      this.metrics?.refusals.inc({ reason })
      throw e
    }
  }

  private async guardAsync<T>(reason: RefusalReason, run: () => Promise<T>): Promise<T> {
    try {
      return await run()
    } catch (e) {
      this.metrics?.refusals.inc({ reason })
      throw e
    }
  }
}
