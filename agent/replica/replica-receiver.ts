/**
 * The replica server's side of one VM's replication (seed 002), PURE over a block device:
 * log parts arrive (shipment-frames.ts stages them), the whole shipment is judged
 * (shipment-check.ts) and only then applied, block by block, each block's old content
 * first kept by the newest recovery point (recovery-points.ts). So the replica disk is
 * always the primary's disk as it was when some log was closed: crash-consistent.
 *
 * A recovery point is taken after a cycle is applied once `point_every_ms` has passed since
 * the last one (hourly in Replica, scaled by the lab's timeScale), and after every cycle
 * whose log closed while the guest was quiesced (`point_kind` application, the primary's
 * VSS snapshot every N hours): an application-consistent point, whenever it comes. A resync clears the
 * points (the seed: a resync makes them meaningless) and says which cycle comes next.
 *
 * Every part gets an answer (replica-log-answer); nothing a primary sends can throw out of
 * `onPart` or write a block of a shipment that is not applied whole. A shipment applied
 * comes back with its answer: the shell makes it durable (ReplicaStore.persist) before it
 * sends the answer, so the primary hears `applied` only for a cycle that survives a crash.
 * With it come the changes to the recovery points (undo entries kept, a point taken, points
 * merged away) that the store keeps with it; a receiver opened again starts from the points
 * the store kept.
 */
import { HvlabError } from '../../shared/errors.js'
import type { MessageOf } from '../../shared/protocol/messages.js'
import { RecoveryPoints, type KeptPoint, type PointChanges, type RecoveryPoint, type UndoEntry } from './recovery-points.js'
import { ShipmentAssembler, type AssembledPart } from './shipment-frames.js'
import { judgeShipment } from './shipment-check.js'
import type { LogShipment } from './replica-log.js'

/** The replica's copy of the VM's disk, a block at a time. */
export interface ReplicaDisk {
  readonly blocks: number
  readonly block_size_bytes: number
  readBlock(block: number): Uint8Array
  writeBlock(block: number, data: Uint8Array): void
}

/** Every block of `disk`, in order. */
export function* blocksOf(disk: ReplicaDisk): Generator<Uint8Array> {
  for (let b = 0; b < disk.blocks; b++) yield disk.readBlock(b)
}

/** `blocks` blocks of `disk` from `first`, one after another. */
export function readBlocks(disk: ReplicaDisk, first: number, blocks: number): Uint8Array {
  const out = new Uint8Array(blocks * disk.block_size_bytes)
  for (let i = 0; i < blocks; i++) out.set(disk.readBlock(first + i), i * disk.block_size_bytes)
  return out
}

export interface ReplicaReceiverOptions {
  readonly vm: string
  readonly disk: ReplicaDisk
  /** Recovery points kept (0–24). */
  readonly recovery_points: number
  /** A point is taken after an apply once this long has passed since the last one. */
  readonly point_every_ms: number
  /** How far ahead of this server's clock a log's close may lie (the lab's clock tolerance). */
  readonly clock_skew_ms: number
  /** Bytes of one shipment staged at most. */
  readonly staged_bytes_max: number
  /** The last cycle applied (0: the initial replication only). */
  readonly applied_cycle: number
  /** The points kept on disk (oldest first), and when the newest was taken (this server's clock); default none. */
  readonly restored_points?: readonly KeptPoint[]
  readonly last_point_ms?: number
}

type Answer = MessageOf<'replica-log-answer'>

export interface PartOutcome {
  readonly answer: Answer
  /** The shipment this part completed and that was applied (in memory); null otherwise. */
  readonly applied: LogShipment | null
  /** What applying it did to the recovery points (null when nothing was applied). */
  readonly points: PointChanges | null
}

export class ReplicaReceiver {
  private readonly assembler: ShipmentAssembler
  private readonly points: RecoveryPoints
  private applied: number
  private last_point_ms = -Infinity

