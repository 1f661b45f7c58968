/**
 * At most `lines_per_s` log lines of one kind (refused connections, say) per second; the
 * rest are counted, not written, and the first line written after them is preceded by a
 * summary, "N more refusals not logged" — so a flood of refusals cannot flood the log or
 * stall the process on its synchronous writes. The limiter is pure (the time is an input);
 * `warnLimited` is the one call a log site makes. Windows are fixed seconds, each from its
 * first line.
 */
export interface LogDecision {
  /** Write this line. */
  write: boolean
  /** Lines not written since the last one written; set (and then reset) only when `write`. */
  notLogged: number
}

export class LogRateLimit {
  private windowStart_ms = Number.NEGATIVE_INFINITY
  private writtenInWindow = 0
  private notLogged = 0

  /** `what`: the lines' kind in the summary, e.g. 'refusals'. */
  constructor(
    private readonly lines_per_s: number,
    readonly what: string,
  ) {
    if (!Number.isInteger(lines_per_s) || lines_per_s < 1)
      throw new RangeError(`lines_per_s must be a positive integer, got ${lines_per_s}`)
  }

  /** Whether a line due at `now_ms` may be written. */
  take(now_ms: number): LogDecision {
    // A new window after a second, or when the clock stepped back.
    if (now_ms - this.windowStart_ms >= 1000 || now_ms < this.windowStart_ms) {
      this.windowStart_ms = now_ms
      this.writtenInWindow = 0
    }
    if (this.writtenInWindow >= this.lines_per_s) {
      this.notLogged += 1
      return { write: false, notLogged: 0 }
    }
    this.writtenInWindow += 1
    const notLogged = this.notLogged
    this.notLogged = 0
    return { write: true, notLogged }
  }

  /** Lines counted and not written so far. */
  get pending(): number {
    return this.notLogged
  }
}

/** What warnLimited writes to: a pino Logger, or a test's fake. */
export interface WarnLog {
  warn(fields: Record<string, unknown>, msg: string): void
}

/** Writes `msg` at warn level if `limit` allows it now, after the summary of the lines it held back. */
export function warnLimited(limit: LogRateLimit, log: WarnLog, now_ms: number, fields: Record<string, unknown>, msg: string): void {
  const d = limit.take(now_ms)
  if (!d.write) return
  if (d.notLogged > 0) log.warn({ notLogged: d.notLogged }, `${d.notLogged} more ${limit.what} not logged`)
  log.warn(fields, msg)
}
