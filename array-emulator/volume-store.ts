/**
 * The array's virtual volumes: one sparse file per volume in the data dir, a fixed block
 * size, and a small metadata file (`volumes.json`) replaced atomically.
 *
 * Durability policy: `write()` resolves only after the data is on disk (fdatasync).
 * Writes to one volume are issued to the file in call order; the fdatasync that follows
 * is shared by every write that finished before it started (group commit), so the ack
 * still means durable. Volume metadata changes are fsynced (file + rename + directory)
 * before they resolve. After a kill -9 and `VolumeStore.open` on the same dir, every
 * resolved write and every resolved create/grow/remove is there.
 *
 * Disk faults (issue 13, `hvlab array disk`): with the disk full every write, create and
 * grow is refused before anything is written (HVLAB_E_DISK_FULL); a slow disk delays each
 * fdatasync; a failing one fails it, and every write that waited on it is refused
 * (HVLAB_E_DISK_IO), never acknowledged, though its bytes may be in the file (read back
 * by a later read, as after a real failed fsync).
 *
 * Order of the steps, so a crash in between leaves nothing half-done that matters:
 * create = file (sized, fsynced) then metadata; grow = file then metadata;
 * remove = metadata then file. A volume file that the metadata does not name is an
 * interrupted create or remove and is deleted on open.
 */
import { mkdir, open, readdir, type FileHandle } from 'node:fs/promises'
import { join } from 'node:path'
import { HvlabError } from '../shared/errors.js'
import { readDurableJson, removeIfPresent, syncDirectory, writeDurableJson } from '../shared/durable-json.js'
import { SerialQueue } from '../shared/serial-queue.js'
import { WrittenRegions } from './written-regions.js'

export const BLOCK_SIZE_BYTES_DEFAULT = 4096
export const BLOCKS_PER_IO_MAX_DEFAULT = 256
export const VOLUMES_MAX_DEFAULT = 256
export const VOLUME_BYTES_MAX_DEFAULT = 64 * 1024 ** 3

const METADATA_FILE = 'volumes.json'
const VOLUME_SUFFIX = '.vol'
const NAME_PATTERN = /^[a-z0-9][a-z0-9._-]{0,62}$/

export interface VolumeStoreOptions {
  block_size_bytes?: number
  blocks_per_io_max?: number
  volumes_max?: number
  volume_bytes_max?: number
}

export interface DiskFaults {
  fsync_delay_ms: number
  fsync_fails: boolean
  full: boolean
}

export const NO_DISK_FAULTS: DiskFaults = { fsync_delay_ms: 0, fsync_fails: false, full: false }

export interface VolumeInfo {
  volume: string
  block_count: number
  size_bytes: number
}

interface MetadataFile {
  format: 1
  block_size_bytes: number
  volumes: { volume: string; block_count: number }[]
}

interface OpenVolume {
  name: string
  block_count: number
  fh: FileHandle
  /** Writes to the file, in call order. */
  writes: SerialQueue
  /** An fdatasync not yet started: joining it covers any write that has finished. */
  nextSync: Promise<void> | undefined
  currentSync: Promise<void> | undefined
  ios_inflight: number
  /** Regions written since this array created the volume; reads of the others skip the file. */
  written: WrittenRegions
}

export class VolumeStore {
  readonly block_size_bytes: number
  readonly blocks_per_io_max: number
  readonly volumes_max: number
  readonly volume_bytes_max: number
  private readonly volumes = new Map<string, OpenVolume>()
  private readonly admin = new SerialQueue()
  private closed = false
  private faults: DiskFaults = NO_DISK_FAULTS

  private constructor(
    readonly dir: string,
    options: Required<VolumeStoreOptions>,
  ) {
    this.block_size_bytes = options.block_size_bytes
    this.blocks_per_io_max = options.blocks_per_io_max
    this.volumes_max = options.volumes_max
    this.volume_bytes_max = options.volume_bytes_max
  }

  /** Opens (or creates) the store in `dir` and recovers its volumes. */
  static async open(dir: string, options: VolumeStoreOptions = {}): Promise<VolumeStore> {
    const full: Required<VolumeStoreOptions> = {
      block_size_bytes: options.block_size_bytes ?? BLOCK_SIZE_BYTES_DEFAULT,
      blocks_per_io_max: options.blocks_per_io_max ?? BLOCKS_PER_IO_MAX_DEFAULT,
      volumes_max: options.volumes_max ?? VOLUMES_MAX_DEFAULT,
      volume_bytes_max: options.volume_bytes_max ?? VOLUME_BYTES_MAX_DEFAULT,
    }
    const bs = full.block_size_bytes
    if (!Number.isInteger(bs) || bs < 512 || bs > 1024 * 1024 || (bs & (bs - 1)) !== 0) {
      throw new HvlabError('HVLAB_E_USAGE', `block size ${bs} is not a power of two between 512 and 1048576 bytes`)
    }
    await mkdir(dir, { recursive: true })
    const store = new VolumeStore(dir, full)
    await store.recover()
    return store
  }