  constructor(private readonly o: ReplicaReceiverOptions) {
    this.assembler = new ShipmentAssembler({ vm: o.vm, staged_bytes_max: o.staged_bytes_max })
    this.points = new RecoveryPoints(o.recovery_points)
    this.points.restore(o.restored_points ?? [])
    this.applied = o.applied_cycle
    this.last_point_ms = o.last_point_ms ?? -Infinity
  }

  get appliedCycle(): number {
    return this.applied
  }

  /** Keep at most `n` recovery points from now on; the cycles of those merged away beyond it. */
  limitPoints(n: number): number[] {
    return this.points.limit(n)
  }

  recoveryPoints(): RecoveryPoint[] {
    return this.points.list()
  }

  /** One part from the primary: staged, or with the last, the shipment applied, ignored or refused. */
  onPart(m: MessageOf<'replica-log-part'>, attachment: Uint8Array, now_ms: number): PartOutcome {
    const answer = (outcome: Answer['outcome'], extra: Partial<Answer> = {}): PartOutcome => ({
      answer: { t: 'replica-log-answer', vm: this.o.vm, cycle: m.cycle, part: m.part, outcome, resync: false, ...extra },
      applied: null,
      points: null,
    })
    const assembled = this.stage(m, attachment)
    if (assembled === null) return answer('refused', { refusal: 'malformed' })
    if (assembled.kind === 'staged') return answer('staged')
    const verdict = judgeShipment(
      assembled.shipment,
      { vm: this.o.vm, applied_cycle: this.applied, disk_blocks: this.o.disk.blocks, block_size_bytes: this.o.disk.block_size_bytes },
      now_ms,
      this.o.clock_skew_ms,
    )
    if (verdict.action !== 'apply')
      return answer(verdict.action === 'ignore' ? 'ignored' : 'refused', { refusal: verdict.refusal, resync: verdict.resync })
    const points = this.apply(assembled.shipment, now_ms)
    return { ...answer('applied'), applied: assembled.shipment, points }
  }

  /** The part staged (null: malformed, the staged parts dropped). */
  private stage(m: MessageOf<'replica-log-part'>, attachment: Uint8Array): AssembledPart | null {
    try {
      return this.assembler.add(m, attachment)
    } catch (e) {
      if (e instanceof HvlabError && e.code === 'HVLAB_E_PROTOCOL') return null
      throw e
    }
  }

  private apply(s: LogShipment, now_ms: number): PointChanges {
    const undo: UndoEntry[] = []
    for (const b of s.blocks) {
      const kept = this.points.beforeWrite(b.block, this.o.disk.readBlock(b.block))
      if (kept !== null) undo.push(kept)
      this.o.disk.writeBlock(b.block, b.data)
    }
    this.applied = s.cycle
    const kind = s.point_kind ?? 'crash'
    if (kind === 'crash' && now_ms - this.last_point_ms < this.o.point_every_ms) return { undo, taken: null, merged: [] }
    const point: RecoveryPoint = { cycle: s.cycle, at_ms: s.closed_at_ms, kind }
    const merged = this.points.take(point)
    this.last_point_ms = now_ms
    const kept = this.points.list().at(-1)?.cycle === s.cycle
    return { undo, taken: kept ? { point, taken_ms: now_ms } : null, merged }
  }

  /** Returns the disk to the recovery point of `cycle` (an unplanned failover to an earlier point); the blocks written back. */
  revertTo(cycle: number): Map<number, Uint8Array> {
    const blocks = this.points.revertTo(cycle)
    for (const [block, data] of blocks) this.o.disk.writeBlock(block, data)
    this.applied = cycle
    this.points.clear()
    this.assembler.drop()
    return blocks
  }

  /** Forgets every recovery point (a resync begins, or the replica runs as the VM now). */
  dropPoints(): void {
    this.points.clear()
  }

  /** A resync made the disk equal to the primary's: the points are cleared and `next_cycle` comes next. */
  resynced(next_cycle: number): void {
    this.points.clear()
    this.assembler.drop()
    this.applied = next_cycle - 1
    this.last_point_ms = -Infinity
  }
}
