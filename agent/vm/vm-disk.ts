/**
 * A running VM's disk: writes blocks to its volume on an array at `disk_iops`, each
 * carrying the owner's reservation epoch (read per write, so a host that moves to a newer
 * cluster epoch writes with it at once). Each block holds a disk write record (vm, seq,
 * epoch, block, value) that a checker can verify; writes walk a ring of the volume's first
 * blocks, and at most `queue_depth` are in flight (never two on the same block, so the
 * order of writes to one block is the order of their seqs).
 *
 * Fencing: when the array refuses a write for a stale epoch, this host has been fenced —
 * the disk stops writing for good ('fenced'), reports `vm.disk-fenced`, and a zombie host
 * does not keep trying. Other failures (array down, timeout) count as errors and the
 * writer carries on at its rate.
 *
 * Writes that fall due while the queue is full are skipped (counted), not queued: a slow
 * array slows the guest's disk, it does not build a backlog. `pause()` (migration
 * blackout) stops issuing and resolves once nothing is in flight; `detach()` stops for
 * good and waits for in-flight writes.
 *
 * The guest's application writes in transactions of two blocks: the write of an even seq
 * is a transaction's data, the next (odd) seq its commit record (disk-transactions.ts tells
 * a torn one: one of the two on a disk without the other). Up to `queue_depth` writes are
 * in flight, so a crash may catch a transaction half written. `freeze()` is the
 * application's part of a VSS snapshot: it finishes the transaction it has open (writes its
 * commit record), holds new ones, and resolves once nothing is in flight; `thaw()` resumes.
 *
 * A write sink (`journal`, disk-write-journal.ts) hears of each write right before it is
 * sent and once it has completed (acked, refused or failed), so a checker can hold every
 * write's outcome against what the arrays hold.
 */
import type { Clock } from '../../shared/clock.js'
import { HvlabError, describeError, type HvlabCode } from '../../shared/errors.js'
import { VM_DISK_IOPS_MAX, type VmDiskCountersMessage } from '../../shared/protocol/cluster-messages.js'
import { mulberry32 } from '../../shared/seeded-random.js'
import type { DetailsOf } from '../../shared/timeline/events.js'
import type { PeerConnection } from '../../shared/transport/peer-connection.js'
import { DISK_RECORD_BLOCK_BYTES_MIN, encodeDiskWrite, type DiskWriteRecord } from './disk-write-record.js'

export { VM_DISK_IOPS_MAX }
/** Writes in flight at once, at most. */
export const DISK_QUEUE_DEPTH = 8
export const DISK_BLOCK_SIZE_BYTES_DEFAULT = 4096
/** The writer cycles over at most this many blocks at the start of the volume (16 MiB at 4 KiB), so a checker reads little. */
export const DISK_WRITE_AREA_BLOCKS_MAX = 4096
/** Acknowledged writes kept for checkers. */
export const DISK_ACKED_HISTORY_MAX = 1024
/** How often the writer wakes to issue what fell due. */
export const DISK_TICK_MS = 10
/** The achieved write rate `vm inspect` shows is measured over intervals of at least this long. */
export const DISK_RATE_INTERVAL_MS = 1000
/** How long one block write may take before it counts as an error. */
export const DISK_WRITE_TIMEOUT_MS = 10_000

export type VmDiskState = VmDiskCountersMessage['state']
export type VmDiskCounters = VmDiskCountersMessage

/** Where a VM's disk is, and whose writes it carries. */
export interface VmDiskWriteTarget {
  /** This host (the writer's name on the array's presentation). */
  host: string
  array: string
  volume: string
  size_bytes: number
  /** The owner's reservation epoch now (the cluster epoch this host holds). */
  epoch(): number
  initiator?: string
  /** Which of the VM's disks this is (0: its first; data disks 1…); absent: 0. */
  disk?: number
}

export interface BlockWriteRequest {
  volume: string
  host: string
  initiator?: string
  epoch: number
  block: number
  blocks: number
}

export interface BlockReadRequest {
  volume: string
  host: string
  initiator?: string
  block: number
  blocks: number
}

