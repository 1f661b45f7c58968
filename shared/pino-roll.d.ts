/** Types for pino-roll 4 (it ships none): the part of its API shared/rotating-file.ts uses. */
declare module 'pino-roll' {
  import type { EventEmitter } from 'node:events'

  export interface PinoRollOptions {
    /** `<dir>/<stem><ext>`; pino-roll writes `<dir>/<stem>.<n><ext>`. */
    file: string
    /** Rotate once the file has reached this size; `'4096b'` is in bytes (a bare number means MiB). */
    size?: string | number
    /** With removeOtherLogFiles, `count` is the number of files kept, the one being written included. */
    limit?: { count: number; removeOtherLogFiles?: boolean }
    /** sonic-boom's: write synchronously (each write is on disk, in the OS's cache, before it returns). */
    sync?: boolean
    mkdir?: boolean
    mode?: number
  }

  /** A sonic-boom stream. */
  export interface RollingStream extends EventEmitter {
    readonly file: string
    write(data: string): boolean
    flushSync(): void
    end(): void
  }

  export default function pinoRoll(options: PinoRollOptions): Promise<RollingStream>
}
