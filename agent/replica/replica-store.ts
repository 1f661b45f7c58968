/**
 * A replica server's copy of one VM's disk on its host-local storage, durable across a
 * kill -9 (seed 002: the replica applies each log whole). In a folder of its own:
 *
 *   disk.img     the replica disk, block_size_bytes × disk_blocks
 *   state.json   the geometry and the last cycle applied (shared/durable-json.ts)
 *   pending.hrl  the shipment being applied: a JSON header line, then its body
 *                (shipment-frames.ts's part body, not deflated)
 *
 * Persisting a shipment is a redo log: the shipment is made durable first, then its
 * blocks are written into disk.img and synced, then state.json says it is applied, then
 * the log goes. A shipment carries each block's whole content, so writing it twice gives
 * the same disk: a crash before state.json changed leaves the log to apply again at the
 * next open; a crash before the log was durable leaves the disk as the last cycle left it
 * (the primary had no answer and sends the shipment again). The replica is never half a
 * cycle on reopening.
 *
 * The disk is also held in memory (`disk`, what ReplicaReceiver applies to), the size of
 * the lab's VM disks. Recovery points stay in memory: a restarted replica server keeps
 * only the latest point, as the disk is.
 */
import { mkdir, open, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { z } from 'zod'
import { HvlabError, describeError } from '../../shared/errors.js'
import { readDurableJson, removeIfPresent, writeDurableFile, writeDurableJson } from '../../shared/durable-json.js'
import { field } from '../../shared/protocol/define.js'
import type { LogShipment } from './replica-log.js'
import type { ReplicaDisk } from './replica-receiver.js'
import { decodeBody, encodeBody } from './shipment-frames.js'

export interface ReplicaGeometry {
  readonly vm: string
  readonly block_size_bytes: number
  readonly disk_blocks: number
}

const stateSchema = z.strictObject({
  format: z.literal(1),
  vm: field.name(),
  block_size_bytes: field.u32(),
  disk_blocks: field.uint(),
  applied_cycle: field.uint(),
})

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

  private constructor(
    private readonly dir: string,
    private readonly g: ReplicaGeometry,
    bytes: Uint8Array,
    applied_cycle: number,
  ) {
    this.disk = new MemoryReplicaDisk(bytes, g.block_size_bytes)
    this.applied = applied_cycle
  }

  /** The last cycle durably applied. */
  get appliedCycle(): number {
    return this.applied
  }

  /** Opens (or creates, all zeros) the replica of `g.vm` in `dir`; a shipment left half persisted is applied again. */
  static async open(dir: string, g: ReplicaGeometry): Promise<ReplicaStore> {
    await mkdir(dir, { recursive: true, mode: 0o700 })
    const state = await readState(dir, g)
    const bytes = state === undefined ? await createDisk(dir, g) : await readDisk(dir, g)
    const store = new ReplicaStore(dir, g, bytes, state?.applied_cycle ?? 0)
    if (state === undefined) await store.markApplied(0)
    await store.redoPending()
    return store
  }

  /** Makes an applied shipment durable: the redo log, the blocks, the state, in that order. */
  async persist(s: LogShipment): Promise<void> {
    await this.logPending(s)
    await this.writeBlocks(s)
    await this.markApplied(s.cycle)
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

  /** Step 2: the shipment's blocks into disk.img, synced. */
  async writeBlocks(s: LogShipment): Promise<void> {
    const fh = await open(join(this.dir, 'disk.img'), 'r+')
    try {
      for (const b of s.blocks) await fh.write(b.data, 0, b.data.length, b.block * this.g.block_size_bytes)
      await fh.sync()
    } finally {
      await fh.close()
    }
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

  /** The whole disk as it is in memory, made durable, and `cycle` marked applied (a revert to a recovery point). */
  async saveImage(cycle: number): Promise<void> {
    const bytes = (this.disk as MemoryReplicaDisk).bytes
    await writeDurableFile(join(this.dir, 'disk.img'), bytes)
    await this.markApplied(cycle)
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
  if (d.vm !== g.vm || d.block_size_bytes !== g.block_size_bytes || d.disk_blocks !== g.disk_blocks)
    throw corrupt(dir, `it is vm ${d.vm}'s, ${d.disk_blocks} blocks of ${d.block_size_bytes} bytes`)
  return d
}

async function createDisk(dir: string, g: ReplicaGeometry): Promise<Uint8Array> {
  const bytes = new Uint8Array(g.disk_blocks * g.block_size_bytes)
  await writeFile(join(dir, 'disk.img'), bytes, { mode: 0o600 })
  return bytes
}

async function readDisk(dir: string, g: ReplicaGeometry): Promise<Uint8Array> {
  const bytes = await readFile(join(dir, 'disk.img')).catch((e: unknown) => {
    throw corrupt(dir, `disk.img cannot be read: ${describeError(e)}`)
  })
  if (bytes.length !== g.disk_blocks * g.block_size_bytes) throw corrupt(dir, `disk.img is ${bytes.length} bytes`)
  return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength)
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
