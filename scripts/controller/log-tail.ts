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
    // One byte more than the window, when there is one, tells whether its first line is cut.
    const start = Math.max(0, size - length - 1)
    const buf = Buffer.alloc(size - start)
    readSync(fd, buf, 0, buf.length, start)
    const cut = start + length < size && buf[0] !== 0x0a
    const all = buf.subarray(buf.length - length).toString('utf8').split('\n')
    if (cut) all.shift()
    return all.filter((l) => l.length > 0).slice(-lines_max)
  } finally {
    closeSync(fd)
  }
}
