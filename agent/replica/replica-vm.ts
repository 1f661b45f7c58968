/**
 * One replica virtual machine on a replica server (seed 002): its disk on the server's
 * storage (replica-store.ts), the receiver that judges and applies the primary's
 * shipments (replica-receiver.ts), and the resync the primary drives when its log cannot
 * be trusted (block hashes out, differing blocks in). Every request of one VM runs alone,
 * in order: a shipment is durable before its answer goes back.
 *
 * Its recovery points are kept with the disk (replica-store.ts, recovery-point-files.ts): a
 * restarted server opens with every point it had. A resync deletes them before its first
 * block is written, and a failover once the replica is the VM's disk (it runs from there).
 *
 * If making a shipment durable fails, the replica in memory is ahead of its disk; it is
 * dropped (`broken`), and the primary's next request finds no replica open: its shipment is
 * refused as `not-begun`, and the resync that follows opens the store again from disk.
 */
import { createHash } from 'node:crypto'
import { LAB_CLOCK_SKEW_MS } from '../../shared/consensus/lease-timings.js'
import { HvlabError } from '../../shared/errors.js'
import type { MessageOf } from '../../shared/protocol/messages.js'
import {
  SHIPMENT_PART_BODY_BYTES_MAX,
  type Extension,
  type PrimaryHandover,
  type ReplicaSideStatus,
  type ReplicaVmState,
  type ReplicationSetting,
  type Reverse,
} from '../../shared/protocol/replica-messages.js'
import type { GuestLoadSetting } from '../../shared/protocol/guest-load.js'
import { SerialQueue } from '../../shared/serial-queue.js'
import type { DiskImage } from './disk-image.js'
import { judgeBegin, judgeEnd, type BeginAsk, type CleanEnd, type ReplicaStanding } from './primary-handover.js'
import { ReplicaReceiver, type ReplicaDisk } from './replica-receiver.js'
import { recoveryPointEveryMs } from './recovery-points.js'
import { ReplicaStore, type ReplicaGeometry } from './replica-store.js'
import type { ShippedBlock } from './replica-log.js'
import { decodeBody } from './shipment-frames.js'
import { writeReplicaVmRecord } from './replica-vm-record.js'

export { RECOVERY_POINT_EVERY_MS } from './recovery-points.js'

export interface ReplicaVmOptions {
  readonly dir: string
  readonly geometry: ReplicaGeometry
  readonly recovery_points: number
  readonly time_scale: number
  /** A lab acceleration (the topology's `recovery_point_every_ms`): a point this often, not hourly × time_scale. */
  readonly recovery_point_every_ms?: number
  readonly memory_mib: number
  /** The primary server replicating it now (this server, for a VM created here). */
  readonly from: string
  /** Default replicating (created-here: a VM of this server's own, its disk new). */
  readonly state?: ReplicaVmState
  /** It holds an initial copy; default: it has applied a cycle. */
  readonly has_copy?: boolean
  /** Extended replication: where this server forwards the replica. */
  readonly extension?: Extension
  /** Failed over (planned): where the VM's changes replicate back to. */
  readonly reverse?: Reverse
  /** It runs here (failed over, or created here) and was stopped: it does not start with the server. */
  readonly stopped?: true
  /** The guest load it last ran with here. */
  readonly load?: GuestLoadSetting
  /** The disks its primary replicates (disk-set.ts); absent: every one. */
  readonly included_disks?: readonly number[]
  /** It runs here, no cluster role's: the standalone host it replicates to. */
  readonly replication?: ReplicationSetting
  /** Where the disk lies (default: disk.img in `dir`). */
  readonly image?: DiskImage
}

/** Hears the blocks written into the replica from its primary (applied cycles, resyncs, an import), in order. */
export type ReplicaBlocksListener = (blocks: readonly ShippedBlock[]) => void

export type { ReplicaVmState }

