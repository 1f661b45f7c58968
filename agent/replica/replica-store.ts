/**
 * A replica server's copy of one VM's disk on its host-local storage, durable across a
 * kill -9 (seed 002: the replica applies each log whole). In a folder of its own:
 *
 *   disk.img     the replica disk, block_size_bytes × disk_blocks (a reverse replica's
 *                disk is the VM's own volume on the cluster's storage instead: disk-image.ts)
 *   state.json   the geometry and the last cycle applied (shared/durable-json.ts)
 *   pending.hrl  the shipment being applied: a JSON header line, then its body
 *                (shipment-frames.ts's part body, not deflated)
 *   points/      the recovery points, one undo log each (recovery-point-files.ts)
 *   revert.json  a revert to a recovery point under way (a failover to an earlier point)
 *
 * Persisting a shipment is a redo log: the shipment is made durable first, then its
 * blocks are written into disk.img and synced, then state.json says it is applied, then
 * the log goes. A shipment carries each block's whole content, so writing it twice gives
 * the same disk: a crash before state.json changed leaves the log to apply again at the
 * next open; a crash before the log was durable leaves the disk as the last cycle left it
 * (the primary had no answer and sends the shipment again). The replica is never half a
 * cycle on reopening.
 *
 * Before the redo log, the undo entries the shipment's blocks need (their content at the
 * newest recovery point) are appended to that point's file and synced: a block's old
 * content is durable no later than the shipment that overwrites it. A point taken at a
 * cycle gets its file only once that cycle is applied, and the points merged away lose
 * theirs after it. A revert to a point writes revert.json first: a crash in the middle
 * reverts again at the next open (from the same undo logs, to the same content), then the
 * points go (the replica runs from there).
 *
 * The disk is also held in memory (`disk`, what ReplicaReceiver applies to), the size of
 * the lab's VM disks, and so are the points' undo logs (`points`, to restore the receiver's).
 */
import { mkdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { z } from 'zod'
import { HvlabError } from '../../shared/errors.js'
import { readDurableJson, removeIfPresent, writeDurableFile, writeDurableJson } from '../../shared/durable-json.js'
import { RECOVERY_POINTS_MAX } from '../../shared/protocol/replica-limits.js'
import { field } from '../../shared/protocol/define.js'
import { DiskImageUnreadable, fileDiskImage, type DiskImage } from './disk-image.js'
import type { LogShipment } from './replica-log.js'
import type { ReplicaDisk } from './replica-receiver.js'
import { decodeBody, encodeBody } from './shipment-frames.js'
import { RecoveryPointFiles, type StoredPoint } from './recovery-point-files.js'
import { NO_POINT_CHANGES, RecoveryPoints, type PointChanges } from './recovery-points.js'

export interface ReplicaGeometry {
  readonly vm: string
  readonly block_size_bytes: number
  /** Blocks of every disk of the VM together (disk-set.ts). */
  readonly disk_blocks: number
  /** How many disks those are, of disk_blocks / disks each; absent: 1. */
  readonly disks?: number
}

const stateSchema = z.strictObject({
  format: z.literal(1),
  vm: field.name(),
  block_size_bytes: field.u32(),
  disk_blocks: field.uint(),
  /** Absent: 1 (ReplicaGeometry). */
  disks: field.uint().optional(),
  applied_cycle: field.uint(),
})

const revertSchema = z.strictObject({ format: z.literal(1), cycle: field.uint() })

const pendingHeaderSchema = z.strictObject({
  cycle: field.uint(),
  closed_at_ms: field.time_ms(),
  writes_logged: field.uint(),
  logged_bytes: field.uint(),
  body_bytes: field.uint(),
})

/** The replica disk in memory, a block at a time. */
class MemoryReplicaDisk implements ReplicaDisk {
  constructor(
    readonly bytes: Uint8Array,
    readonly block_size_bytes: number,
  ) {}
  get blocks(): number {
    return this.bytes.length / this.block_size_bytes
  }
  readBlock(block: number): Uint8Array {
    return this.bytes.slice(block * this.block_size_bytes, (block + 1) * this.block_size_bytes)
  }
  writeBlock(block: number, data: Uint8Array): void {
    this.bytes.set(data, block * this.block_size_bytes)
  }
}

export class ReplicaStore {
  readonly disk: ReplicaDisk
  private applied: number
  private files!: RecoveryPointFiles
  private points_: StoredPoint[] = []

  private constructor(
    private readonly dir: string,
    private readonly g: ReplicaGeometry,
    private readonly image: DiskImage,
    bytes: Uint8Array,
    applied_cycle: number,
  ) {
    this.disk = new MemoryReplicaDisk(bytes, g.block_size_bytes)
    this.applied = applied_cycle
  }

  /** The recovery points as the store opened them, oldest first (the receiver starts from these). */
  get points(): readonly StoredPoint[] {
    return this.points_
  }

  /** The VM's disks its disk holds, of blocks / disks each (disk-set.ts). */
  get disks(): number {
    return this.g.disks ?? 1
  }

  /** The last cycle durably applied. */
  get appliedCycle(): number {
    return this.applied
  }

  /**
   * Opens (or creates, all zeros) the replica of `g.vm` in `dir` with its recovery points
   * (the oldest beyond `points_max` merged away); a shipment left half persisted is applied
   * again, and so is a revert left half done. The disk lies in `image` (default: disk.img).
   */
  static async open(
    dir: string,
    g: ReplicaGeometry,
    points_max = RECOVERY_POINTS_MAX,
    image: DiskImage = fileDiskImage(dir, g.block_size_bytes),
  ): Promise<ReplicaStore> {
    await mkdir(dir, { recursive: true, mode: 0o700 })
    const state = await readState(dir, g)
    const bytes = await image.load(g, state === undefined).catch((e: unknown) => {
      throw e instanceof DiskImageUnreadable ? corrupt(dir, e.message) : e
    })
    const store = new ReplicaStore(dir, g, image, bytes, state?.applied_cycle ?? 0)
    if (state === undefined) await store.markApplied(0)
    await store.redoPending()
    const { files, points } = await RecoveryPointFiles.open(dir, g, store.applied)
    store.files = files
    store.points_ = points
    await store.redoRevert()
    const excess = Math.max(0, store.points_.length - points_max) // the limit was lowered, or a merge cut short
    await store.files.remove(store.points_.slice(0, excess).map((p) => p.cycle))
    store.points_ = store.points_.slice(excess)
    return store
  }

  /** Makes an applied shipment durable: the undo entries, the redo log, the blocks, the state, then the points taken and merged. */
  async persist(s: LogShipment, points: PointChanges = NO_POINT_CHANGES): Promise<void> {
    for (const step of this.persistSteps(s, points)) await step()
  }

  /** The steps of persist, in order (a test stops after any of them, as a crash would). */
  persistSteps(s: LogShipment, points: PointChanges = NO_POINT_CHANGES): (() => Promise<void>)[] {
    return [
      () => this.keepUndo(points),
      () => this.logPending(s),
      () => this.writeBlocks(s),
      () => this.markApplied(s.cycle),
      () => this.settlePoints(points),
    ]
  }

  /** Step 0 of persist (public so a test can stop after it): the undo entries, synced. */
  async keepUndo(points: PointChanges): Promise<void> {
    await this.files.appendUndo(points.undo)
  }

  /** Step 4: the point taken gets its file, the points merged away lose theirs. */
  async settlePoints(points: PointChanges): Promise<void> {
    if (points.taken !== null) await this.files.create(points.taken.point, points.taken.taken_ms)
    await this.files.remove(points.merged)
  }

  /** Every recovery point deleted, durably (a resync or a failover). */
  clearPoints(): Promise<void> {
    return this.files.clear()
  }

  /** Step 1 of persist (public so a test can stop after it, as a crash would): the shipment, durable. */
  async logPending(s: LogShipment): Promise<void> {
    const body = encodeBody(s.blocks, this.g.block_size_bytes)
    const header = {
      cycle: s.cycle,
      closed_at_ms: s.closed_at_ms,
      writes_logged: s.writes_logged,
      logged_bytes: s.logged_bytes,
      body_bytes: body.length,
    }
    await writeDurableFile(join(this.dir, 'pending.hrl'), Buffer.concat([Buffer.from(JSON.stringify(header) + '\n'), body]))
  }

  /** Step 2: the shipment's blocks into the disk image, durably. */
  async writeBlocks(s: LogShipment): Promise<void> {
    await this.image.write(s.blocks)
  }

  /** Step 3: state.json says `cycle` is applied; the redo log goes. */
  async markApplied(cycle: number): Promise<void> {
    await writeDurableJson(join(this.dir, 'state.json'), { format: 1, ...this.g, applied_cycle: cycle })
    this.applied = cycle
    await removeIfPresent(join(this.dir, 'pending.hrl'))
  }

  /** A copy of the disk as it is now, in memory only (a test failover runs on it). */
  copy(): ReplicaDisk {
    return new MemoryReplicaDisk((this.disk as MemoryReplicaDisk).bytes.slice(), this.g.block_size_bytes)
  }

  /**
   * A revert to the recovery point of `cycle` (the receiver wrote `blocks` in memory), made
   * durable: revert.json, the blocks, the state, then the points go and revert.json last.
   */
  async revert(cycle: number, blocks: ReadonlyMap<number, Uint8Array>): Promise<void> {
    await writeDurableJson(join(this.dir, 'revert.json'), { format: 1, cycle })
    const written = [...blocks].map(([block, data]) => ({ block, data }))
    await this.writeBlocks({ vm: this.g.vm, cycle, closed_at_ms: 0, blocks: written, writes_logged: 0, logged_bytes: 0 })
    await this.markApplied(cycle)
    await this.clearPoints()
    this.points_ = []
    await removeIfPresent(join(this.dir, 'revert.json'))
  }

  /** A revert cut short: done again from the points still there (or, its state written, only their deletion finished). */
  private async redoRevert(): Promise<void> {
    const raw = await readDurableJson(join(this.dir, 'revert.json'))
    if (raw === undefined) return
    const marker = revertSchema.safeParse(raw)
    if (!marker.success) throw corrupt(this.dir, 'revert.json is not a revert')
    const { cycle } = marker.data
    let blocks = new Map<number, Uint8Array>()
    if (this.points_.some((p) => p.cycle === cycle)) {
      const points = new RecoveryPoints()
      points.restore(this.points_)
      blocks = points.revertTo(cycle)
    } else if (cycle !== this.applied) throw corrupt(this.dir, `revert.json reverts to cycle ${cycle}, which has no recovery point`)
    for (const [block, data] of blocks) this.disk.writeBlock(block, data)
    await this.revert(cycle, blocks)
  }

  private async redoPending(): Promise<void> {
    const s = await readPending(this.dir, this.g)
    if (s === undefined) return
    if (s.cycle !== this.applied + 1) return removeIfPresent(join(this.dir, 'pending.hrl')) // applied already, or not next: nothing to redo
    if (s.blocks.some((b) => b.block >= this.g.disk_blocks)) throw corrupt(this.dir, 'pending.hrl writes past the disk')
    for (const b of s.blocks) this.disk.writeBlock(b.block, b.data)
    await this.writeBlocks(s)
    await this.markApplied(s.cycle)
  }
}

const corrupt = (dir: string, what: string): HvlabError =>
  new HvlabError('HVLAB_E_STATE', `the replica in ${dir} cannot be trusted (${what}); remove it and replicate the VM again`)

async function readState(dir: string, g: ReplicaGeometry): Promise<z.infer<typeof stateSchema> | undefined> {
  const raw = await readDurableJson(join(dir, 'state.json'))
  if (raw === undefined) return undefined
  const state = stateSchema.safeParse(raw)
  if (!state.success) throw corrupt(dir, 'state.json is not a replica state')
  const d = state.data
  if (d.vm !== g.vm || d.block_size_bytes !== g.block_size_bytes || d.disk_blocks !== g.disk_blocks || (d.disks ?? 1) !== (g.disks ?? 1))
    throw corrupt(dir, `it is vm ${d.vm}'s, ${d.disks ?? 1} disk(s), ${d.disk_blocks} blocks of ${d.block_size_bytes} bytes`)
  return d
}

/** The redo log, or undefined when there is none (it is written whole: a temp file renamed into place). */
async function readPending(dir: string, g: ReplicaGeometry): Promise<LogShipment | undefined> {
  let file: Buffer
  try {
    file = await readFile(join(dir, 'pending.hrl'))
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw e
  }
  const eol = file.indexOf(0x0a)
  let header
  try {
    header = pendingHeaderSchema.parse(JSON.parse(file.subarray(0, eol).toString('utf8')))
  } catch {
    throw corrupt(dir, 'pending.hrl has no valid header')
  }
  const body = file.subarray(eol + 1)
  if (body.length !== header.body_bytes) throw corrupt(dir, 'pending.hrl does not hold the blocks its header says')
  try {
    return { vm: g.vm, ...header, blocks: decodeBody(body, g.block_size_bytes, 'pending.hrl') }
  } catch {
    throw corrupt(dir, 'pending.hrl does not hold the blocks its header says')
  }
}