  /** The disk's faults from now on (NO_DISK_FAULTS: a healthy disk). */
  setDiskFaults(faults: DiskFaults): void {
    this.faults = { ...faults }
  }

  diskFaults(): DiskFaults {
    return { ...this.faults }
  }

  list(): VolumeInfo[] {
    return [...this.volumes.values()].map((v) => this.info(v))
  }

  get(volume: string): VolumeInfo {
    return this.info(this.require(volume))
  }

  has(volume: string): boolean {
    return this.volumes.has(volume)
  }

  create(volume: string, size_bytes: number): Promise<VolumeInfo> {
    return this.admin.run(async () => {
      this.assertOpen()
      if (!NAME_PATTERN.test(volume)) {
        throw new HvlabError(
          'HVLAB_E_USAGE',
          `volume name ${JSON.stringify(volume.slice(0, 80))} is invalid: use 1–63 of a-z 0-9 . _ - starting with a letter or digit`,
        )
      }
      if (this.volumes.has(volume))
        throw new HvlabError('HVLAB_E_STATE', `volume ${volume} already exists; remove it first or pick another name`)
      if (this.volumes.size >= this.volumes_max) {
        throw new HvlabError(
          'HVLAB_E_REFUSED',
          `cannot create volume ${volume}: the array already holds ${this.volumes_max} volumes (its limit)`,
        )
      }
      const block_count = this.blockCountFor(volume, size_bytes)
      this.refuseWhenFull(`creating volume ${volume}`)
      const path = this.pathOf(volume)
      const fh = await open(path, 'w+', 0o600)
      try {
        await fh.truncate(size_bytes)
        await fh.sync()
        await syncDirectory(this.dir)
      } catch (e) {
        await fh.close()
        await removeIfPresent(path)
        throw e
      }
      const v = newOpenVolume(volume, block_count, fh, WrittenRegions.empty(block_count))
      this.volumes.set(volume, v)
      try {
        await this.saveMetadata()
      } catch (e) {
        this.volumes.delete(volume)
        await fh.close()
        throw e
      }
      return this.info(v)
    })
  }

  /** Grows a volume; its existing blocks are untouched, new blocks read as zeros. */
  grow(volume: string, size_bytes: number): Promise<VolumeInfo> {
    return this.admin.run(async () => {
      this.assertOpen()
      const v = this.require(volume)
      const block_count = this.blockCountFor(volume, size_bytes)
      if (block_count < v.block_count) {
        throw new HvlabError(
          'HVLAB_E_REFUSED',
          `volume ${volume} is ${v.block_count * this.block_size_bytes} bytes; it can only grow, not shrink to ${size_bytes}`,
        )
      }
      if (block_count === v.block_count) return this.info(v)
      this.refuseWhenFull(`growing volume ${volume}`)
      await v.fh.truncate(size_bytes)
      await v.fh.sync()
      const before = v.block_count
      v.block_count = block_count
      try {
        await this.saveMetadata()
      } catch (e) {
        v.block_count = before
        throw e
      }
      v.written.grow(block_count)
      return this.info(v)
    })
  }

  remove(volume: string): Promise<void> {
    return this.admin.run(async () => {
      this.assertOpen()
      const v = this.require(volume)
      if (v.ios_inflight > 0) {
        throw new HvlabError('HVLAB_E_STATE', `volume ${volume} has ${v.ios_inflight} I/Os in flight; stop its hosts' I/O and retry`)
      }
      this.volumes.delete(volume)
      try {
        await this.saveMetadata()
      } catch (e) {
        this.volumes.set(volume, v)
        throw e
      }
      await v.fh.close()
      await removeIfPresent(this.pathOf(volume))
      await syncDirectory(this.dir)
    })
  }

