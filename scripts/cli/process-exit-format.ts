/**
 * Why a process of the lab is down, as `hvlab status` says it under its table: the signal
 * or exit code, whether the lab asked for it (`hvlab kill`) or it died by itself, how long
 * ago, and its last log lines (all of them for a death, the last one for a requested stop).
 */
import type { ProcessExit, ProcessStatus } from '../controller/lab-controller.js'
import { duration } from './format.js'

/** Longest log line shown; a pino line is JSON and can be long. */
const LOG_LINE_CHARS_MAX = 240

const clipped = (line: string): string => (line.length > LOG_LINE_CHARS_MAX ? `${line.slice(0, LOG_LINE_CHARS_MAX - 1)}…` : line)

/** "killed by SIGKILL", "exited with code 1". */
export function exitCause(exit: Pick<ProcessExit, 'code' | 'signal'>): string {
  if (exit.signal !== null) return `killed by ${exit.signal}`
  return exit.code === null ? 'exited' : `exited with code ${exit.code}`
}

/** The lines under the status table for one process that is down with a last exit; none otherwise. */
export function exitReport(p: Pick<ProcessStatus, 'name' | 'state' | 'lastExit'>, now_ms: number): string[] {
  const exit = p.lastExit
  if (p.state !== 'down' || exit === null) return []
  const ago = `${duration(Math.max(0, now_ms - exit.at_ms))} ago`
  if (exit.requested) {
    const last = exit.lastLogLines.at(-1)
    return [`${p.name}: ${exitCause(exit)} (hvlab kill) ${ago}${last === undefined ? '' : `; last log: ${clipped(last)}`}`]
  }
  const head = `${p.name}: died by itself, ${exitCause(exit)} ${ago}; not restarted (\`hvlab restart ${p.name}\`)`
  if (exit.lastLogLines.length === 0) return [`${head}; no log lines`]
  return [`${head}; last log lines:`, ...exit.lastLogLines.map((l) => `  ${clipped(l)}`)]
}