export class ReplicaVm {
  private readonly queue = new SerialQueue()
  private readonly record_writes = new SerialQueue()
  private receiver: ReplicaReceiver
  private resyncing_ = false
  private broken_ = false
  private applied_closed_at_ms: number | null = null
  private state_: ReplicaVmState
  private has_copy_: boolean
  private extension_: Extension | null
  private reverse_: Reverse | null
  private stopped_: boolean
  private replication_: ReplicationSetting | null
  /** Recovery points kept: as opened, then as its primary's latest begin asks. */
  private recovery_points_: number
  private load_: GuestLoadSetting | undefined
  /** The disks its primary replicates (null: every one). */
  private included_: readonly number[] | null
  /** The last primary's clean end (primary-handover.ts), kept in memory only: a restarted server has none, and its next primary resyncs. */
  private ended: CleanEnd | null = null
  /** Extended replication's forwarder, once started (extended-replication.ts). */
  onBlocks: ReplicaBlocksListener | null = null
  from: string
  memory_mib: number

  private constructor(
    private readonly store_: ReplicaStore,
    private readonly o: ReplicaVmOptions,
  ) {
    this.from = o.from
    this.memory_mib = o.memory_mib
    this.state_ = o.state ?? 'replicating'
    this.receiver = this.newReceiver()
    this.has_copy_ = o.has_copy ?? this.receiver.appliedCycle > 0
    this.extension_ = o.extension ?? null
    this.reverse_ = o.reverse ?? null
    this.stopped_ = o.stopped === true
    this.replication_ = o.replication ?? null
    this.recovery_points_ = o.recovery_points
    this.load_ = o.load
    this.included_ = o.included_disks ?? null
  }

  /** Opens (or creates) the replica in `o.dir` and records what it is (replica-vm-record.ts). */
  static async open(o: ReplicaVmOptions): Promise<ReplicaVm> {
    const vm = new ReplicaVm(await ReplicaStore.open(o.dir, o.geometry, o.recovery_points, o.image), o)
    await vm.saveRecord()
    return vm
  }

  get state(): ReplicaVmState {
    return this.state_
  }

  /** The VM runs from this disk (failed over here, or created here): it is no replica now. */
  get runsHere(): boolean {
    return this.state_ !== 'replicating'
  }

  /**
   * It runs here (failed over, or created here) unless stopped: a restarted server starts it
   * again, with the guest load it last had (`load`), as Hyper-V's automatic start action does.
   */
  get startsWithServer(): boolean {
    return this.runsHere && !this.stopped_ && !this.broken_
  }

  get load(): GuestLoadSetting | undefined {
    return this.load_
  }

  /** It runs here now with `load` (started, or its load changed), kept in its record. */
  ranWith(load: GuestLoadSetting | undefined): Promise<void> {
    this.stopped_ = false
    this.load_ = load
    return this.saveRecord()
  }

  /** It was stopped here: it stays off, a restart of the server too. */
  stoppedHere(): Promise<void> {
    this.stopped_ = true
    return this.saveRecord()
  }

  private get runsHereWords(): string {
    return this.state_ === 'created-here'
      ? `vm ${this.vm} was created on this server and runs from its disk here`
      : `vm ${this.vm} has failed over to this replica server and runs from its replica here`
  }

  get extension(): Extension | null {
    return this.extension_
  }

  /** It runs here, no cluster role's, and replicates to another standalone host: how; null otherwise. */
  get replication(): ReplicationSetting | null {
    return this.replication_
  }

  /**
   * The VM that runs here (created here, or failed over here from another standalone host)
   * replicates to a standalone host from now on (null: no longer). Refused while it
   * replicates to the cluster, and for a replica.
   */
  replicateTo(setting: ReplicationSetting | null): Promise<void> {
    return this.queue.run(async () => {
      if (!this.runsHere) throw new HvlabError('HVLAB_E_STATE', `vm ${this.vm} is a replica here; it replicates from its primary`)
      if (this.reverse_ !== null)
        throw new HvlabError('HVLAB_E_STATE', `vm ${this.vm} replicates to the cluster; its replication is the cluster's to change`)
      this.replication_ = setting
      await this.saveRecord()
    })
  }