  /** Reads `blocks` blocks from `block`; never-written blocks read as zeros. */
  async read(volume: string, block: number, blocks: number): Promise<Buffer> {
    this.assertOpen()
    const v = this.require(volume)
    this.checkRange(v, block, blocks, 'read')
    const out = Buffer.alloc(blocks * this.block_size_bytes)
    if (!v.written.anyWritten(block, blocks)) return out
    v.ios_inflight++
    try {
      let done = 0
      while (done < out.length) {
        const { bytesRead } = await v.fh.read(out, done, out.length - done, block * this.block_size_bytes + done)
        if (bytesRead === 0) break // past the end of a sparse file: zeros
        done += bytesRead
      }
      return out
    } finally {
      v.ios_inflight--
    }
  }

  /**
   * Writes whole blocks from `block`; resolves once they are durable. A write with the
   * wrong size or out of range is refused before anything is written.
   */
  async write(volume: string, block: number, data: Uint8Array): Promise<void> {
    this.assertOpen()
    const v = this.require(volume)
    const bs = this.block_size_bytes
    if (data.length === 0 || data.length % bs !== 0) {
      throw new HvlabError(
        'HVLAB_E_REFUSED',
        `write to volume ${volume} refused: ${data.length} bytes is not a whole number of ${bs}-byte blocks; nothing was written`,
      )
    }
    this.checkRange(v, block, data.length / bs, 'write')
    this.refuseWhenFull(`a write to volume ${volume}`)
    v.written.markWritten(block, data.length / bs)
    v.ios_inflight++
    try {
      await v.writes.run(() => writeFully(v.fh, data, block * bs))
      await this.durable(v)
    } finally {
      v.ios_inflight--
    }
  }

  async close(): Promise<void> {
    if (this.closed) return
    await this.admin.run(async () => {
      this.closed = true
      for (const v of this.volumes.values()) {
        await v.writes.run(async () => undefined)
        await v.fh.close()
      }
      this.volumes.clear()
    })
  }

  // ------------------------------------------------------------------ internals

  private durable(v: OpenVolume): Promise<void> {
    if (!v.nextSync) {
      const previous = v.currentSync ?? Promise.resolve()
      v.nextSync = previous
        .catch(() => undefined)
        .then(() => {
          v.nextSync = undefined
          const running = this.faultySync(v)
          v.currentSync = running
          return running.finally(() => {
            if (v.currentSync === running) v.currentSync = undefined
          })
        })
    }
    return v.nextSync
  }

  /** fdatasync as the disk's faults let it: delayed, or failed after it ran. */
  private async faultySync(v: OpenVolume): Promise<void> {
    const { fsync_delay_ms, fsync_fails } = this.faults
    if (fsync_delay_ms > 0) await new Promise((resolve) => setTimeout(resolve, fsync_delay_ms))
    await v.fh.datasync()
    if (fsync_fails)
      throw new HvlabError(
        'HVLAB_E_DISK_IO',
        `fsync of volume ${v.name} failed (a disk fault): its writes are not acknowledged; \`hvlab array disk\` with no options clears the fault`,
      )
  }

  private refuseWhenFull(what: string): void {
    if (this.faults.full)
      throw new HvlabError(
        'HVLAB_E_DISK_FULL',
        `${what} refused: the array's disk is full (a disk fault), nothing was written; \`hvlab array disk\` with no options clears the fault`,
      )
  }

  private checkRange(v: OpenVolume, block: number, blocks: number, what: 'read' | 'write'): void {
    if (!Number.isSafeInteger(block) || block < 0 || !Number.isSafeInteger(blocks) || blocks < 1) {
      throw new HvlabError(
        'HVLAB_E_REFUSED',
        `${what} of volume ${v.name} refused: block ${block} and count ${blocks} must be non-negative integers (count ≥ 1)`,
      )
    }
    if (blocks > this.blocks_per_io_max) {
      throw new HvlabError(
        'HVLAB_E_REFUSED',
        `${what} of ${blocks} blocks on volume ${v.name} refused: one I/O moves at most ${this.blocks_per_io_max} blocks; split it`,
      )
    }
    if (block + blocks > v.block_count) {
      throw new HvlabError(
        'HVLAB_E_REFUSED',
        `${what} of blocks ${block}..${block + blocks - 1} on volume ${v.name} refused: the volume has blocks 0..${v.block_count - 1}${what === 'write' ? '; nothing was written' : ''}`,
      )
    }
  }

