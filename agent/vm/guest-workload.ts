/**
 * A guest workload that dirties memory at a given rate with a hot/cold distribution
 * (e.g. 5% of pages take 80% of the writes), so migrations run under load.
 *
 * The rate is in MiB/s of pages dirtied (a page touched twice counts twice, as the
 * pre-copy model's D does): each touch writes `write_bytes` seeded-random bytes at a
 * random offset of one page, so most re-sent pages encode as small XBZRLE deltas.
 * Auto-converge throttles it (`setThrottle(pct)` removes pct% of the writes) and the
 * blackout pauses it. Deterministic for a seed; time comes from a Clock.
 *
 * It runs on the host's main thread, next to the heartbeats and lease renewals, so one
 * tick's writes are bounded: a tick that fires late (the loop was busy, or the process got
 * no CPU) writes at most TICK_CATCH_UP_MS_MAX of the workload, and the guest falls behind
 * its rate instead of catching up. Catching up made stalls feed themselves (issue 12): a
 * write to a page of guest memory touched for the first time costs a page fault, about
 * 700 ms of CPU per second of 100 MiB/s on a fresh 256 MiB guest (20 ms once every page
 * was touched), so a late tick's burst of up to a second of writes held the event loop
 * past the 1.5 s after which a host is taken for dead.
 *
 * The workload's settings also hold `disk_iops`, the guest's block writes per second to
 * its disk; the VM's disk writer (vm-disk.ts) does those writes, this class only checks
 * and keeps the number so `hvlab vm load` sets memory and disk load in one place.
 */
import type { Clock } from '../../shared/clock.js'
import { HvlabError } from '../../shared/errors.js'
import type { GuestMemory } from './guest-memory.js'
import { PAGE_SIZE_BYTES } from '../../shared/protocol/page-size.js'
import { mulberry32 } from '../../shared/seeded-random.js'
import { VM_DISK_IOPS_MAX } from '../../shared/protocol/cluster-messages.js'

export const DIRTY_MIB_PER_S_MAX = 4096
export const WRITE_BYTES_MAX = PAGE_SIZE_BYTES
/** The most workload time one timer tick writes, however late it fires. */
export const TICK_CATCH_UP_MS_MAX = 20
const MiB = 1024 * 1024

export interface GuestWorkloadOptions {
  /** MiB/s of pages dirtied (0 = idle), at most DIRTY_MIB_PER_S_MAX. */
  dirty_mib_per_s: number
  /** Share of pages that are hot (0 < x ≤ 1); default 0.05. */
  hot_fraction?: number
  /** Share of writes that go to the hot pages (0–1); default 0.8. */
  hot_write_share?: number
  /** Block writes per second to the VM's disk (integer 0–VM_DISK_IOPS_MAX); default 0. */
  disk_iops?: number
  /** Bytes written per page touch (1–4096); default 64. */
  write_bytes?: number
  /** How often the writer runs; default 5 ms. */
  tick_ms?: number
  seed?: number
}

export interface GuestWorkloadStats {
  /** Page touches so far. */
  touches: number
  bytes_written: number
}

function checkRange(name: string, value: number, min: number, max: number, integer = false): number {
  if (!Number.isFinite(value) || value < min || value > max || (integer && !Number.isInteger(value))) {
    throw new HvlabError('HVLAB_E_USAGE', `guest workload: ${name} must be ${integer ? 'an integer ' : ''}${min}–${max}, got ${value}`)
  }
  return value
}

export class GuestWorkload {
  readonly memory: GuestMemory
  private readonly clock: Clock
  private readonly random: () => number
  private readonly chunk: Uint8Array
  private dirty_mib_per_s = 0
  private hot_fraction = 0.05
  private hot_write_share = 0.8
  private disk_iops_ = 0
  private readonly tick_ms: number
  private throttle_pct_ = 0
  private paused_ = false
  private running = false
  private cancelTimer: (() => void) | null = null
  private last_tick_ms = 0
  /** Fractional touches carried to the next tick. */
  private carry = 0
  readonly stats: GuestWorkloadStats = { touches: 0, bytes_written: 0 }

  constructor(memory: GuestMemory, clock: Clock, options: GuestWorkloadOptions) {
    this.memory = memory
    this.clock = clock
    this.random = mulberry32(options.seed ?? 1)
    this.chunk = new Uint8Array(checkRange('write_bytes', options.write_bytes ?? 64, 1, WRITE_BYTES_MAX, true))
    this.tick_ms = checkRange('tick_ms', options.tick_ms ?? 5, 1, 1000, true)
    this.setLoad(options)
  }