  /** Its changes go somewhere: to the cluster (`reverse`) or to a standalone host (`replication`). */
  get sendsChanges(): boolean {
    return this.runsHere && (this.reverse_ !== null || this.replication_ !== null) && !this.broken_
  }

  /** Failed over (planned) and reversed: where the VM's changes replicate back to; null otherwise. */
  get reverse(): Reverse | null {
    return this.reverse_
  }

  /** Forward the replica to a third server from now on (null: no longer), kept in its record. */
  extend(extension: Extension | null): Promise<void> {
    return this.queue.run(async () => {
      if (this.runsHere) throw new HvlabError('HVLAB_E_STATE', `${this.runsHereWords}; it is no replica to forward`)
      this.extension_ = extension
      await this.saveRecord()
    })
  }

  /** It holds an initial copy (imported, or a finished resync): a resync sends only what differs from it. */
  get hasCopy(): boolean {
    return this.has_copy_
  }

  /** The disk the replica VM runs on after a failover (its writes go to the replica server's storage). */
  get store(): ReplicaStore {
    return this.store_
  }

  /**
   * A primary begins (again): unless told to wait for the previous one (primary-handover.ts),
   * it replicates the VM from now on, going on from the previous primary's clean end or
   * (`take-over`) with a resync. In turn with the shipments, so it judges the replica as the
   * last one applied left it. Refused once the VM failed over here.
   */
  begin(
    ask: BeginAsk,
    memory_mib: number,
    recovery_points = this.recovery_points_,
    included: readonly number[] | null = this.included_,
  ): Promise<{ handover: PrimaryHandover; previous: string }> {
    return this.queue.run(async () => {
      if (this.runsHere)
        throw new HvlabError(
          this.state_ === 'failed-over' ? 'HVLAB_E_REPLICA_RUNS_ELSEWHERE' : 'HVLAB_E_STATE', // failed over: the primary's copy is the older one
          `${this.runsHereWords}; it takes no replication from ${ask.from}`,
        )
      const judged = judgeBegin(this.standing(), ask)
      // Other disks replicate now: a resync sends the newly included ones and blanks those left out (disk-set.ts).
      const handover = judged === 'continue' && !sameIncluded(included, this.included_) ? 'take-over' : judged
      const previous = handover === 'continue' ? this.ended!.from : this.from
      if (handover === 'wait') return { handover, previous }
      if (handover === 'take-over') this.ended = null
      this.from = ask.from
      this.included_ = included
      if (handover === 'take-over') await this.blankLeftOut() // a resync compares the disks that replicate only
      this.memory_mib = memory_mib
      await this.keepPoints(recovery_points)
      await this.saveRecord()
      return { handover, previous }
    })
  }

  /**
   * The disks its primary leaves out are blank here (disk-set.ts): written blank now where
   * they are not (left out since the last begin, or written while the VM ran here), as a
   * resync's blocks are. No block travels for them.
   */
  private async blankLeftOut(): Promise<void> {
    const g = this.o.geometry
    const disks = g.disks ?? 1
    if (this.included_ === null || this.included_.length === disks) return
    const per_disk = g.disk_blocks / disks
    const blank = new Uint8Array(g.block_size_bytes)
    const blocks: ShippedBlock[] = []
    for (let k = 0; k < disks; k++) {
      if (this.included_.includes(k)) continue
      for (let b = k * per_disk; b < (k + 1) * per_disk; b++)
        if (this.store_.disk.readBlock(b).some((x) => x !== 0)) blocks.push({ block: b, data: blank })
    }
    if (blocks.length > 0) await this.writeOutsideCycles(blocks)
  }

  /** Keeps at most `n` recovery points from now on (its replication set again with another count): the oldest beyond it merged away, durably. */
  private async keepPoints(n: number): Promise<void> {
    if (n === this.recovery_points_) return
    const merged = this.receiver.limitPoints(n)
    this.recovery_points_ = n
    await this.durably(() => this.store_.settlePoints({ undo: [], taken: null, merged }))
  }

