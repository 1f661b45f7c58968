import t from 'tap'
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { rotatedPaths, type RotatedFile } from '../../shared/lab-layout.js'
import { Timeline, TIMELINE_MEMORY_DEFAULT, type TimelineEvent, type TimelineLimits } from '../../scripts/controller/timeline.js'

/** A test's own event: a kind no process emits (the timeline stores any), so it is cast past the declared union. */
const stored = (e: { at_ms: number; kind: string; source: string; details: Record<string, unknown> }) =>
  e as unknown as Omit<TimelineEvent, 'seq'>
const ev = (i: number) => stored({ at_ms: 1_700_000_000_000 + i, kind: 'test.event', source: 'host-a1', details: { i } })
const lineBytes = (e: TimelineEvent): number => Buffer.byteLength(JSON.stringify(e) + '\n')

function eventsFile(t: { teardown(fn: () => void): void }): RotatedFile {
  const dir = mkdtempSync(join(tmpdir(), 'hvlab-timeline-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return { dir, stem: 'events', ext: '.jsonl' }
}

const limits = (over: Partial<TimelineLimits> = {}): TimelineLimits => ({
  memory: TIMELINE_MEMORY_DEFAULT,
  file_bytes_max: 1024 * 1024,
  files_kept: 2,
  ...over,
})

async function open(t: { teardown(fn: () => void): void }, file: RotatedFile, l = limits()): Promise<Timeline> {
  const tl = await Timeline.open(file, l, (e) => {
    throw e
  })
  t.teardown(() => tl.close())
  return tl
}

const seqsIn = (path: string): (number | 'torn')[] =>
  readFileSync(path, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => {
      try {
        return (JSON.parse(l) as TimelineEvent).seq
      } catch (e) {
        if (!(e instanceof SyntaxError)) throw e
        return 'torn' // a line cut by a crash: not JSON
      }
    })

/** pino-roll rotates on the tick after the write that filled the file: let it. */
const nextTurn = (): Promise<void> => new Promise((r) => setImmediate(r))

/** It removes the oldest files asynchronously: wait (boundedly) until `done` holds. */
async function until(done: () => boolean): Promise<void> {
  for (let i = 0; i < 500 && !done(); i++) await new Promise((r) => setTimeout(r, 10))
}

t.test('events get increasing seq numbers and come back in order', async (t) => {
  const tl = new Timeline()
  t.same(tl.since(), [], 'empty at first')
  const first = tl.append(ev(0))
  t.same(first, { seq: 1, ...ev(0) })
  for (let i = 1; i < 5; i++) tl.append(ev(i))
  t.same(
    tl.since().map((e) => e.seq),
    [1, 2, 3, 4, 5],
  )
  t.same(
    tl.since(3).map((e) => e.seq),
    [4, 5],
    'after is exclusive',
  )
  t.same(tl.since(5), [])
  t.same(
    tl.since(0, 2).map((e) => e.seq),
    [4, 5],
    'limit keeps the newest',
  )
  t.same(
    tl.since(1, 2).map((e) => e.seq),
    [4, 5],
  )
  t.same(tl.since(0, 0), [], 'a limit of 0 gives nothing')
  t.same(tl.since(3)[0], { seq: 4, ...ev(3) }, 'events are kept as given')
  t.equal(tl.next(0)?.seq, 1, 'next: the oldest after a seq')
  t.equal(tl.next(3)?.seq, 4)
  t.equal(tl.next(5), undefined)
})

t.test('memory is bounded by count; seq keeps counting', async (t) => {
  const tl = new Timeline({ events_max: 3, bytes_max: 1024 * 1024 })
  for (let i = 0; i < 10; i++) tl.append(ev(i))
  t.same(
    tl.since().map((e) => e.seq),
    [8, 9, 10],
    'only the newest events_max are kept',
  )
  t.same(
    tl.since(8).map((e) => e.seq),
    [9, 10],
  )
  t.equal(tl.append(ev(10)).seq, 11)
})

t.test('memory is bounded by bytes: the oldest go first', async (t) => {
  // Seqs 1-9 and the same details: every line has the same size.
  const big = (i: number) => stored({ ...ev(i), details: { pad: 'x'.repeat(300) } })
  const event_bytes = lineBytes(new Timeline().append(big(0)))
  const bytes_max = 4 * event_bytes + 10 // four events fit, a fifth does not
  const tl = new Timeline({ events_max: 1000, bytes_max })
  for (let i = 0; i < 9; i++) t.equal(lineBytes(tl.append(big(i))), event_bytes)
  t.same(
    tl.since().map((e) => e.seq),
    [6, 7, 8, 9],
    'the newest that fit the budget',
  )
  const huge = tl.append(stored({ ...ev(10), details: { pad: 'y'.repeat(bytes_max) } }))
  t.equal(huge.seq, 10, 'an event over the whole budget still gets its seq')
  t.same(tl.since(), [], 'but is not kept in memory, nor is anything older')
  t.equal(tl.append(ev(11)).seq, 11)
  t.same(
    tl.since().map((e) => e.seq),
    [11],
  )
})

t.test('followers get every new event, with its line, until they unfollow', async (t) => {
  const tl = new Timeline()
  tl.append(ev(0))
  const a: number[] = []
  const b: string[] = []
  const stopA = tl.follow((e) => a.push(e.seq))
  tl.follow((_e, line) => b.push(line))
  tl.append(ev(1))
  tl.append(ev(2))
  stopA()
  tl.append(ev(3))
  t.same(a, [2, 3], 'no replay of older events; nothing after unfollow')
  t.same(
    b.map((l) => (JSON.parse(l) as TimelineEvent).seq),
    [2, 3, 4],
  )
  t.ok(
    b.every((l) => l.endsWith('}\n')),
    'each line ends with a newline',
  )
})

t.test('events are written to the file, one JSON object per line', async (t) => {
  const file = eventsFile(t)
  const tl = await open(t, file, limits({ memory: { events_max: 2, bytes_max: 1024 * 1024 } }))
  for (let i = 0; i < 4; i++) tl.append(ev(i))
  const [path, ...more] = rotatedPaths(file)
  t.same(more, [], 'one file')
  t.equal(path, join(file.dir, 'events.1.jsonl'))
  const lines = readFileSync(path!, 'utf8').split('\n')
  t.equal(lines.pop(), '', 'ends with a newline')
  const events = lines.map((l) => JSON.parse(l) as TimelineEvent)
  t.same(
    events.map((e) => e.seq),
    [1, 2, 3, 4],
    'the file keeps everything, not only what memory holds',
  )
  t.same(events[3], { seq: 4, ...ev(3) })
  t.equal(statSync(path!).mode & 0o777, 0o600, 'private to the lab’s user')
})

t.test('a timeline reopened on the same files continues its numbering', async (t) => {
  const file = eventsFile(t)
  const first = await open(t, file)
  first.append(stored({ at_ms: 1, kind: 'a', source: 'lab', details: {} }))
  first.append(stored({ at_ms: 2, kind: 'b', source: 'lab', details: {} }))
  first.close()
  const second = await open(t, file)
  t.equal(second.append(stored({ at_ms: 3, kind: 'c', source: 'lab', details: {} })).seq, 3)
})

t.test('the events file rotates at events_file_bytes_max and keeps events_files_kept rotated files', async (t) => {
  const file = eventsFile(t)
  const file_bytes_max = 4096
  const tl = await open(t, file, limits({ file_bytes_max, files_kept: 2 }))
  let line_bytes = 0
  for (let i = 0; i < 60; i++) {
    line_bytes = lineBytes(tl.append(stored({ ...ev(i), details: { pad: 'z'.repeat(400) } })))
    await nextTurn()
  }
  await until(() => rotatedPaths(file).length <= 3)
  const paths = rotatedPaths(file)
  t.equal(paths.length, 3, 'the file being written and 2 rotated ones')
  for (const p of paths.slice(0, -1)) {
    const size = statSync(p).size
    t.ok(size >= file_bytes_max && size < file_bytes_max + line_bytes, `${p} rotated once it reached ${file_bytes_max} bytes (${size})`)
  }
  t.ok(statSync(paths.at(-1)!).size < file_bytes_max + line_bytes, 'the current one is within its size too')
  const seqs = paths.flatMap(seqsIn)
  t.equal(seqs.at(-1), 60, 'the newest event is in the newest file')
  t.ok((seqs[0] as number) > 1, 'the oldest files are gone')
  t.same(
    seqs,
    Array.from({ length: seqs.length }, (_, i) => (seqs[0] as number) + i),
    'the files kept hold an unbroken run of events',
  )
})

t.test('a torn last line does not restart the numbering', async (t) => {
  const file = eventsFile(t)
  const path = join(file.dir, 'events.1.jsonl')
  const good = [1, 2, 3].map((seq) => JSON.stringify({ seq, ...ev(seq) }) + '\n').join('')
  writeFileSync(path, good + '{"seq":4,"at_ms":17000')
  const tl = await open(t, file)
  t.equal(tl.append(ev(4)).seq, 4, 'the last good seq + 1')
  t.same(seqsIn(path), [1, 2, 3, 'torn', 4], 'the torn line is ended; the new event has a line of its own')
})

t.test('the last seq is found across a rotated file when the newest is empty or torn', async (t) => {
  const file = eventsFile(t)
  writeFileSync(join(file.dir, 'events.1.jsonl'), [1, 2, 3, 4, 5].map((seq) => JSON.stringify({ seq, ...ev(seq) }) + '\n').join(''))
  writeFileSync(join(file.dir, 'events.2.jsonl'), '')
  const first = await open(t, file)
  t.equal(first.append(ev(6)).seq, 6, 'the newest file was empty (just rotated)')
  first.close()

  const other = eventsFile(t)
  writeFileSync(join(other.dir, 'events.7.jsonl'), [8, 9].map((seq) => JSON.stringify({ seq, ...ev(seq) }) + '\n').join(''))
  writeFileSync(join(other.dir, 'events.8.jsonl'), '{"seq":10,"kind":"x"')
  const second = await open(t, other)
  t.equal(second.append(ev(10)).seq, 10, 'the newest file held only a torn line')
  t.same(seqsIn(join(other.dir, 'events.8.jsonl')), ['torn', 10])
})
