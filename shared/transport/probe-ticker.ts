/**
 * One liveness timer per process for every connection with the same probe interval on the
 * same Clock, instead of one timer per connection: the probes of a process's connections
 * run in one wake-up, and their pings' pongs come back together (issue 12: a host of a
 * 16-host lab holds 19 connections, each of which woke it twice a second on its own).
 *
 * The timer is armed while some connection is registered and cancelled when the last one
 * leaves, so a process (or a test on a ManualClock) with no connection has no timer.
 */
import type { Clock } from '../clock.js'

export interface Probed {
  /** Runs one liveness check; called every interval while registered. */
  probe(): void
}

export class ProbeTicker {
  private readonly members = new Set<Probed>()
  private cancel: (() => void) | undefined

  private constructor(
    private readonly clock: Clock,
    private readonly interval_ms: number,
  ) {}

  /** The ticker of `clock` for `interval_ms`, created on first use. */
  static of(clock: Clock, interval_ms: number): ProbeTicker {
    let byInterval = tickers.get(clock)
    if (!byInterval) tickers.set(clock, (byInterval = new Map()))
    let ticker = byInterval.get(interval_ms)
    if (!ticker) byInterval.set(interval_ms, (ticker = new ProbeTicker(clock, interval_ms)))
    return ticker
  }

  /** Probes `member` every interval from the next tick on, until `remove`. */
  add(member: Probed): void {
    this.members.add(member)
    if (!this.cancel) this.arm()
  }

  remove(member: Probed): void {
    this.members.delete(member)
    if (this.members.size > 0 || !this.cancel) return
    this.cancel()
    this.cancel = undefined
  }

  /** The next tick set before this one runs, as setInterval does. */
  private arm(): void {
    this.cancel = this.clock.setTimer(this.interval_ms, () => {
      this.arm()
      // A copy: a probe may cut its connection, which leaves the set.
      for (const m of [...this.members]) m.probe()
    })
  }
}

const tickers = new WeakMap<Clock, Map<number, ProbeTicker>>()