  /** Its primary says it ended cleanly (its VM left it) with every change applied up to `end.cycle`; refused HVLAB_E_STATE otherwise. */
  primaryEnded(end: CleanEnd): Promise<void> {
    return this.queue.run(async () => {
      const judged = judgeEnd(this.standing(), end)
      if ('refused' in judged)
        throw new HvlabError(
          'HVLAB_E_STATE',
          `the replica of vm ${this.vm} does not stand where ${end.from} ended (${judged.refused}); its next primary resyncs it`,
        )
      this.ended = judged.ended
    })
  }

  private standing(): ReplicaStanding {
    const steady = this.state_ === 'replicating' && !this.resyncing_ && !this.broken_
    return { from: this.from, applied_cycle: this.receiver.appliedCycle, steady, ended: this.ended }
  }

  /**
   * A failover: the replica is made the VM's disk, from the latest cycle applied or (a
   * cycle) the recovery point taken after it; no shipment is applied after it. Refused
   * while a resync runs (the replica is not consistent then). `reverse` (a planned
   * failover): the VM's changes replicate back there from now on.
   */
  failover(recovery_cycle: number | null, reverse: Reverse | null = null, replication: ReplicationSetting | null = null): Promise<void> {
    return this.queue.run(async () => {
      if (this.state_ === 'failed-over')
        throw new HvlabError('HVLAB_E_STATE', `vm ${this.vm} has failed over already; it runs on this replica server`)
      if (this.runsHere) throw new HvlabError('HVLAB_E_STATE', `${this.runsHereWords}; it has no replica to fail over to`)
      if (this.resyncing_)
        throw new HvlabError(
          'HVLAB_E_STATE',
          `vm ${this.vm}'s replica is being resynchronised and is not consistent; wait until \`hvlab replica status\` shows it done`,
        )
      this.ended = null // the VM runs from the replica now: no primary goes on from it
      if (recovery_cycle !== null) await this.revertTo(recovery_cycle)
      await this.clearPoints() // the VM writes to the replica from now on: no point describes it
      this.state_ = 'failed-over'
      this.reverse_ = reverse
      this.replication_ = replication
      await this.saveRecord()
    })
  }

  /**
   * The VM failed over here unplanned (not reversed), or created here, replicates to the
   * cluster from now on: its changes go there (`reverse`), as after a planned failover.
   * Refused unless it runs from this disk and does not replicate to the cluster already.
   */
  replicateBack(reverse: Reverse): Promise<void> {
    return this.queue.run(async () => {
      if (!this.runsHere)
        throw new HvlabError('HVLAB_E_STATE', `vm ${this.vm} has not failed over to this replica server; it replicates here`)
      if (this.reverse_ !== null) throw new HvlabError('HVLAB_E_STATE', `vm ${this.vm} replicates back to the cluster already`)
      if (this.replication_ !== null)
        throw new HvlabError(
          'HVLAB_E_STATE',
          `vm ${this.vm} replicates to ${this.replication_.to}; \`hvlab replica disable ${this.vm}\` first`,
        )
      this.reverse_ = reverse
      await this.saveRecord()
    })
  }