/** How blocks reach an array: over the mesh in production, in-process in tests. */
export interface BlockIoPort {
  /** Resolves once the array has the write durably; rejects with the array's refusal. */
  write(array: string, request: BlockWriteRequest, data: Uint8Array): Promise<void>
  read(array: string, request: BlockReadRequest): Promise<Uint8Array>
}

export type DiskEventSink = (kind: 'vm.disk-fenced', details: DetailsOf<'vm.disk-fenced'>) => void

/** How a block write ended: acknowledged, refused by the array (nothing written), or failed (in doubt: it may have landed). */
export type DiskWriteOutcome = 'acked' | 'refused' | 'failed'

/** Where a write goes: the writing host, the array, the volume and which of the VM's disks it is (absent: 0). */
export type DiskWritePlace = Pick<VmDiskWriteTarget, 'host' | 'array' | 'volume' | 'disk'>

/**
 * Told of every block write: `issued` right before it is sent, `completed` once it has
 * ended, with the error's stable code when it did not succeed (null for an ack or an error
 * that is not an HvlabError). Neither may throw; disk-write-journal.ts keeps them in a file.
 */
export interface DiskWriteSink {
  issued(r: DiskWriteRecord, to: DiskWritePlace): void
  completed(r: DiskWriteRecord, outcome: DiskWriteOutcome, code: HvlabCode | null, to: DiskWritePlace): void
}

/**
 * The refusals that guarantee nothing was written: a stale epoch (checked before the write)
 * and a full disk (refused before anything is written). A plain HVLAB_E_REFUSED does not: a
 * sync remote-copy write failed under fail_wrt_on_err may be on the primary.
 */
export const DISK_WRITE_REFUSAL_CODES: readonly HvlabCode[] = ['HVLAB_E_FENCED', 'HVLAB_E_DISK_FULL']

export interface VmDiskOptions {
  vm: string
  target: VmDiskWriteTarget
  io: BlockIoPort
  clock: Clock
  disk_iops?: number
  block_size_bytes?: number
  queue_depth?: number
  /** The seq of the first write (a migrated VM continues its source's sequence). */
  first_seq?: number
  /** The value a write records; default a seeded generator. */
  value?: (seq: number) => number
  seed?: number
  onEvent?: DiskEventSink
  /** Hears of every write (the host's disk write journal); absent: nobody does. */
  journal?: DiskWriteSink
}

/** Is this the array's stale-epoch refusal (array-emulator/fencing.ts: HVLAB_E_FENCED, within HVLAB_E_REFUSED)? */
export function isStaleEpochRefusal(e: unknown): boolean {
  return HvlabError.has(e, 'HVLAB_E_FENCED')
}

/** How a write that threw ended: 'refused' for a refusal that wrote nothing, else 'failed' (in doubt); and its stable code. */
export function failedWriteOutcome(e: unknown): { outcome: 'refused' | 'failed'; code: HvlabCode | null } {
  if (!(e instanceof HvlabError)) return { outcome: 'failed', code: null }
  const refused = DISK_WRITE_REFUSAL_CODES.some((c) => HvlabError.has(e, c))
  return { outcome: refused ? 'refused' : 'failed', code: e.wireCode }
}

export function checkDiskIops(disk_iops: number): number {
  if (!Number.isInteger(disk_iops) || disk_iops < 0 || disk_iops > VM_DISK_IOPS_MAX) {
    throw new HvlabError('HVLAB_E_USAGE', `disk_iops must be an integer 0–${VM_DISK_IOPS_MAX}, got ${disk_iops}`)
  }
  return disk_iops
}

