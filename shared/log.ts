/**
 * Structured JSON logs (pino). One logger per process, written to its file in the
 * lab's data dir; one child logger per component (`log.child({ component: 'transport' })`).
 */
import { mkdirSync } from 'node:fs'
import { dirname } from 'node:path'
import pino, { type Logger } from 'pino'

export type { Logger }

export interface LoggerOptions {
  /** The process name, on every line. */
  name: string
  /** Log file; absent means standard error. */
  file?: string
  level?: pino.Level | 'silent'
}

export function createLogger(options: LoggerOptions): Logger {
  const level = options.level ?? 'info'
  if (!options.file) return pino({ name: options.name, level }, pino.destination(2))
  mkdirSync(dirname(options.file), { recursive: true })
  // sync: a kill -9 must not eat the last lines the controller shows as "last log lines".
  return pino({ name: options.name, level }, pino.destination({ dest: options.file, sync: true }))
}

/** A logger that writes nothing, for tests and pure code paths. */
export const silentLogger = (): Logger => pino({ level: 'silent' })