  /**
   * A fail-back is done (the VM stopped here and its last changes went back): the replica is
   * a replica again, of the disk the VM left here, which is now its primary's, so the
   * primary's resync finds nothing that differs. For a VM created here, this is its planned
   * failover to the cluster: the same steps, and this disk becomes its replica.
   */
  failBack(): Promise<void> {
    return this.queue.run(async () => {
      if (!this.sendsChanges) throw new HvlabError('HVLAB_E_STATE', `vm ${this.vm} does not replicate from here; nothing to fail back`)
      this.state_ = 'replicating'
      this.reverse_ = null
      this.replication_ = null
      this.has_copy_ = true
      this.ended = null
      await this.saveRecord()
    })
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
      if (this.runsHere)
        return {
          t: 'replica-log-answer',
          vm: m.vm,
          cycle: m.cycle,
          part: m.part,
          outcome: 'refused',
          refusal: 'failed-over',
          resync: false,
        }
      const { answer, applied, points } = this.receiver.onPart(m, attachment, now_ms)
      if (applied === null) return answer
      await this.durably(() => this.store_.persist(applied, points ?? undefined))
      this.applied_closed_at_ms = applied.closed_at_ms
      this.onBlocks?.(applied.blocks)
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
        .update(this.store_.disk.readBlock(first_block + i))
        .digest()
        .copy(out, i * 32)
    return out
  }

  /** Blocks of a resync, written durably; the replica is not usable until the resync is done. */
  resyncBlocks(m: MessageOf<'replica-resync-blocks'>, attachment: Uint8Array): Promise<void> {
    return this.queue.run(async () => {
      const g = this.o.geometry
      await this.writeOutsideCycles(decodeResyncBody(m, attachment, g))
    })
  }

  /**
   * Blocks written outside the cycles (a resync's, an imported copy's), durably: the
   * replica is not consistent until the resync is done, and no recovery point describes
   * it any more (cleared before the first such block, which no undo log covers).
   */
  private async writeOutsideCycles(blocks: readonly ShippedBlock[]): Promise<void> {
    this.ended = null // no cycle carried these: no primary goes on without a resync
    if (!this.resyncing_) await this.clearPoints()
    this.resyncing_ = true
    const g = this.o.geometry
    for (const b of blocks) this.store_.disk.writeBlock(b.block, b.data)
    await this.durably(() => this.store_.writeBlocks({ vm: g.vm, cycle: 0, closed_at_ms: 0, blocks, writes_logged: 0, logged_bytes: 0 }))
    this.onBlocks?.(blocks)
  }

  /** The resync is done: the replica is the primary's disk as of the log `next_cycle` opened. */
  resyncDone(next_cycle: number): Promise<void> {
    return this.queue.run(async () => {
      await this.clearPoints()
      await this.durably(() => this.store_.markApplied(next_cycle - 1))
      this.receiver.resynced(next_cycle)
      this.ended = null
      this.resyncing_ = false
      this.applied_closed_at_ms = null
      await this.copyHeld()
    })
  }

  /**
   * The initial copy from an export (replica-export.ts), its blocks written durably: the
   * replica then holds a copy, but is not consistent (`resyncing`) until its primary has
   * sent what changed since the export. Refused once the VM failed over here.
   */
  importCopy(read: (apply: (blocks: readonly ShippedBlock[]) => Promise<void>) => Promise<number>): Promise<number> {
    return this.queue.run(async () => {
      if (this.runsHere) throw new HvlabError('HVLAB_E_STATE', `${this.runsHereWords}; it takes no initial copy`)
      const blocks = await read((part) => this.writeOutsideCycles(part))
      await this.copyHeld()
      return blocks
    })
  }

  private async copyHeld(): Promise<void> {
    if (this.has_copy_) return
    this.has_copy_ = true
    await this.saveRecord()
  }

