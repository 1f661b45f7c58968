/**
 * The last lines of a log or of the timeline, read from the end of the file: for the report
 * of a process that died, and for the timeline's last seq. Rotated files are read newest
 * first, as far back as needed.
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs'

export function lastLines(file: string, lines_max = 10, bytes_max = 16 * 1024): string[] {
  let fd: number
  try {
    fd = openSync(file, 'r')
  } catch {
    return []
  }
  try {
    const size = fstatSync(fd).size
    const length = Math.min(size, bytes_max)
    // One byte more than the window, when there is one, tells whether its first line is cut.
    const start = Math.max(0, size - length - 1)
    const buf = Buffer.alloc(size - start)
    readSync(fd, buf, 0, buf.length, start)
    const cut = start + length < size && buf[0] !== 0x0a
    const all = buf
      .subarray(buf.length - length)
      .toString('utf8')
      .split('\n')
    if (cut) all.shift()
    return all.filter((l) => l.length > 0).slice(-lines_max)
  } finally {
    closeSync(fd)
  }
}

/**
 * The last lines of a file and of the files rotated before it (`files` oldest first), oldest
 * line first: at most `lines_max`, reading at most `bytes_max` from the end of each file.
 */
export function lastLinesOf(files: readonly string[], lines_max = 10, bytes_max = 16 * 1024): string[] {
  const lines: string[] = []
  for (let i = files.length - 1; i >= 0 && lines.length < lines_max; i--) {
    lines.unshift(...lastLines(files[i]!, lines_max - lines.length, bytes_max))
  }
  return lines
}

/** Bytes read from the end at a time by lastLineThat. */
const SCAN_CHUNK_BYTES = 64 * 1024

/**
 * Scans `file` back from its end for the last line `accept` takes (returns a value for),
 * skipping lines it refuses, such as a line torn by a kill in the middle of a write. Lines
 * longer than `line_bytes_max` are skipped unread, so memory stays bounded.
 */
export function lastLineThat<T>(file: string, accept: (line: string) => T | undefined, line_bytes_max = 16 * 1024 * 1024): T | undefined {
  let fd: number
  try {
    fd = openSync(file, 'r')
  } catch {
    return undefined
  }
  try {
    return scanBack(fd, fstatSync(fd).size, accept, line_bytes_max)
  } finally {
    closeSync(fd)
  }
}

function scanBack<T>(fd: number, size: number, accept: (line: string) => T | undefined, line_bytes_max: number): T | undefined {
  // `tail`: the bytes after the last newline seen so far (the end of a line whose start is not read yet).
  let tail: Buffer = Buffer.alloc(0)
  let tooLong = false
  for (let end = size; end > 0;) {
    const start = Math.max(0, end - SCAN_CHUNK_BYTES)
    const chunk = Buffer.alloc(end - start)
    readSync(fd, chunk, 0, chunk.length, start)
    end = start
    let data: Buffer = tooLong ? chunk : Buffer.concat([chunk, tail])
    for (let nl = data.lastIndexOf(0x0a); nl >= 0; nl = data.lastIndexOf(0x0a)) {
      const line = data.subarray(nl + 1)
      const value = tooLong || line.length === 0 ? undefined : accept(line.toString('utf8'))
      if (value !== undefined) return value
      tooLong = false
      data = data.subarray(0, nl)
    }
    tooLong = tooLong || data.length > line_bytes_max
    tail = tooLong ? Buffer.alloc(0) : data
  }
  return tooLong || tail.length === 0 ? undefined : accept(tail.toString('utf8'))
}
