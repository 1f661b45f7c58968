/**
 * A replica's recovery points (recovery-points.ts) kept on the replica server's storage,
 * beside the replica disk, so a restarted server (kill -9 included) has every point it had.
 * One file a point, `points/<cycle>.undo`:
 *
 *   a JSON header line   the point (cycle, at_ms, kind: crash or application), when this
 *                        server took it (taken_ms) and the block size; written whole (a temp
 *                        file renamed). Format 2; a format 1 header (before points had a
 *                        kind, `app_consistent` false in every one written) is read as crash.
 *   then batches         u32 entries, entries × (u32 block, the block's content at the
 *                        point), the SHA-256 of all that: one batch per shipment applied
 *
 * A batch is appended and synced before the shipment that overwrites its blocks is made
 * durable (ReplicaStore.persist), so no overwrite survives a crash without its undo entry.
 * A crash while appending leaves a torn last batch (short, or its checksum wrong): its
 * shipment was never durable, so the batch is cut off at the next open, before anything is
 * appended again. A header that cannot be read, a whole batch naming a block past the disk,
 * or a point newer than the cycle applied cannot be trusted: that point and
 * every older one (which need its undo log to be reverted to) are deleted; the newer ones
 * stay true. Points are deleted oldest first, so a crash while deleting keeps a newest run
 * of points whose undo logs are whole.
 */
import { createHash } from 'node:crypto'
import { mkdir, open, readdir, readFile, truncate } from 'node:fs/promises'
import { join } from 'node:path'
import { z } from 'zod'
import { removeIfPresent, syncDirectory, writeDurableFile } from '../../shared/durable-json.js'
import { field } from '../../shared/protocol/define.js'
import { RECOVERY_POINT_KINDS } from '../../shared/protocol/replica-limits.js'
import type { KeptPoint, RecoveryPoint, UndoEntry } from './recovery-points.js'

/** A point read back, with when this server took it (its own clock). */
export interface StoredPoint extends KeptPoint {
  readonly taken_ms: number
}

export interface PointFilesGeometry {
  readonly block_size_bytes: number
  readonly disk_blocks: number
}

const headerFields = {
  cycle: field.uint(),
  at_ms: field.time_ms(),
  taken_ms: z.number().finite(),
  block_size_bytes: field.u32(),
}
const headerSchema = z.union([
  z.strictObject({ format: z.literal(2), ...headerFields, kind: z.enum(RECOVERY_POINT_KINDS) }),
  z.strictObject({ format: z.literal(1), ...headerFields, app_consistent: z.boolean() }).transform(({ app_consistent, ...h }) => ({
    ...h,
    format: 2 as const,
    kind: app_consistent ? ('application' as const) : ('crash' as const),
  })),
])

const FILE = /^([0-9]{1,15})\.undo$/
const SHA256_BYTES = 32

export class RecoveryPointFiles {
  private constructor(
    private readonly dir: string,
    private readonly g: PointFilesGeometry,
    /** The cycles of the points on disk, oldest first. */
    private cycles: number[],
  ) {}

  /** The points kept in `replica_dir` (oldest first), torn tails cut off, untrusted ones deleted. */
  static async open(
    replica_dir: string,
    g: PointFilesGeometry,
    applied_cycle: number,
  ): Promise<{ files: RecoveryPointFiles; points: StoredPoint[] }> {
    const dir = join(replica_dir, 'points')
    await mkdir(dir, { recursive: true, mode: 0o700 })
    const cycles = (await readdir(dir)).flatMap((n) => (FILE.exec(n) ? [Number(FILE.exec(n)![1])] : [])).sort((a, b) => a - b)
    const files = new RecoveryPointFiles(dir, g, cycles)
    const points: StoredPoint[] = []
    for (const cycle of cycles) {
      const p = cycle <= applied_cycle ? await files.read(cycle) : undefined
      if (p === undefined)
        points.length = 0 // it and every older one cannot be reverted to
      else points.push(p)
    }
    await files.remove(cycles.filter((c) => !points.some((p) => p.cycle === c)))
    return { files, points }
  }

  /** Appends each point's new undo entries as one batch and syncs it (before the shipment that overwrites them is durable). */
  async appendUndo(entries: readonly UndoEntry[]): Promise<void> {
    for (const cycle of new Set(entries.map((e) => e.cycle))) {
      const fh = await open(this.path(cycle), 'a')
      try {
        await fh.write(this.batch(entries.filter((e) => e.cycle === cycle)))
        await fh.sync()
      } finally {
        await fh.close()
      }
    }
  }

