/**
 * Time is an input. Protocol state machines take `now_ms` as an argument; the process
 * shells read it from a Clock. A lab-wide `timeScale` shrinks long intervals (Replica's
 * 5-minute cycle, a 6-hour failover window) without changing code paths.
 */
export interface Clock {
  /** Milliseconds since an arbitrary, fixed origin; never goes backwards. */
  now(): number
  /** Calls `fn` once after `delay_ms`; returns a cancel function. */
  setTimer(delay_ms: number, fn: () => void): () => void
}

/** Resolves after `delay_ms` on `clock` (a timer of the Clock: a real one does not keep the process alive). */
export function sleepOn(clock: Clock, delay_ms: number): Promise<void> {
  return new Promise((resolve) => void clock.setTimer(delay_ms, resolve))
}

/** Told how late (ms past its due time) each RealClock timer of this process fired. */
export type TimerLatenessObserver = (late_ms: number) => void

const latenessObservers = new Set<TimerLatenessObserver>()

/**
 * Reports the lateness of every RealClock timer of this process from now on (the event-loop
 * lag figures, event-loop-lag.ts: the lab's ticks, probes and timeouts are its samples, so
 * measuring costs no wake-up of its own). Returns the function that stops it.
 */
export function observeTimerLateness(observer: TimerLatenessObserver): () => void {
  latenessObservers.add(observer)
  return () => void latenessObservers.delete(observer)
}

export class RealClock implements Clock {
  private readonly origin_ms = performance.timeOrigin
  now(): number {
    return this.origin_ms + performance.now()
  }
  setTimer(delay_ms: number, fn: () => void): () => void {
    const wait_ms = Math.max(0, delay_ms)
    const due_ms = performance.now() + wait_ms
    const t = setTimeout(() => {
      if (latenessObservers.size > 0) {
        const late_ms = performance.now() - due_ms
        for (const observe of latenessObservers) observe(late_ms)
      }
      fn()
    }, wait_ms)
    t.unref?.()
    return () => clearTimeout(t)
  }
}

interface PendingTimer {
  at_ms: number
  seq: number
  fn: () => void
}

/** A clock that moves only when told to; timers fire in time order, ties in set order. */
export class ManualClock implements Clock {
  private now_ms: number
  private seq = 0
  private timers: PendingTimer[] = []
  constructor(start_ms = 0) {
    this.now_ms = start_ms
  }
  now(): number {
    return this.now_ms
  }
  setTimer(delay_ms: number, fn: () => void): () => void {
    const timer: PendingTimer = { at_ms: this.now_ms + Math.max(0, delay_ms), seq: this.seq++, fn }
    this.timers.push(timer)
    return () => {
      this.timers = this.timers.filter((t) => t !== timer)
    }
  }
  /** Moves time forward by `delta_ms`, firing every timer that falls due on the way. */
  advance(delta_ms: number): void {
    if (!(delta_ms >= 0) || !Number.isFinite(delta_ms)) {
      throw new RangeError(`a clock only moves forward: advance() needs a finite delta_ms >= 0, got ${delta_ms}`)
    }
    const end_ms = this.now_ms + delta_ms
    for (;;) {
      const next = this.nextDue(end_ms)
      if (!next) break
      this.timers = this.timers.filter((t) => t !== next)
      this.now_ms = next.at_ms
      next.fn()
    }
    this.now_ms = end_ms
  }
  pendingTimers(): number {
    return this.timers.length
  }
  private nextDue(end_ms: number): PendingTimer | undefined {
    let best: PendingTimer | undefined
    for (const t of this.timers) {
      if (t.at_ms > end_ms) continue
      if (!best || t.at_ms < best.at_ms || (t.at_ms === best.at_ms && t.seq < best.seq)) best = t
    }
    return best
  }
}

/**
 * Scales a configured interval by the lab's timeScale (0 < timeScale <= 1 shrinks it).
 * Only the long, human-scale intervals go through this; heartbeats do not.
 */
export function scaled(interval_ms: number, timeScale: number): number {
  if (!(timeScale > 0) || !Number.isFinite(timeScale)) {
    throw new RangeError(`timeScale must be a positive finite number, got ${timeScale}`)
  }
  return Math.max(1, Math.round(interval_ms * timeScale))
}
