import t from 'tap'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { lastLines } from '../../scripts/controller/log-tail.js'

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
  t.same(lastLines(file(numbered(30))), Array.from({ length: 10 }, (_, i) => `line ${i + 21}`), 'ten by default')
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
