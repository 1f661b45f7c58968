/**
 * A file written synchronously and rotated by size, with the oldest rotated files removed:
 * the lab's logs and its timeline. pino-roll does the rotation (pino's own, on sonic-boom).
 * Writes are synchronous, so a kill -9 never eats a line that was written — the controller
 * shows a dead process's last log lines, and the timeline's last seq survives. A file
 * rotates on the tick after it has reached `file_bytes_max`, so it may pass that size by
 * what was written in that one tick.
 */
import pinoRoll, { type RollingStream } from 'pino-roll'
import { join } from 'node:path'
import type { RotatedFile } from './lab-layout.js'

export type { RollingStream }

export interface RotationLimits {
  /** The file being written rotates once it has reached this size. */
  file_bytes_max: number
  /** Rotated files kept besides the one being written; older ones are removed. */
  files_kept: number
}

/** Opens (appending to) the newest file of `file`, creating `file.dir` when needed; files are mode 0600. */
export async function openRotatingFile(file: RotatedFile, limits: RotationLimits, onError: (e: Error) => void): Promise<RollingStream> {
  const stream = await pinoRoll({
    file: join(file.dir, file.stem + file.ext),
    size: `${limits.file_bytes_max}b`,
    // With removeOtherLogFiles the count includes the file being written, and files left by
    // an earlier run of the same process are counted (and removed) too.
    limit: { count: limits.files_kept + 1, removeOtherLogFiles: true },
    sync: true,
    mkdir: true,
    mode: 0o600,
  })
  stream.on('error', onError)
  return stream
}