  /** A new point's file, durable (after the shipment it was taken at is). */
  async create(p: RecoveryPoint, taken_ms: number): Promise<void> {
    const header = {
      format: 2,
      cycle: p.cycle,
      at_ms: p.at_ms,
      kind: p.kind,
      taken_ms,
      block_size_bytes: this.g.block_size_bytes,
    }
    await writeDurableFile(this.path(p.cycle), JSON.stringify(header) + '\n')
    this.cycles = [...this.cycles.filter((c) => c !== p.cycle), p.cycle].sort((a, b) => a - b)
  }

  /** Deletes the points of `cycles` (merged away), oldest first, durably. */
  async remove(cycles: readonly number[]): Promise<void> {
    if (cycles.length === 0) return
    for (const c of [...cycles].sort((a, b) => a - b)) await removeIfPresent(this.path(c))
    await syncDirectory(this.dir)
    this.cycles = this.cycles.filter((c) => !cycles.includes(c))
  }

  /** Deletes every point, durably (a resync or a failover makes them meaningless). */
  clear(): Promise<void> {
    return this.remove(this.cycles)
  }

  private path(cycle: number): string {
    return join(this.dir, `${cycle}.undo`)
  }

  private batch(entries: readonly UndoEntry[]): Buffer {
    const bs = this.g.block_size_bytes
    const out = Buffer.alloc(4 + entries.length * (4 + bs) + SHA256_BYTES)
    out.writeUInt32BE(entries.length, 0)
    entries.forEach((e, i) => {
      out.writeUInt32BE(e.block, 4 + i * (4 + bs))
      out.set(e.data, 8 + i * (4 + bs))
    })
    const end = out.length - SHA256_BYTES
    createHash('sha256').update(out.subarray(0, end)).digest().copy(out, end)
    return out
  }

  /** The point of `cycle` (its torn last batch cut off), or undefined when it cannot be trusted. */
  private async read(cycle: number): Promise<StoredPoint | undefined> {
    const file = await readFile(this.path(cycle))
    const eol = file.indexOf(0x0a)
    const header = headerSchema.safeParse(parseJson(file.subarray(0, Math.max(eol, 0))))
    if (eol < 0 || !header.success || header.data.cycle !== cycle || header.data.block_size_bytes !== this.g.block_size_bytes)
      return undefined
    const undo = new Map<number, Uint8Array>()
    const at = this.readBatches(file, eol + 1, undo)
    if (at === 'untrusted') return undefined
    if (at < file.length) await cutAt(this.path(cycle), at)
    const { format: _format, block_size_bytes: _bs, ...point } = header.data
    return { ...point, undo }
  }

  /**
   * Reads batches from `at` into `undo`; returns where the whole ones end (only the last
   * append can be torn: the file is cut there before the next), or 'untrusted' (a whole
   * batch naming a block past the disk).
   */
  private readBatches(file: Buffer, at: number, undo: Map<number, Uint8Array>): number | 'untrusted' {
    const bs = this.g.block_size_bytes
    while (at + 4 <= file.length) {
      const count = file.readUInt32BE(at)
      const end = at + 4 + count * (4 + bs) + SHA256_BYTES
      if (count === 0 || count > this.g.disk_blocks || end > file.length) return at
      const sum = createHash('sha256')
        .update(file.subarray(at, end - SHA256_BYTES))
        .digest()
      if (!sum.equals(file.subarray(end - SHA256_BYTES, end))) return at
      for (let i = 0; i < count; i++) {
        const o = at + 4 + i * (4 + bs)
        const block = file.readUInt32BE(o)
        if (block >= this.g.disk_blocks) return 'untrusted'
        if (!undo.has(block)) undo.set(block, Uint8Array.from(file.subarray(o + 4, o + 4 + bs)))
      }
      at = end
    }
    return at
  }
}

function parseJson(b: Buffer): unknown {
  try {
    return JSON.parse(b.toString('utf8')) as unknown
  } catch {
    return undefined
  }
}

/** Cuts a torn last batch off, durably, so the next batch appended follows a whole one. */
async function cutAt(path: string, bytes: number): Promise<void> {
  await truncate(path, bytes)
  const fh = await open(path, 'r+')
  try {
    await fh.sync()
  } finally {
    await fh.close()
  }
}
