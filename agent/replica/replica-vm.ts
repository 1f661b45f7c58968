/**
 * One replica virtual machine on a replica server (seed 002): its disk on the server's
 * storage (replica-store.ts), the receiver that judges and applies the primary's
 * shipments (replica-receiver.ts), and the resync the primary drives when its log cannot
 * be trusted (block hashes out, differing blocks in). Every request of one VM runs alone,
 * in order: a shipment is durable before its answer goes back.
 *
 * If making a shipment durable fails, the replica in memory is ahead of its disk; it is
 * dropped (`broken`), and the primary's next request finds no replica open: its shipment is
 * refused as `not-begun`, and the resync that follows opens the store again from disk.
 */
import { createHash } from 'node:crypto'
import { scaled } from '../../shared/clock.js'
import { LAB_CLOCK_SKEW_MS } from '../../shared/consensus/lease-timings.js'
import { HvlabError } from '../../shared/errors.js'
import type { MessageOf } from '../../shared/protocol/messages.js'
import { SHIPMENT_PART_BODY_BYTES_MAX, type ReplicaSideStatus } from '../../shared/protocol/replica-messages.js'
import { SerialQueue } from '../../shared/serial-queue.js'
import { ReplicaReceiver } from './replica-receiver.js'
import { ReplicaStore, type ReplicaGeometry } from './replica-store.js'
import { decodePartBody } from './shipment-frames.js'

/** Replica takes a recovery point every hour (before the lab's timeScale). */
export const RECOVERY_POINT_EVERY_MS = 3_600_000

export interface ReplicaVmOptions {
  readonly dir: string
  readonly geometry: ReplicaGeometry
  readonly recovery_points: number
  readonly time_scale: number
  /** The primary server replicating it now. */
  readonly from: string
}

export class ReplicaVm {
  private readonly queue = new SerialQueue()
  private receiver: ReplicaReceiver
  private resyncing_ = false
  private broken_ = false
  private applied_closed_at_ms: number | null = null
  from: string

  private constructor(
    private readonly store: ReplicaStore,
    private readonly o: ReplicaVmOptions,
  ) {
    this.from = o.from
    this.receiver = this.newReceiver()
  }

  static async open(o: ReplicaVmOptions): Promise<ReplicaVm> {
    return new ReplicaVm(await ReplicaStore.open(o.dir, o.geometry), o)
  }

  get vm(): string {
    return this.o.geometry.vm
  }
  get geometry(): ReplicaGeometry {
    return this.o.geometry
  }
  /** Its disk in memory may be ahead of the durable one: drop it and open it again. */
  get broken(): boolean {
    return this.broken_
  }

  /** One part of a shipment; the answer goes back only once an applied shipment is durable. */
  onPart(m: MessageOf<'replica-log-part'>, attachment: Uint8Array, now_ms: number): Promise<MessageOf<'replica-log-answer'>> {
    return this.queue.run(async () => {
      const { answer, applied } = this.receiver.onPart(m, attachment, now_ms)
      if (applied === null) return answer
      await this.durably(() => this.store.persist(applied))
      this.applied_closed_at_ms = applied.closed_at_ms
      return answer
    })
  }

  /** SHA-256 of each block from `first_block`, 32 bytes apiece. */
  hashes(first_block: number, blocks: number): Uint8Array {
    const g = this.o.geometry
    if (first_block + blocks > g.disk_blocks)
      throw new HvlabError('HVLAB_E_USAGE', `vm ${g.vm}'s replica has ${g.disk_blocks} blocks; blocks ${first_block}+${blocks} lie past it`)
    const out = Buffer.alloc(blocks * 32)
    for (let i = 0; i < blocks; i++)
      createHash('sha256')
        .update(this.store.disk.readBlock(first_block + i))
        .digest()
        .copy(out, i * 32)
    return out
  }

  /** Blocks of a resync, written durably; the replica is not usable until the resync is done. */
  resyncBlocks(m: MessageOf<'replica-resync-blocks'>, attachment: Uint8Array): Promise<void> {
    return this.queue.run(async () => {
      const g = this.o.geometry
      const blocks = decodeResyncBody(m, attachment, g)
      this.resyncing_ = true
      for (const b of blocks) this.store.disk.writeBlock(b.block, b.data)
      await this.durably(() => this.store.writeBlocks({ vm: g.vm, cycle: 0, closed_at_ms: 0, blocks, writes_logged: 0, logged_bytes: 0 }))
    })
  }

  /** The resync is done: the replica is the primary's disk as of the log `next_cycle` opened. */
  resyncDone(next_cycle: number): Promise<void> {
    return this.queue.run(async () => {
      await this.durably(() => this.store.markApplied(next_cycle - 1))
      this.receiver.resynced(next_cycle)
      this.resyncing_ = false
      this.applied_closed_at_ms = null
    })
  }

  status(): ReplicaSideStatus {
    const g = this.o.geometry
    return {
      vm: g.vm,
      from: this.from,
      applied_cycle: this.receiver.appliedCycle,
      applied_closed_at_ms: this.applied_closed_at_ms,
      resyncing: this.resyncing_,
      recovery_points: this.receiver.recoveryPoints().map((p) => ({ cycle: p.cycle, at_ms: p.at_ms, app_consistent: p.app_consistent })),
      disk_bytes: g.disk_blocks * g.block_size_bytes,
    }
  }

  private newReceiver(): ReplicaReceiver {
    return new ReplicaReceiver({
      vm: this.o.geometry.vm,
      disk: this.store.disk,
      recovery_points: this.o.recovery_points,
      point_every_ms: scaled(RECOVERY_POINT_EVERY_MS, this.o.time_scale),
      clock_skew_ms: LAB_CLOCK_SKEW_MS,
      staged_bytes_max: this.o.geometry.disk_blocks * this.o.geometry.block_size_bytes + SHIPMENT_PART_BODY_BYTES_MAX, // a shipment holds each block once
      applied_cycle: this.store.appliedCycle,
    })
  }

  private async durably(write: () => Promise<void>): Promise<void> {
    try {
      await write()
    } catch (e) {
      this.broken_ = true
      throw new HvlabError(
        'HVLAB_E_STATE',
        `vm ${this.vm}'s replica could not be written to disk; it is opened again from disk at the next resync`,
        {
          cause: e,
        },
      )
    }
  }
}

function decodeResyncBody(m: MessageOf<'replica-resync-blocks'>, attachment: Uint8Array, g: ReplicaGeometry) {
  const part = {
    t: 'replica-log-part',
    vm: g.vm,
    cycle: 0,
    part: 0,
    parts: 1,
    closed_at_ms: 0,
    block_size_bytes: g.block_size_bytes,
    writes_logged: 0,
    logged_bytes: 0,
    compression: 'none',
    body_bytes: m.body_bytes,
  } as const
  const blocks = decodePartBody(part, attachment)
  const past = blocks.find((b) => b.block >= g.disk_blocks)
  if (past !== undefined)
    throw new HvlabError('HVLAB_E_PROTOCOL', `block ${past.block} lies past vm ${g.vm}'s replica of ${g.disk_blocks} blocks`)
  return blocks
}
