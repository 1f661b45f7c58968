import t from 'tap'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { lastLineThat, lastLines, lastLinesOf } from '../../scripts/controller/log-tail.js'

const dir = mkdtempSync(join(tmpdir(), 'hvlab-log-tail-'))
t.teardown(() => rmSync(dir, { recursive: true, force: true }))
let n = 0
const file = (content: string): string => {
  const f = join(dir, `log-${++n}.log`)
  writeFileSync(f, content)
  return f
}
const numbered = (count: number): string => Array.from({ length: count }, (_, i) => `line ${i + 1}`).join('\n') + '\n'

t.test('a missing file has no lines', async (t) => {
  t.same(lastLines(join(dir, 'nope.log')), [])
  t.same(lastLines(file('')), [], 'nor has an empty one')
})

t.test('the last lines, without blank ones', async (t) => {
  t.same(lastLines(file(numbered(3))), ['line 1', 'line 2', 'line 3'])
  t.same(
    lastLines(file(numbered(30))),
    Array.from({ length: 10 }, (_, i) => `line ${i + 21}`),
    'ten by default',
  )
  t.same(lastLines(file(numbered(30)), 2), ['line 29', 'line 30'])
  t.same(lastLines(file('a\n\nb\nc-without-newline')), ['a', 'b', 'c-without-newline'])
})

t.test('only the last bytes_max bytes are read; a cut line is dropped', async (t) => {
  const f = file('x'.repeat(100) + '\nshort 1\nshort 2\n')
  t.same(lastLines(f, 10, 20), ['short 1', 'short 2'], 'the partial long line is not shown')
  t.same(lastLines(f, 10, 1000), ['x'.repeat(100), 'short 1', 'short 2'], 'a whole file is shown whole')
  // 16 bytes read: "short 1\nshort 2\n" exactly; nothing is cut, so nothing is dropped.
  t.same(lastLines(f, 10, 16), ['short 1', 'short 2'], 'a window starting at a line start keeps that line')
  // 17 bytes: "\nshort 1\nshort 2\n"; only the (empty) rest of the long line is cut.
  t.same(lastLines(f, 10, 17), ['short 1', 'short 2'], 'a window starting at a newline keeps the next line')
  t.same(lastLines(f, 10, 15), ['short 2'], 'one byte less cuts "short 1"')
})

t.test('the last lines across rotated files: the newest file first, then the one before it', async (t) => {
  const older = file('old 1\nold 2\nold 3\n')
  const newer = file('new 1\nnew 2\n')
  t.same(lastLinesOf([older, newer], 3), ['old 3', 'new 1', 'new 2'], 'oldest line first')
  t.same(lastLinesOf([older, newer], 2), ['new 1', 'new 2'], 'the older file is not needed')
  t.same(lastLinesOf([older, file('')], 2), ['old 2', 'old 3'], 'a file just rotated (empty) is passed over')
  t.same(lastLinesOf([older, newer], 10), ['old 1', 'old 2', 'old 3', 'new 1', 'new 2'], 'everything there is')
  t.same(lastLinesOf([], 10), [])
})

const digits = (line: string): number | undefined => (/^[0-9]+$/.test(line) ? Number(line) : undefined)

t.test('lastLineThat: the last line accepted, scanning back past the lines refused', async (t) => {
  t.equal(lastLineThat(join(dir, 'nope.log'), digits), undefined, 'a missing file')
  t.equal(lastLineThat(file(''), digits), undefined, 'an empty file')
  t.equal(lastLineThat(file('1\n2\n3\n'), digits), 3)
  t.equal(lastLineThat(file('1\n2\n3'), digits), 3, 'a last line without its newline is still a line')
  t.equal(lastLineThat(file('1\n2\nto'), digits), 2, 'a torn last line is passed over')
  t.equal(lastLineThat(file('7\nx\n\ny\n'), digits), 7, 'several')
  t.equal(lastLineThat(file('x\ny\n'), digits), undefined, 'none accepted')
  t.equal(lastLineThat(file('42'), digits), 42, 'a file of one line')
})

t.test('lastLineThat reads lines longer than its read chunk, and skips those over line_bytes_max', async (t) => {
  const long = '9'.repeat(200 * 1024) // over three 64 KiB chunks
  t.equal(
    lastLineThat(file(`1\n${long}\nbad\n`), (l) => (l === long ? 'long' : undefined)),
    'long',
  )
  t.equal(lastLineThat(file(`5\n${'x'.repeat(200 * 1024)}\n`), digits), 5, 'a long refused line is passed over')
  t.equal(lastLineThat(file(`5\n${long}\n`), digits, 100 * 1024), 5, 'one over line_bytes_max is skipped unread')
  t.equal(lastLineThat(file(`${long}\n`), digits, 100 * 1024), undefined, 'also when it is the first line')
  t.equal(lastLineThat(file(`${long}\n6\n`), digits, 100 * 1024), 6)
})