export class VmDisk {
  readonly vm: string
  readonly target: VmDiskWriteTarget
  readonly block_size_bytes: number
  readonly queue_depth: number
  /** Blocks the writer cycles over. */
  readonly area_blocks: number
  private readonly io: BlockIoPort
  private readonly clock: Clock
  private readonly valueOf: (seq: number) => number
  private readonly onEvent: DiskEventSink | undefined
  private readonly journal: DiskWriteSink | undefined
  private disk_iops_ = 0
  private paused_ = false
  /** The freeze holding new transactions (its generation), or null. */
  private frozen: number | null = null
  private freezes = 0
  private fenced_ = false
  private detached_ = false
  private next_seq: number
  private carry = 0
  private last_tick_ms = 0
  private cancelTimer: (() => void) | null = null
  private readonly inFlight = new Map<number, Promise<void>>() // block → write
  private drainWaiters: (() => void)[] = []
  private readonly acked: DiskWriteRecord[] = []
  private counters_ = { writes_issued: 0, writes_acked: 0, writes_refused: 0, write_errors: 0, writes_skipped: 0 }
  /** Where the current rate interval began, with the counters then; and the rates the last interval achieved. */
  private rate_window = { start_ms: 0, writes_acked: 0, writes_skipped: 0 }
  private achieved = { writes_acked_per_s: 0, writes_skipped_per_s: 0 }
  private last_acked_seq: number | null = null
  private last_epoch: number | null = null
  private last_error: string | null = null
  private last_write_failed = false

  constructor(o: VmDiskOptions) {
    this.vm = o.vm
    this.target = o.target
    this.io = o.io
    this.clock = o.clock
    this.rate_window.start_ms = o.clock.now()
    this.onEvent = o.onEvent
    this.journal = o.journal
    this.block_size_bytes = o.block_size_bytes ?? DISK_BLOCK_SIZE_BYTES_DEFAULT
    if (!Number.isSafeInteger(this.block_size_bytes) || this.block_size_bytes < DISK_RECORD_BLOCK_BYTES_MIN) {
      throw new HvlabError(
        'HVLAB_E_USAGE',
        `vm ${o.vm}: disk block size ${this.block_size_bytes} is below ${DISK_RECORD_BLOCK_BYTES_MIN} bytes`,
      )
    }
    const blocks = Math.floor(o.target.size_bytes / this.block_size_bytes)
    if (!Number.isSafeInteger(o.target.size_bytes) || blocks < 1) {
      throw new HvlabError(
        'HVLAB_E_USAGE',
        `vm ${o.vm}: volume ${o.target.volume} of ${o.target.size_bytes} bytes holds no whole ${this.block_size_bytes}-byte block`,
      )
    }
    this.area_blocks = Math.min(blocks, DISK_WRITE_AREA_BLOCKS_MAX)
    this.queue_depth = o.queue_depth ?? DISK_QUEUE_DEPTH
    if (!Number.isInteger(this.queue_depth) || this.queue_depth < 1 || this.queue_depth > DISK_QUEUE_DEPTH) {
      throw new HvlabError('HVLAB_E_USAGE', `vm ${o.vm}: disk queue depth must be 1–${DISK_QUEUE_DEPTH}, got ${this.queue_depth}`)
    }
    this.next_seq = o.first_seq ?? 0
    if (!Number.isSafeInteger(this.next_seq) || this.next_seq < 0)
      throw new HvlabError('HVLAB_E_USAGE', `vm ${o.vm}: first disk seq ${this.next_seq} is not a non-negative integer`)
    const random = mulberry32(o.seed ?? 1)
    this.valueOf = o.value ?? (() => (random() * 4294967296) >>> 0)
    this.setIops(o.disk_iops ?? 0)
  }

  get state(): VmDiskState {
    if (this.detached_) return 'detached'
    if (this.fenced_) return 'fenced'
    if (this.paused_ || this.frozen !== null) return 'paused'
    return this.disk_iops_ === 0 ? 'idle' : 'writing'
  }

  get disk_iops(): number {
    return this.disk_iops_
  }

  /** The seq the next write will carry (what a migration hands to the destination). */
  get nextSeq(): number {
    return this.next_seq
  }

  /** Changes the write rate live (0 = idle). */
  setIops(disk_iops: number): void {
    this.disk_iops_ = checkDiskIops(disk_iops)
    this.reschedule()
  }

  /** Stops issuing writes; resolves once none is in flight. */
  pause(): Promise<void> {
    this.paused_ = true
    this.reschedule()
    return this.drained()
  }

  resume(): void {
    this.paused_ = false
    this.reschedule()
  }

