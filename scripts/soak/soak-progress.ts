/**
 * A soak's progress line, every few seconds: elapsed and planned time, faults injected so
 * far, and the violations found so far by the checks that need only the timeline (a VM on
 * two hosts at once, a process that crashed), read from the controller's recent events.
 */
import { doubleOwners, type HistoryEvent } from './ownership-history.js'
import { DOUBLE_OWNER_TOLERANCE_MS } from './checker.js'
import type { SoakLab } from './soak-lab.js'
import { historyRecord } from './history.js'

const EVERY_MS = 5_000

const clock = (ms: number): string => {
  const s = Math.floor(ms / 1000)
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`
}

export class SoakProgress {
  private timer: NodeJS.Timeout | null = null
  private faults = 0
  private readonly started_ms = Date.now()
  private readonly events: HistoryEvent[] = []
  private after = 0

  constructor(
    private readonly lab: SoakLab,
    private readonly planned_ms: number,
    private readonly print?: (line: string) => void,
  ) {}

  start(): void {
    if (this.print) this.timer = setInterval(() => void this.report(), EVERY_MS)
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer)
  }

  faultDone(): void {
    this.faults++
  }

  private async report(): Promise<void> {
    await this.lab
      .control()
      .stream(`/v1/events?after=${this.after}`, (e) => {
        const r = historyRecord.safeParse({ ...(e as object), t: 'event' })
        if (!r.success || r.data.t !== 'event') return
        this.after = Math.max(this.after, r.data.seq)
        this.events.push(r.data)
      })
      .catch(() => undefined)
    const violations =
      doubleOwners(this.events, DOUBLE_OWNER_TOLERANCE_MS).length + this.events.filter((e) => e.kind === 'process.crashed').length
    this.print?.(
      `soak ${clock(Date.now() - this.started_ms)} / ${clock(this.planned_ms)}  faults ${this.faults}  violations so far ${violations}`,
    )
  }
}