  private blockCountFor(volume: string, size_bytes: number): number {
    const bs = this.block_size_bytes
    if (!Number.isSafeInteger(size_bytes) || size_bytes <= 0 || size_bytes % bs !== 0) {
      throw new HvlabError(
        'HVLAB_E_USAGE',
        `volume ${volume}: size ${size_bytes} bytes must be a positive multiple of the block size (${bs} bytes)`,
      )
    }
    if (size_bytes > this.volume_bytes_max) {
      throw new HvlabError(
        'HVLAB_E_REFUSED',
        `volume ${volume}: size ${size_bytes} bytes is over this array's limit of ${this.volume_bytes_max} bytes`,
      )
    }
    return size_bytes / bs
  }

  private require(volume: string): OpenVolume {
    const v = this.volumes.get(volume)
    if (!v)
      throw new HvlabError(
        'HVLAB_E_NOT_FOUND',
        `volume ${JSON.stringify(volume.slice(0, 80))} does not exist on this array; list volumes to see what exists`,
      )
    return v
  }

  private info(v: OpenVolume): VolumeInfo {
    return { volume: v.name, block_count: v.block_count, size_bytes: v.block_count * this.block_size_bytes }
  }

  private assertOpen(): void {
    if (this.closed) throw new HvlabError('HVLAB_E_CLOSED', 'the volume store is closed')
  }

  private pathOf(volume: string): string {
    return join(this.dir, volume + VOLUME_SUFFIX)
  }

  private saveMetadata(): Promise<void> {
    const meta: MetadataFile = {
      format: 1,
      block_size_bytes: this.block_size_bytes,
      volumes: [...this.volumes.values()].map((v) => ({ volume: v.name, block_count: v.block_count })),
    }
    return writeDurableJson(join(this.dir, METADATA_FILE), meta)
  }

  private async recover(): Promise<void> {
    const metaPath = join(this.dir, METADATA_FILE)
    const meta = parseMetadata(await readDurableJson(metaPath), metaPath)
    if (meta && meta.block_size_bytes !== this.block_size_bytes) {
      throw new HvlabError(
        'HVLAB_E_USAGE',
        `${metaPath} was created with ${meta.block_size_bytes}-byte blocks but ${this.block_size_bytes} was asked for; open it with the same block size`,
      )
    }
    for (const entry of meta?.volumes ?? []) {
      let fh: FileHandle
      try {
        fh = await open(this.pathOf(entry.volume), 'r+')
      } catch (e) {
        throw new HvlabError(
          'HVLAB_E_INTERNAL',
          `volume ${entry.volume} is in ${metaPath} but its file is missing or unreadable (${(e as Error).message}); restore the file or remove the entry`,
          { cause: e },
        )
      }
      this.volumes.set(entry.volume, newOpenVolume(entry.volume, entry.block_count, fh, WrittenRegions.unknown()))
    }
    for (const file of await readdir(this.dir)) {
      if (!file.endsWith(VOLUME_SUFFIX)) continue
      const name = file.slice(0, -VOLUME_SUFFIX.length)
      if (!this.volumes.has(name)) await removeIfPresent(join(this.dir, file)) // interrupted create or remove
    }
  }
}

function newOpenVolume(name: string, block_count: number, fh: FileHandle, written: WrittenRegions): OpenVolume {
  return { name, block_count, fh, writes: new SerialQueue(), nextSync: undefined, currentSync: undefined, ios_inflight: 0, written }
}

async function writeFully(fh: FileHandle, data: Uint8Array, position: number): Promise<void> {
  let done = 0
  while (done < data.length) {
    const { bytesWritten } = await fh.write(data, done, data.length - done, position + done)
    if (bytesWritten <= 0) throw new HvlabError('HVLAB_E_INTERNAL', `the volume file accepted no bytes at offset ${position + done}`)
    done += bytesWritten
  }
}

function parseMetadata(raw: unknown, path: string): MetadataFile | undefined {
  if (raw === undefined) return undefined
  const bad = (why: string): never => {
    throw new HvlabError('HVLAB_E_INTERNAL', `${path} is damaged (${why}); restore it from a backup`)
  }
  if (typeof raw !== 'object' || raw === null) return bad('not an object')
  const m = raw as Partial<MetadataFile>
  if (m.format !== 1) return bad(`unknown format ${String(m.format)}`)
  if (typeof m.block_size_bytes !== 'number') return bad('no block size')
  if (!Array.isArray(m.volumes)) return bad('no volume list')
  for (const v of m.volumes) {
    if (typeof v?.volume !== 'string' || !NAME_PATTERN.test(v.volume)) return bad('a volume has an invalid name')
    if (!Number.isSafeInteger(v.block_count) || v.block_count <= 0) return bad(`volume ${v.volume} has an invalid block count`)
  }
  return m as MetadataFile
}