  /**
   * A VSS freeze: no new transaction begins; the open one is finished (its commit record
   * written). Resolves with the freeze's generation once nothing is in flight.
   */
  async freeze(): Promise<number> {
    const generation = ++this.freezes
    this.frozen = generation
    this.reschedule()
    await this.drained()
    if (this.next_seq % 2 === 1 && !this.fenced_ && !this.detached_ && this.frozen === generation) {
      this.issue() // the open transaction's commit record (its block has nothing in flight now)
      await this.drained()
    }
    return generation
  }

  /** Ends the freeze (of `generation` only, when given): transactions begin again. */
  thaw(generation?: number): void {
    if (this.frozen === null || (generation !== undefined && generation !== this.frozen)) return
    this.frozen = null
    this.reschedule()
  }

  /** The freeze under way (its generation), or null. */
  get frozenGeneration(): number | null {
    return this.frozen
  }

  /** Stops for good; resolves with the final counters once no write is in flight. */
  async detach(): Promise<VmDiskCounters> {
    this.detached_ = true
    this.reschedule()
    await this.drained()
    return this.counters()
  }

  counters(): VmDiskCounters {
    this.sampleRate(this.clock.now())
    return {
      array: this.target.array,
      volume: this.target.volume,
      state: this.state,
      disk_iops: this.disk_iops_,
      in_flight: this.inFlight.size,
      ...this.counters_,
      ...this.achieved,
      last_acked_seq: this.last_acked_seq,
      last_epoch: this.last_epoch,
      last_error: this.last_error,
    }
  }

  /** The newest write that finished failed (refused or an error); false before any finished. */
  get lastWriteFailed(): boolean {
    return this.last_write_failed
  }

  /** The last acknowledged writes (at most DISK_ACKED_HISTORY_MAX), oldest seq first. */
  history(): DiskWriteRecord[] {
    return [...this.acked].sort((a, b) => a.seq - b.seq)
  }

  /** The highest seq issued so far, or null. */
  get issuedThroughSeq(): number | null {
    return this.counters_.writes_issued === 0 ? null : this.next_seq - 1
  }

  /**
   * Issues what `elapsed_ms` of the rate makes due (at most one second's worth), within the
   * free queue slots. The timer calls it; tests may call it directly. Returns writes issued.
   */
  advance(elapsed_ms: number): number {
    if (this.state !== 'writing' || elapsed_ms <= 0) return 0
    const due = this.disk_iops_ * (Math.min(elapsed_ms, 1000) / 1000) + this.carry
    const wanted = Math.floor(due)
    this.carry = due - wanted
    let issued = 0
    while (issued < wanted && this.inFlight.size < this.queue_depth && this.issue()) issued++
    this.counters_.writes_skipped += wanted - issued
    return issued
  }

  /** Ends the rate interval once it is DISK_RATE_INTERVAL_MS long: writes acked and skipped per second over it. */
  private sampleRate(now_ms: number): void {
    const w = this.rate_window
    const elapsed_ms = now_ms - w.start_ms
    if (elapsed_ms < DISK_RATE_INTERVAL_MS) return
    const perSecond = (n: number): number => Math.round(((n * 1000) / elapsed_ms) * 10) / 10
    this.achieved = {
      writes_acked_per_s: perSecond(this.counters_.writes_acked - w.writes_acked),
      writes_skipped_per_s: perSecond(this.counters_.writes_skipped - w.writes_skipped),
    }
    this.rate_window = { start_ms: now_ms, writes_acked: this.counters_.writes_acked, writes_skipped: this.counters_.writes_skipped }
  }

  private reschedule(): void {
    const run = this.state === 'writing'
    if (run && this.cancelTimer === null) {
      this.last_tick_ms = this.clock.now()
      this.carry = 0
      this.schedule()
    } else if (!run && this.cancelTimer !== null) {
      this.cancelTimer()
      this.cancelTimer = null
    }
  }

  private schedule(): void {
    this.cancelTimer = this.clock.setTimer(DISK_TICK_MS, () => {
      this.cancelTimer = null
      if (this.state !== 'writing') return
      const now = this.clock.now()
      this.advance(now - this.last_tick_ms)
      this.last_tick_ms = now
      this.sampleRate(now)
      if (this.state === 'writing' && this.cancelTimer === null) this.schedule()
    })
  }

