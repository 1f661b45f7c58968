/**
 * Event-loop lag: how late a timer fires on this process's event loop — what a heartbeat,
 * a lease renewal or a status request waits for while the loop runs something else.
 *
 * A lab process measures it on its own timers (`EventLoopLag`): each RealClock timer
 * reports how far past its due time it fired (clock.ts observeTimerLateness) — the
 * membership, roles and VM ticks (8 a second on a host of the default and scale labs), the
 * transport's liveness probe (2 a second) and every request timeout. Those are the timers
 * whose lateness delays a heartbeat or a renewal, and measuring them costs no wake-up:
 * a separate 50 ms monitor woke every process 20 times a second, 380 of the 16-host
 * lab's 1,000 wake-ups a second (issue 12). A stall of S ms is seen by every timer due in
 * it, as up to S ms of lateness; a short stall between two ticks is seen by none, as it
 * delays no tick.
 *
 * The benchmark (`LagInterval`) keeps a native monitor ticking every
 * EVENT_LOOP_LAG_RESOLUTION_MS instead, as its endpoint processes have no regular ticks:
 * lag is the time between ticks less the period (so an idle loop reads about 0).
 *
 * Two figures:
 * - `LagInterval`: since its last reset (the benchmark resets it before a run, reads it after);
 * - `LagWindow`: over the last 10–20 s, from two histograms reset in turn every 10 s — the
 *   older always holds one to two windows of samples, so its percentiles are exact, never
 *   merged from slices. The status endpoint, `hvlab status` and `hvlab_event_loop_lag_*` read it.
 */
import { createHistogram, monitorEventLoopDelay } from 'node:perf_hooks'
import { observeTimerLateness } from './clock.js'
import { Gauge, type Registry } from 'prom-client'

export const EVENT_LOOP_LAG_RESOLUTION_MS = 50
export const EVENT_LOOP_LAG_WINDOW_MS = 10_000

/** Lag figures in ms (rounded to 0.01 ms), over `samples` ticks; null when no tick was recorded yet. */
export interface LagFigures {
  p50_ms: number
  p99_ms: number
  max_ms: number
  samples: number
}

/** What the figures are read from: a `monitorEventLoopDelay` histogram, or `createHistogram()` in tests (values in ns). */
export interface DelayHistogram {
  readonly count: number
  readonly max: number
  percentile(p: number): number
  reset(): void
}

const NS_PER_MS = 1e6
const round2 = (ms: number): number => Math.round(ms * 100) / 100

/** A histogram of tick-to-tick delays (ns) as lag past the tick period (0: lateness itself), in ms; null when it holds no sample. */
export function lagFigures(h: DelayHistogram, period_ms: number): LagFigures | null {
  if (h.count === 0) return null
  const lag = (ns: number): number => round2(Math.max(0, ns / NS_PER_MS - period_ms))
  return { p50_ms: lag(h.percentile(50)), p99_ms: lag(h.percentile(99)), max_ms: lag(h.max), samples: h.count }
}

/**
 * The last `window_ms` or a little more, from two histograms: `rotate()` (every window_ms)
 * resets the older, which becomes the newer; `read()` reports the older, which then holds
 * between one and two windows of ticks (the newer alone until the first rotation).
 */
export class LagWindow {
  private older: DelayHistogram | null = null

  constructor(
    private newer: DelayHistogram,
    private readonly spare: DelayHistogram,
    private readonly period_ms: number,
  ) {}

  rotate(): void {
    const next = this.older ?? this.spare
    next.reset()
    this.older = this.newer
    this.newer = next
  }

  read(): LagFigures | null {
    return lagFigures(this.older ?? this.newer, this.period_ms)
  }
}

function startHistogram(resolution_ms: number): DelayHistogram & { disable(): boolean } {
  const h = monitorEventLoopDelay({ resolution: resolution_ms })
  h.enable()
  return h
}

/** This process's lag since the last reset (the first tick after a reset only marks the time). */
export class LagInterval {
  private readonly histogram = startHistogram(EVENT_LOOP_LAG_RESOLUTION_MS)

  reset(): void {
    this.histogram.reset()
  }

  read(): LagFigures | null {
    return lagFigures(this.histogram, EVENT_LOOP_LAG_RESOLUTION_MS)
  }

  stop(): void {
    this.histogram.disable()
  }
}

/** This process's lag over the last 10–20 s: the lateness of its RealClock timers, in two histograms and an unref'd rotation timer. */
export class EventLoopLag {
  readonly window_ms = EVENT_LOOP_LAG_WINDOW_MS
  private readonly histograms = [createHistogram(), createHistogram()] as const
  private readonly window = new LagWindow(this.histograms[0], this.histograms[1], 0)
  private readonly rotation = setInterval(() => this.window.rotate(), this.window_ms).unref()
  private readonly stopObserving = observeTimerLateness((late_ms) => {
    // A histogram takes whole numbers ≥ 1: ns, a timer on time (or a hair early) as 1 ns.
    const late_ns = Math.max(1, Math.round(late_ms * NS_PER_MS))
    for (const h of this.histograms) h.record(late_ns)
  })

  read(): LagFigures | null {
    return this.window.read()
  }

  stop(): void {
    clearInterval(this.rotation)
    this.stopObserving()
  }
}

/** `hvlab_event_loop_lag_{p50,p99,max}_seconds`: the window's figures, read at each scrape (absent before the first tick). */
export function registerEventLoopLag(registry: Registry, lag: EventLoopLag): void {
  const gauge = (name: string, what: string, pick: (f: LagFigures) => number): void => {
    new Gauge({
      name: `hvlab_event_loop_lag_${name}_seconds`,
      help: `${what} of how late this process's timers fired (its ticks, liveness probes and timeouts) over the last ${lag.window_ms / 1000}–${(2 * lag.window_ms) / 1000} s`,
      registers: [registry],
      collect() {
        const f = lag.read()
        if (f) this.set(pick(f) / 1000)
      },
    })
  }
  gauge('p50', 'Median', (f) => f.p50_ms)
  gauge('p99', '99th percentile', (f) => f.p99_ms)
  gauge('max', 'Maximum', (f) => f.max_ms)
}

/** Lag figures another process reported (its GET /status `event_loop_lag`), checked; null when absent or malformed. */
export function parseLagFigures(raw: unknown): LagFigures | null {
  if (typeof raw !== 'object' || raw === null) return null
  const r = raw as Record<string, unknown>
  const ms = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v) && v >= 0
  if (!ms(r.p50_ms) || !ms(r.p99_ms) || !ms(r.max_ms) || !ms(r.samples) || !Number.isInteger(r.samples)) return null
  return { p50_ms: r.p50_ms, p99_ms: r.p99_ms, max_ms: r.max_ms, samples: r.samples }
}
