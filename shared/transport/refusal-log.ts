/**
 * The log lines of refused connections and frames, at most `refusal_logs_per_s` per
 * process per second (topology limits): a flood of bad connections must not flood the log
 * or stall the process on its synchronous writes. Every refusal is still counted in the
 * metrics; the lines held back are summed up in the next line written. One limiter per
 * process, shared by every listener and connection in it.
 */
import { LogRateLimit, warnLimited, type WarnLog } from '../log-rate-limit.js'
import { LIMITS_DEFAULT } from '../topology.js'

let limit = new LogRateLimit(LIMITS_DEFAULT.refusal_logs_per_s, 'refusals')
let now_ms: () => number = Date.now

/** Sets this process's rate, from its topology; called once at start (tests may give a clock). */
export function setRefusalLogRate(lines_per_s: number, clock: () => number = Date.now): void {
  limit = new LogRateLimit(lines_per_s, 'refusals')
  now_ms = clock
}

export function logRefusal(log: WarnLog, fields: Record<string, unknown>, msg: string): void {
  warnLimited(limit, log, now_ms(), fields, msg)
}