  /** Sends the next write unless its block still has one in flight. */
  private issue(): boolean {
    const seq = this.next_seq
    const block = seq % this.area_blocks
    if (this.inFlight.has(block)) return false
    this.next_seq++
    const epoch = this.target.epoch()
    const record: DiskWriteRecord = { vm: this.vm, seq, epoch, block, value: this.valueOf(seq) >>> 0 }
    const data = encodeDiskWrite(record, this.block_size_bytes)
    const request: BlockWriteRequest = {
      volume: this.target.volume,
      host: this.target.host,
      ...(this.target.initiator !== undefined ? { initiator: this.target.initiator } : {}),
      epoch,
      block,
      blocks: 1,
    }
    this.counters_.writes_issued++
    this.last_epoch = epoch
    this.journal?.issued(record, this.target) // before it is sent: a kill from here on leaves the write on record
    const write = (async () => this.io.write(this.target.array, request, data))().then(
      () => this.acknowledged(record),
      (e: unknown) => this.failed(record, e),
    )
    this.inFlight.set(block, write)
    void write.finally(() => {
      this.inFlight.delete(block)
      if (this.inFlight.size === 0) for (const w of this.drainWaiters.splice(0)) w()
    })
    return true
  }

  private acknowledged(r: DiskWriteRecord): void {
    this.journal?.completed(r, 'acked', null, this.target)
    this.last_write_failed = false
    this.counters_.writes_acked++
    if (this.last_acked_seq === null || r.seq > this.last_acked_seq) this.last_acked_seq = r.seq
    this.acked.push(r)
    if (this.acked.length > DISK_ACKED_HISTORY_MAX) this.acked.shift()
  }

  private failed(r: DiskWriteRecord, e: unknown): void {
    if (this.journal) {
      const { outcome, code } = failedWriteOutcome(e)
      this.journal.completed(r, outcome, code, this.target)
    }
    this.last_write_failed = true
    this.last_error = describeError(e).slice(0, 1024)
    if (!isStaleEpochRefusal(e)) {
      this.counters_.write_errors++
      return
    }
    this.counters_.writes_refused++
    if (this.fenced_) return
    this.fenced_ = true
    this.reschedule()
    this.onEvent?.('vm.disk-fenced', {
      vm: this.vm,
      host: this.target.host,
      array: this.target.array,
      volume: this.target.volume,
      epoch: r.epoch,
      seq: r.seq,
      reason: this.last_error,
    })
  }

  private drained(): Promise<void> {
    if (this.inFlight.size === 0) return Promise.resolve()
    return new Promise((resolve) => this.drainWaiters.push(resolve))
  }
}

/** A mesh as the disk needs it: the connection to an array (p.mesh). */
export interface ArrayConnections {
  connection(name: string): Pick<PeerConnection, 'request'> | undefined
}

/** The production port: block-write / block-read requests over the host's connection to the array. */
export function meshBlockIoPort(mesh: ArrayConnections, timeout_ms = DISK_WRITE_TIMEOUT_MS): BlockIoPort {
  const connection = (array: string) => {
    const c = mesh.connection(array)
    if (!c) throw new HvlabError('HVLAB_E_CLOSED', `no connection to array ${array}; the host writes again once the mesh reconnects`)
    return c
  }
  return {
    async write(array, request, data) {
      const reply = await connection(array).request({ t: 'block-write', ...request }, { attachment: data, timeout_ms })
      if (reply.message.t !== 'block-written')
        throw new HvlabError('HVLAB_E_PROTOCOL', `array ${array} answered block-write with ${reply.message.t}`)
    },
    async read(array, request) {
      const reply = await connection(array).request({ t: 'block-read', ...request }, { timeout_ms })
      if (reply.message.t !== 'block-data')
        throw new HvlabError('HVLAB_E_PROTOCOL', `array ${array} answered block-read with ${reply.message.t}`)
      return reply.attachment
    },
  }
}
