/**
 * One liveness timer per process for every connection with the same probe interval on the
 * same Clock, instead of one timer per connection: the probes of a process's connections
 * run in one wake-up, and their pings' pongs come back together (issue 12: a host of a
 * 16-host lab holds 19 connections, each of which woke it twice a second on its own).
 *
 * The timer is armed while some connection is registered and cancelled when the last one
 * leaves, so a process (or a test on a ManualClock) with no connection has no timer. It
 * fires on the grid of its interval shifted by `offset_ms`: a lab process passes its tick
 * offset, so its probes run in the same wake-up as its ticks (periodic-task.ts).
 */
import type { Clock } from '../clock.js'
import { everyTick, gridPhase } from '../periodic-task.js'

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
    private readonly offset_ms: number,
  ) {}

  /** The ticker of `clock` for `interval_ms` on the grid shifted by `offset_ms`, created on first use. */
  static of(clock: Clock, interval_ms: number, offset_ms = 0): ProbeTicker {
    let byGrid = tickers.get(clock)
    if (!byGrid) tickers.set(clock, (byGrid = new Map()))
    const grid = `${interval_ms}+${offset_ms}`
    let ticker = byGrid.get(grid)
    if (!ticker) byGrid.set(grid, (ticker = new ProbeTicker(clock, interval_ms, offset_ms)))
    return ticker
  }

  /** Probes `member` every interval from the next tick on, until `remove`. */
  add(member: Probed): void {
    this.members.add(member)
    // A copy of the members: a probe may cut its connection, which leaves the set (and may stop the ticks).
    this.cancel ??= everyTick(
      this.clock,
      this.interval_ms,
      () => [...this.members].forEach((m) => m.probe()),
      gridPhase(this.offset_ms, this.interval_ms),
    )
  }

  remove(member: Probed): void {
    this.members.delete(member)
    if (this.members.size > 0 || !this.cancel) return
    this.cancel()
    this.cancel = undefined
  }
}

const tickers = new WeakMap<Clock, Map<string, ProbeTicker>>()
