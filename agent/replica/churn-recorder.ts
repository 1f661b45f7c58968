/**
 * The churn of one VM's disk as it happens, PURE and in bounded memory: for each
 * replication frequency, the distinct blocks of the cycle under way (a bitmap of the disk,
 * cleared when the cycle closes) and, of the closed ones, only the busiest full cycle and
 * the sum. Only the latest write of each block in a cycle travels (replica-log.ts), so a
 * cycle costs its distinct blocks, not its writes: however many writes come and however
 * long the measurement, it holds one bit per disk block per frequency and a few numbers.
 *
 * Cycles are cut from `start_ms`, every `frequency_ms`; a write at or after the
 * measurement's end counts in its last cycle, and time never runs back (a write stamped
 * before the cycle under way counts in it). The last cycle, when shorter than the
 * frequency, is left out of the peak unless it is the only one, and counted in the mean
 * (churn-sizing.ts says why).
 */
import { HvlabError } from '../../shared/errors.js'

/** A disk's blocks at most: the lab's largest replicated disk (4 GiB) in the smallest block (512 bytes); 1 MiB of bitmap per frequency. */
export const CHURN_DISK_BLOCKS_MAX = (4 * 1024 ** 3) / 512

export interface FrequencySizing {
  readonly frequency_ms: number
  /** Cycles the measurement covered (the last may be partial). */
  readonly cycles: number
  /** Cycles that lasted the whole frequency. */
  readonly full_cycles: number
  /** Distinct blocks of the busiest full cycle, in bytes. */
  readonly peak_cycle_bytes: number
  /** Bytes a second the busiest full cycle needs (its bytes over the frequency). */
  readonly peak_bytes_per_s: number
  /** Bytes every cycle of the measurement ships, added up (each cycle's distinct blocks). */
  readonly total_bytes: number
  /** Bytes a second over the whole measurement, cycle by cycle. */
  readonly mean_bytes_per_s: number
}

export interface ChurnRecorderOptions {
  readonly start_ms: number
  /** How long the churn is measured. */
  readonly measured_ms: number
  readonly block_size_bytes: number
  /** The disk's blocks: a write to a block beyond is not counted (`outside`). */
  readonly disk_blocks: number
  readonly frequencies_ms: readonly number[]
}

/** One frequency's cycles: the one under way, and what the closed ones came to. */
interface FrequencyCycles {
  readonly frequency_ms: number
  readonly cycles: number
  readonly full_cycles: number
  current: number
  readonly seen: Uint8Array
  distinct: number
  peak_full_blocks: number
  closed_blocks: number
}

export class ChurnRecorder {
  private readonly frequencies: FrequencyCycles[]
  private writes_ = 0
  private outside_ = 0

  constructor(private readonly o: ChurnRecorderOptions) {
    if (!(o.measured_ms > 0) || !Number.isFinite(o.measured_ms))
      throw new HvlabError('HVLAB_E_USAGE', `a churn measurement needs a positive duration, got ${o.measured_ms} ms`)
    if (!Number.isSafeInteger(o.disk_blocks) || o.disk_blocks < 0 || o.disk_blocks > CHURN_DISK_BLOCKS_MAX)
      throw new HvlabError('HVLAB_E_USAGE', `a measured disk has 0–${CHURN_DISK_BLOCKS_MAX} blocks, got ${o.disk_blocks}`)
    this.frequencies = o.frequencies_ms.map((f) => {
      if (!(f > 0) || !Number.isFinite(f)) throw new HvlabError('HVLAB_E_USAGE', `a replication frequency must be positive, got ${f} ms`)
      const cycles = Math.max(1, Math.ceil(o.measured_ms / f))
      const full_cycles = Math.floor(o.measured_ms / f)
      return {
        frequency_ms: f,
        cycles,
        full_cycles,
        current: 0,
        seen: new Uint8Array(Math.ceil(o.disk_blocks / 8)),
        distinct: 0,
        peak_full_blocks: 0,
        closed_blocks: 0,
      }
    })
  }

  /** Writes recorded (to blocks of the disk). */
  get writes(): number {
    return this.writes_
  }

  /** Writes to blocks beyond the disk, not counted. */
  get outside(): number {
    return this.outside_
  }

  /** The bytes its bitmaps hold (what it keeps grows with nothing else). */
  get heldBytes(): number {
    return this.frequencies.reduce((n, f) => n + f.seen.length, 0)
  }

  /** A guest write of `block` that landed at `at_ms`. */
  record(block: number, at_ms: number): void {
    if (!Number.isSafeInteger(block) || block < 0 || block >= this.o.disk_blocks) {
      this.outside_++
      return
    }
    this.writes_++
    for (const f of this.frequencies) {
      const cycle = Math.min(f.cycles - 1, Math.floor((at_ms - this.o.start_ms) / f.frequency_ms))
      if (cycle > f.current) closeCycle(f, cycle)
      const bit = 1 << (block & 7)
      if ((f.seen[block >> 3]! & bit) !== 0) continue
      f.seen[block >> 3]! |= bit
      f.distinct++
    }
  }

  /** What each frequency needs, from what was recorded so far (the cycle under way counts as the last). */
  result(): FrequencySizing[] {
    const bs = this.o.block_size_bytes
    return this.frequencies.map((f) => {
      const current_is_full = f.current < f.full_cycles
      const peak_blocks = f.full_cycles === 0 ? f.distinct : Math.max(f.peak_full_blocks, current_is_full ? f.distinct : 0)
      const total_bytes = (f.closed_blocks + f.distinct) * bs
      return {
        frequency_ms: f.frequency_ms,
        cycles: f.cycles,
        full_cycles: f.full_cycles,
        peak_cycle_bytes: peak_blocks * bs,
        peak_bytes_per_s: ((peak_blocks * bs) / f.frequency_ms) * 1000,
        total_bytes,
        mean_bytes_per_s: (total_bytes / this.o.measured_ms) * 1000,
      }
    })
  }
}

/** The cycle under way closes (a full one may be the peak); `next` begins with no block seen. */
function closeCycle(f: FrequencyCycles, next: number): void {
  if (f.current < f.full_cycles) f.peak_full_blocks = Math.max(f.peak_full_blocks, f.distinct)
  f.closed_blocks += f.distinct
  f.seen.fill(0)
  f.distinct = 0
  f.current = next
}
