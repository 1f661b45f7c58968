/** The last lines of a process's log, for the report of a process that died. */
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
    const buf = Buffer.alloc(length)
    readSync(fd, buf, 0, length, size - length)
    const text = buf.toString('utf8')
    const all = text.split('\n').filter((l) => l.length > 0)
    if (length < size) all.shift() // the first line is probably cut
    return all.slice(-lines_max)
  } finally {
    closeSync(fd)
  }
}