  /** A copy of the replica as the last cycle left it (never half a shipment), for a test failover. */
  testCopy(): Promise<ReplicaDisk> {
    return this.queue.run(async () => {
      if (this.runsHere) throw new HvlabError('HVLAB_E_STATE', `${this.runsHereWords}; there is no replica to test`)
      if (this.resyncing_)
        throw new HvlabError(
          'HVLAB_E_STATE',
          `vm ${this.vm}'s replica is being resynchronised and is not consistent; try again once it is done`,
        )
      return this.store_.copy()
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
      state: this.state_,
      vm_running: false,
      test_vm_running: false,
      memory_mib: this.memory_mib,
      replication: this.replication_,
      ...(this.load_ === undefined ? {} : { load: this.load_ }),
      recovery_points: this.receiver.recoveryPoints().map((p) => ({ cycle: p.cycle, at_ms: p.at_ms, kind: p.kind })),
      disk_bytes: g.disk_blocks * g.block_size_bytes,
      ...(g.disks === undefined || g.disks === 1 ? {} : { disks: g.disks }),
      ...(this.included_ === null ? {} : { included_disks: [...this.included_] }),
    }
  }

  private async revertTo(cycle: number): Promise<void> {
    const points = this.receiver.recoveryPoints()
    if (!points.some((p) => p.cycle === cycle))
      throw new HvlabError(
        'HVLAB_E_NOT_FOUND',
        `vm ${this.vm}'s replica has no recovery point of cycle ${cycle} (it has ${points.map((p) => p.cycle).join(', ') || 'none'}); \`hvlab replica status ${this.vm}\` lists them`,
      )
    const blocks = this.receiver.revertTo(cycle)
    await this.durably(() => this.store_.revert(cycle, blocks))
  }

  private async clearPoints(): Promise<void> {
    this.receiver.dropPoints()
    await this.durably(() => this.store_.clearPoints())
  }

  /** Writes the record as it is when its turn comes; one at a time (a begin and an import may both change it). */
  private saveRecord(): Promise<void> {
    const g = this.o.geometry
    return this.record_writes.run(() =>
      writeReplicaVmRecord(this.o.dir, {
        vm: g.vm,
        block_size_bytes: g.block_size_bytes,
        disk_blocks: g.disk_blocks,
        ...(g.disks === undefined || g.disks === 1 ? {} : { disks: g.disks }),
        ...(this.included_ === null ? {} : { included_disks: [...this.included_] }),
        memory_mib: this.memory_mib,
        recovery_points: this.recovery_points_,
        from: this.from,
        state: this.state_,
        has_copy: this.has_copy_,
        ...(this.extension_ === null ? {} : { extension: this.extension_ }),
        ...(this.reverse_ === null ? {} : { reverse: this.reverse_ }),
        ...(this.stopped_ && this.runsHere ? { stopped: true as const } : {}),
        ...(this.load_ === undefined ? {} : { load: this.load_ }),
        ...(this.replication_ === null ? {} : { replication: this.replication_ }),
      }),
    )
  }

  private newReceiver(): ReplicaReceiver {
    return new ReplicaReceiver({
      vm: this.o.geometry.vm,
      disk: this.store_.disk,
      recovery_points: this.o.recovery_points,
      point_every_ms: recoveryPointEveryMs(this.o.time_scale, this.o.recovery_point_every_ms),
      clock_skew_ms: LAB_CLOCK_SKEW_MS,
      staged_bytes_max: this.o.geometry.disk_blocks * this.o.geometry.block_size_bytes + SHIPMENT_PART_BODY_BYTES_MAX, // a shipment holds each block once
      applied_cycle: this.store_.appliedCycle,
      restored_points: this.store_.points,
      ...(this.store_.points.length > 0 ? { last_point_ms: this.store_.points.at(-1)!.taken_ms } : {}),
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
  if (attachment.length !== m.body_bytes)
    throw new HvlabError(
      'HVLAB_E_PROTOCOL',
      `resync blocks of vm ${g.vm}: the body is ${attachment.length} bytes, its header says ${m.body_bytes}`,
    )
  const blocks = decodeBody(attachment, g.block_size_bytes, `resync blocks of vm ${g.vm}`)
  const past = blocks.find((b) => b.block >= g.disk_blocks)
  if (past !== undefined)
    throw new HvlabError('HVLAB_E_PROTOCOL', `block ${past.block} lies past vm ${g.vm}'s replica of ${g.disk_blocks} blocks`)
  return blocks
}

/** The same disks replicate (null: every one). */
function sameIncluded(a: readonly number[] | null, b: readonly number[] | null): boolean {
  return a === b || (a !== null && b !== null && a.length === b.length && a.every((k, i) => k === b[i]))
}
