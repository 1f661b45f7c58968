/**
 * A process's log file: written synchronously (a kill -9 right after a line keeps it) and
 * rotated at log_file_bytes_max, keeping log_files_kept rotated files; its last lines are
 * read across the rotation, as the controller does for a process that died.
 */
import t from 'tap'
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { lastLinesOf } from '../../scripts/controller/log-tail.js'
import { labLayout, rotatedPaths } from '../../shared/lab-layout.js'
import { createFileLogger } from '../../shared/log.js'

const dir = mkdtempSync(join(tmpdir(), 'hvlab-log-'))
t.teardown(() => rmSync(dir, { recursive: true, force: true }))
const layout = labLayout(dir)

const nextTurn = (): Promise<void> => new Promise((r) => setImmediate(r))
async function until(done: () => boolean): Promise<void> {
  for (let i = 0; i < 500 && !done(); i++) await new Promise((r) => setTimeout(r, 10))
}
const msgs = (path: string): string[] =>
  readFileSync(path, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => (JSON.parse(l) as { msg: string }).msg)

t.test('each line is on disk when the call returns', async (t) => {
  const file = layout.processLog('witness')
  const log = await createFileLogger({ name: 'witness', file, file_bytes_max: 1024 * 1024, files_kept: 1 })
  log.warn({ peer: 'host-a1' }, 'refusing connection')
  const [path, ...more] = rotatedPaths(file)
  t.same(more, [])
  t.equal(path, join(layout.logs, 'witness.1.log'))
  t.same(msgs(path!), ['refusing connection'], 'no flush, no wait')
  t.equal(statSync(path!).mode & 0o777, 0o600)
})

t.test('a process log rotates at log_file_bytes_max and keeps log_files_kept rotated files', async (t) => {
  const file = layout.processLog('host-a1')
  const file_bytes_max = 4096
  const log = await createFileLogger({ name: 'host-a1', file, file_bytes_max, files_kept: 2 })
  const other = await createFileLogger({ name: 'host-a2', file: layout.processLog('host-a2'), file_bytes_max, files_kept: 2 })
  other.info('a neighbour in the same logs dir')
  for (let i = 0; i < 100; i++) {
    log.info({ pad: 'p'.repeat(150) }, `line ${i}`)
    await nextTurn()
  }
  await until(() => rotatedPaths(file).length <= 3)
  const paths = rotatedPaths(file)
  t.equal(paths.length, 3, 'the file being written and 2 rotated ones')
  for (const p of paths.slice(0, -1)) {
    const size = statSync(p).size
    t.ok(size >= file_bytes_max && size < file_bytes_max + 512, `${p} rotated once it reached ${file_bytes_max} bytes (${size})`)
  }
  const kept = paths.flatMap(msgs)
  t.equal(kept.at(-1), 'line 99', 'the newest line is in the newest file')
  t.notOk(kept.includes('line 0'), 'the oldest files are gone')
  t.same(
    rotatedPaths(layout.processLog('host-a2')).flatMap(msgs),
    ['a neighbour in the same logs dir'],
    'another process’s log is left alone',
  )
  const last = lastLinesOf(paths, 40).map((l) => (JSON.parse(l) as { msg: string }).msg)
  t.same(
    last,
    Array.from({ length: 40 }, (_, i) => `line ${60 + i}`),
    'the last lines, read across the rotated files',
  )
  t.ok(layout.logFiles().length >= 4, 'the layout lists every log file, rotated ones included')
})