  /** Changes the load live (`hvlab vm load`). */
  setLoad(load: { dirty_mib_per_s: number; hot_fraction?: number; hot_write_share?: number; disk_iops?: number }): void {
    const dirty = checkRange('dirty_mib_per_s', load.dirty_mib_per_s, 0, DIRTY_MIB_PER_S_MAX)
    const hot = load.hot_fraction !== undefined ? checkRange('hot_fraction', load.hot_fraction, Number.MIN_VALUE, 1) : this.hot_fraction
    const share = load.hot_write_share !== undefined ? checkRange('hot_write_share', load.hot_write_share, 0, 1) : this.hot_write_share
    const iops = load.disk_iops !== undefined ? checkRange('disk_iops', load.disk_iops, 0, VM_DISK_IOPS_MAX, true) : this.disk_iops_
    this.dirty_mib_per_s = dirty
    this.hot_fraction = hot
    this.hot_write_share = share
    this.disk_iops_ = iops
  }

  /** Block writes per second the guest does to its disk (the disk writer's rate). */
  get disk_iops(): number {
    return this.disk_iops_
  }

  get throttle_pct(): number {
    return this.throttle_pct_
  }

  get paused(): boolean {
    return this.paused_
  }

  /** Auto-converge: drop pct% of the writes (0 lifts it). */
  setThrottle(pct: number): void {
    this.throttle_pct_ = checkRange('throttle pct', pct, 0, 99)
  }

  /** Stops every write at once (the blackout); resume() carries on. */
  pause(): void {
    this.paused_ = true
  }

  resume(): void {
    this.paused_ = false
    this.last_tick_ms = this.clock.now()
  }

  /** Writes on a timer until stop(). */
  start(): void {
    if (this.running) return
    this.running = true
    this.last_tick_ms = this.clock.now()
    this.schedule()
  }

  stop(): void {
    this.running = false
    this.cancelTimer?.()
    this.cancelTimer = null
  }

  /** Page touches per second after the throttle. */
  get touches_per_s(): number {
    return ((this.dirty_mib_per_s * MiB) / PAGE_SIZE_BYTES) * (1 - this.throttle_pct_ / 100)
  }

  /**
   * Writes what `elapsed_ms` of the workload writes (at most one second's worth, so a
   * stalled event loop does not come back with a burst). Returns the pages touched.
   */
  advance(elapsed_ms: number): number {
    if (this.paused_ || elapsed_ms <= 0) return 0
    const due = this.touches_per_s * (Math.min(elapsed_ms, 1000) / 1000) + this.carry
    const touches = Math.floor(due)
    this.carry = due - touches
    for (let i = 0; i < touches; i++) this.touch()
    return touches
  }

  private schedule(): void {
    this.cancelTimer = this.clock.setTimer(this.tick_ms, () => {
      if (!this.running) return
      const now = this.clock.now()
      this.advance(Math.min(now - this.last_tick_ms, TICK_CATCH_UP_MS_MAX))
      this.last_tick_ms = now
      this.schedule()
    })
  }

  private pickPage(): number {
    const pages = this.memory.page_count
    const hot = Math.max(1, Math.min(pages, Math.round(pages * this.hot_fraction)))
    if (hot === pages || this.random() < this.hot_write_share) return Math.floor(this.random() * hot)
    return hot + Math.floor(this.random() * (pages - hot))
  }

  private touch(): void {
    const page = this.pickPage()
    const chunk = this.chunk
    for (let i = 0; i < chunk.length; i += 4) {
      const v = (this.random() * 4294967296) >>> 0
      chunk[i] = v & 0xff
      if (i + 1 < chunk.length) chunk[i + 1] = (v >>> 8) & 0xff
      if (i + 2 < chunk.length) chunk[i + 2] = (v >>> 16) & 0xff
      if (i + 3 < chunk.length) chunk[i + 3] = v >>> 24
    }
    const offset = Math.floor(this.random() * (PAGE_SIZE_BYTES - chunk.length + 1))
    this.memory.write(page * PAGE_SIZE_BYTES + offset, chunk)
    this.stats.touches++
    this.stats.bytes_written += chunk.length
  }
}
