/**
 * A VM's Hyper-V Replica log (the HRL of seed 002), PURE: every guest write goes to the
 * VM's disk and to its log. Each replication cycle the log is closed and shipped, and a new
 * one begins. Closing replays the log in reverse order, as Replica does, so the shipment
 * holds only the latest write of each block: a block written ten times in a cycle travels
 * once. The replica applies shipments in cycle order, so after each one its disk is a
 * crash-consistent image of the primary's at the moment the log was closed.
 *
 * The log's size is what the writes appended (every write, not only the latest of each
 * block): a log that grows past half of the disk is no longer worth shipping, and the VM
 * must be resynchronised instead (`needsResync`).
 */
import { HvlabError } from '../../shared/errors.js'
import type { RecoveryPointKind } from '../../shared/protocol/replica-limits.js'

export interface ReplicaLogOptions {
  readonly vm: string
  readonly block_size_bytes: number
  /** Blocks of the replicated disk. */
  readonly disk_blocks: number
  /** The cycle of the first log (a VM's first is 1; a log reopened after a restart continues its numbering). */
  readonly first_cycle?: number
}

/** One block in a shipment: its number and its content at the close. */
export interface ShippedBlock {
  readonly block: number
  readonly data: Uint8Array
}

/** A closed log, ready to ship: only the latest write of each block, in block order. */
export interface LogShipment {
  readonly vm: string
  readonly cycle: number
  /** When the log was closed (the primary's clock): the crash-consistent point it carries the replica to. */
  readonly closed_at_ms: number
  readonly blocks: readonly ShippedBlock[]
  /** Writes the log took during the cycle (at least blocks.length). */
  readonly writes_logged: number
  /** Bytes the log grew by during the cycle (every write appended). */
  readonly logged_bytes: number
  /** `application`: the log closed while the guest was quiesced (the replica takes an application-consistent point); absent: crash-consistent. */
  readonly point_kind?: RecoveryPointKind
}

export class ReplicaLog {
  private latest = new Map<number, Uint8Array>()
  private writes = 0
  private bytes = 0
  private cycle: number
  /** A log was closed (its cycle is spoken for). */
  private closed = false

  constructor(private readonly o: ReplicaLogOptions) {
    if (!Number.isSafeInteger(o.block_size_bytes) || o.block_size_bytes <= 0)
      throw new HvlabError(
        'HVLAB_E_INTERNAL',
        `replica log of vm ${o.vm}: block size must be a positive whole number, got ${o.block_size_bytes}`,
      )
    if (!Number.isSafeInteger(o.disk_blocks) || o.disk_blocks <= 0)
      throw new HvlabError(
        'HVLAB_E_INTERNAL',
        `replica log of vm ${o.vm}: disk blocks must be a positive whole number, got ${o.disk_blocks}`,
      )
    this.cycle = o.first_cycle ?? 1
  }

  /** Logs a guest write of one block (its content is copied: the caller may reuse the buffer). */
  append(block: number, data: Uint8Array): void {
    if (!Number.isSafeInteger(block) || block < 0 || block >= this.o.disk_blocks)
      throw new HvlabError(
        'HVLAB_E_INTERNAL',
        `replica log of vm ${this.o.vm}: block ${block} is outside the disk's ${this.o.disk_blocks} blocks`,
      )
    if (data.length !== this.o.block_size_bytes)
      throw new HvlabError(
        'HVLAB_E_INTERNAL',
        `replica log of vm ${this.o.vm}: a write of ${data.length} bytes, not one ${this.o.block_size_bytes}-byte block`,
      )
    this.latest.set(block, Uint8Array.from(data))
    this.writes += 1
    this.bytes += data.length
  }

  /**
   * Numbers the open log `cycle`, and the ones after it from there: a log opened as the VM
   * resumed on this host, before the replica server said where the replica stands. Only
   * before the first close, whose number would otherwise have been shipped already.
   */
  numberFrom(cycle: number): void {
    if (this.closed)
      throw new HvlabError(
        'HVLAB_E_INTERNAL',
        `replica log of vm ${this.o.vm}: cycle ${this.cycle - 1} was closed, it cannot be renumbered`,
      )
    if (!Number.isSafeInteger(cycle) || cycle < 1)
      throw new HvlabError('HVLAB_E_INTERNAL', `replica log of vm ${this.o.vm}: a cycle is a whole number from 1, got ${cycle}`)
    this.cycle = cycle
  }

  /** The cycle the open log will ship as. */
  get openCycle(): number {
    return this.cycle
  }

  /** Bytes the open log holds as written (every write). */
  get loggedBytes(): number {
    return this.bytes
  }

  /** Bytes its shipment would carry now (the latest write of each block). */
  get pendingBytes(): number {
    return this.latest.size * this.o.block_size_bytes
  }

  /** The log grew past half of the disk: resynchronise rather than ship it. */
  get needsResync(): boolean {
    return this.bytes > (this.o.disk_blocks * this.o.block_size_bytes) / 2
  }

  /** Closes the open log at `now_ms` into a shipment (the seed's reverse-order replay) and opens the next; `point_kind` application: the guest is quiesced now. */
  close(now_ms: number, point_kind: RecoveryPointKind = 'crash'): LogShipment {
    const blocks = [...this.latest].sort((a, b) => a[0] - b[0]).map(([block, data]) => ({ block, data }))
    const shipment: LogShipment = {
      vm: this.o.vm,
      cycle: this.cycle,
      closed_at_ms: now_ms,
      blocks,
      writes_logged: this.writes,
      logged_bytes: this.bytes,
      ...(point_kind === 'application' ? { point_kind } : {}),
    }
    this.latest = new Map()
    this.writes = 0
    this.bytes = 0
    this.cycle += 1
    this.closed = true
    return shipment
  }
}
