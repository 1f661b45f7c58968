/**
 * A lab process's clock with the lab's clock faults (issue 13, `hvlab clock set`): an
 * offset and a drift rate, set at run time. Every protocol timestamp, lease, tick and
 * timeout of the process reads this clock, so its leases and its view of its peers'
 * timestamps go wrong exactly as on a machine whose clock is off.
 *
 * - `now()` = the real clock + the offset + drift × the real time since the skew was set.
 * - It never goes backwards (the Clock contract): after a step back it stands still until
 *   the real clock has caught up, as a monotonic clock would.
 * - A timer of d ms fires after d / (1 + drift) real ms: a fast clock's intervals are short.
 *
 * The offset at any moment is what the clock reads minus the real clock: `skew()`.
 */
import { RealClock, type Clock } from './clock.js'

export interface ClockSkew {
  /** How far this clock reads ahead of the real clock, ms (negative: behind). */
  offset_ms: number
  /** How much faster it runs: 0.01 gains 10 ms a second; negative runs slow. */
  drift: number
}

export const NO_SKEW: ClockSkew = { offset_ms: 0, drift: 0 }

export class SkewedClock implements Clock {
  private offset_ms = 0
  private drift = 0
  /** The real time from which the drift accumulates. */
  private base_real_ms: number
  /** The latest reading handed out: no later reading is smaller. */
  private last_ms = -Infinity

  constructor(private readonly real: Clock = new RealClock()) {
    this.base_real_ms = real.now()
  }

  now(): number {
    this.last_ms = Math.max(this.last_ms, this.skewedAt(this.real.now()))
    return this.last_ms
  }

  setTimer(delay_ms: number, fn: () => void): () => void {
    return this.real.setTimer(Math.max(0, delay_ms) / (1 + this.drift), fn)
  }

  /** The skew now: the offset (drift included so far) and the drift rate. */
  skew(): ClockSkew {
    const real_ms = this.real.now()
    return { offset_ms: this.skewedAt(real_ms) - real_ms, drift: this.drift }
  }

  /** From now on this clock reads `offset_ms` ahead of the real clock and gains `drift` per ms. */
  setSkew(skew: ClockSkew): void {
    this.offset_ms = skew.offset_ms
    this.drift = skew.drift
    this.base_real_ms = this.real.now()
  }

  private skewedAt(real_ms: number): number {
    return real_ms + this.offset_ms + this.drift * (real_ms - this.base_real_ms)
  }
}
