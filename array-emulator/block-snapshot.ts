/**
 * The copy-on-write snapshots a Remote Copy group keeps: the old contents of blocks,
 * saved once per block before they are overwritten.
 *
 * - 'delta' (source side): the consistent point a resync cycle sends from. Kept in
 *   memory: after a crash the cycle is gone and its blocks are dirty again in the record.
 * - 'rollback' (target side): what the target overwrote during a cycle, so a failover can
 *   go back to its last consistent point. Durable: an append-only file, fdatasynced
 *   before `preserve` resolves, read back on restart. A torn last record never resolved,
 *   so the block was not overwritten yet; it is ignored. Records are written whole
 *   (write-all.ts loops on short writes) and the file's directory entry is made durable
 *   when it is created. A record whose header makes no sense (damage from a torn write
 *   of an older build, or the disk) ends the reading: what follows cannot be framed, so
 *   `damaged` is set and the caller reports it.
 *
 * Record format: u16 volume-name length, name (utf8), f64 block number, block bytes.
 */
import { open, readFile, type FileHandle } from 'node:fs/promises'
import { dirname } from 'node:path'
import { removeIfPresent, syncDirectory } from '../shared/durable-json.js'
import { writeAll } from './write-all.js'

const key = (volume: string, block: number): string => `${volume}:${block}`

/** Volume names are short (field.name: at most 63 characters). */
const VOLUME_NAME_BYTES_MAX = 255

export class BlockSnapshot {
  private readonly saved = new Map<string, { volume: string; block: number; data: Buffer }>()
  private fh: FileHandle | undefined
  /** Reading the durable file stopped at a record it could not frame (see the header). */
  damaged = false

  private constructor(
    private readonly path: string | undefined,
    private readonly block_size_bytes: number,
  ) {}

  static inMemory(block_size_bytes: number): BlockSnapshot {
    return new BlockSnapshot(undefined, block_size_bytes)
  }

  static async durable(path: string, block_size_bytes: number): Promise<BlockSnapshot> {
    const s = new BlockSnapshot(path, block_size_bytes)
    let data: Buffer
    try {
      data = await readFile(path)
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e
      return s
    }
    let at = 0
    while (at + 2 <= data.length) {
      const nameLen = data.readUInt16LE(at)
      const end = at + 2 + nameLen + 8 + block_size_bytes
      if (end > data.length) break // torn last record
      const volume = data.toString('utf8', at + 2, at + 2 + nameLen)
      const block = data.readDoubleLE(at + 2 + nameLen)
      if (!plausibleRecord(volume, nameLen, block)) {
        s.damaged = true
        break
      }
      s.saved.set(key(volume, block), { volume, block, data: Buffer.from(data.subarray(end - block_size_bytes, end)) })
      at = end
    }
    return s
  }

  get size(): number {
    return this.saved.size
  }

  get(volume: string, block: number): Buffer | undefined {
    return this.saved.get(key(volume, block))?.data
  }

  /** The blocks held, per volume. */
  blocksByVolume(): Map<string, number[]> {
    const out = new Map<string, number[]>()
    for (const { volume, block } of this.saved.values()) {
      const list = out.get(volume)
      if (list) list.push(block)
      else out.set(volume, [block])
    }
    return out
  }

  has(volume: string, block: number): boolean {
    return this.saved.has(key(volume, block))
  }

  /**
   * Saves the current contents of `blocks`. The group asks once per block per snapshot,
   * so a block saved again (a leftover of a release that a crash undid) is replaced.
   */
  async preserve(volume: string, blocks: readonly number[], contents: (block: number) => Buffer): Promise<void> {
    const fresh = blocks
    if (fresh.length === 0) return
    const records: Buffer[] = []
    const name = Buffer.from(volume, 'utf8')
    for (const b of fresh) {
      const data = contents(b)
      if (data.length !== this.block_size_bytes)
        throw new Error(`snapshot of block ${b} is ${data.length} bytes, not ${this.block_size_bytes}`)
      this.saved.set(key(volume, b), { volume, block: b, data: Buffer.from(data) })
      if (this.path) {
        const head = Buffer.alloc(2 + name.length + 8)
        head.writeUInt16LE(name.length, 0)
        name.copy(head, 2)
        head.writeDoubleLE(b, 2 + name.length)
        records.push(head, data)
      }
    }
    if (!this.path) return
    if (!this.fh) {
      this.fh = await open(this.path, 'a', 0o600)
      await syncDirectory(dirname(this.path)) // the file may be new: make its entry durable
    }
    await writeAll(this.fh, Buffer.concat(records), `preserving blocks of ${volume} in ${this.path}`)
    await this.fh.datasync()
  }

  async release(): Promise<void> {
    this.saved.clear()
    if (!this.path) return
    await this.fh?.close()
    this.fh = undefined
    await removeIfPresent(this.path)
    await syncDirectory(dirname(this.path))
  }

  async close(): Promise<void> {
    await this.fh?.close()
    this.fh = undefined
  }
}

/** A record header as `preserve` writes them: a non-empty name that is valid UTF-8, a whole block number. */
function plausibleRecord(volume: string, nameLen: number, block: number): boolean {
  return (
    nameLen >= 1 &&
    nameLen <= VOLUME_NAME_BYTES_MAX &&
    Buffer.byteLength(volume, 'utf8') === nameLen &&
    Number.isSafeInteger(block) &&
    block >= 0
  )
}
