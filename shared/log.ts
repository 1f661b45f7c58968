/**
 * Structured JSON logs (pino). One logger per process, written to its file in the
 * lab's data dir; one child logger per component (`log.child({ component: 'transport' })`).
 */
import pino, { type Logger } from 'pino'
import type { RotatedFile } from './lab-layout.js'
import { openRotatingFile, type RotationLimits } from './rotating-file.js'

export type { Logger }

export interface LoggerOptions {
  /** The process name, on every line. */
  name: string
  level?: pino.Level | 'silent'
}

/** A logger to standard error. */
export function createLogger(options: LoggerOptions): Logger {
  return pino({ name: options.name, level: options.level ?? 'info' }, pino.destination(2))
}

/**
 * A logger to a file rotated at `file_bytes_max`, keeping `files_kept` rotated files.
 * Synchronous: a kill -9 must not eat the last lines the controller shows as "last log lines".
 */
export async function createFileLogger(options: LoggerOptions & { file: RotatedFile } & RotationLimits): Promise<Logger> {
  // A log that cannot be written must not end the process: say so where the controller sees it.
  const onError = (e: Error): void => void process.stderr.write(`hvlab ${options.name}: cannot write its log: ${e.message}\n`)
  const stream = await openRotatingFile(options.file, options, onError)
  return pino({ name: options.name, level: options.level ?? 'info' }, stream)
}

/** A logger that writes nothing, for tests and pure code paths. */
export const silentLogger = (): Logger => pino({ level: 'silent' })
