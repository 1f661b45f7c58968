import t from 'tap'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Timeline, type TimelineEvent } from '../../scripts/controller/timeline.js'

const ev = (i: number) => ({ at_ms: 1_700_000_000_000 + i, kind: 'test.event', source: 'host-a1', details: { i } })

t.test('events get increasing seq numbers and come back in order', async (t) => {
  const tl = new Timeline(undefined)
  t.same(tl.since(), [], 'empty at first')
  const first = tl.append(ev(0))
  t.same(first, { seq: 1, ...ev(0) })
  for (let i = 1; i < 5; i++) tl.append(ev(i))
  t.same(tl.since().map((e) => e.seq), [1, 2, 3, 4, 5])
  t.same(tl.since(3).map((e) => e.seq), [4, 5], 'after is exclusive')
  t.same(tl.since(5), [])
  t.same(tl.since(0, 2).map((e) => e.seq), [4, 5], 'limit keeps the newest')
  t.same(tl.since(1, 2).map((e) => e.seq), [4, 5])
  t.same(tl.since(0, 0), [], 'a limit of 0 gives nothing')
  t.same(tl.since(3)[0], { seq: 4, ...ev(3) }, 'events are kept as given')
})

t.test('memory is bounded; seq keeps counting', async (t) => {
  const tl = new Timeline(undefined, 3)
  for (let i = 0; i < 10; i++) tl.append(ev(i))
  t.same(tl.since().map((e) => e.seq), [8, 9, 10], 'only the newest memory_max are kept')
  t.same(tl.since(8).map((e) => e.seq), [9, 10])
  t.equal(tl.append(ev(10)).seq, 11)
})

t.test('followers get every new event until they unfollow', async (t) => {
  const tl = new Timeline(undefined)
  tl.append(ev(0))
  const a: number[] = []
  const b: number[] = []
  const stopA = tl.follow((e) => a.push(e.seq))
  tl.follow((e) => b.push(e.seq))
  tl.append(ev(1))
  tl.append(ev(2))
  stopA()
  tl.append(ev(3))
  t.same(a, [2, 3], 'no replay of older events; nothing after unfollow')
  t.same(b, [2, 3, 4])
})

t.test('events are appended to the file, one JSON object per line', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'hvlab-timeline-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const file = join(dir, 'events.jsonl')
  const tl = new Timeline(file, 2)
  for (let i = 0; i < 4; i++) tl.append(ev(i))
  const lines = readFileSync(file, 'utf8').split('\n')
  t.equal(lines.pop(), '', 'ends with a newline')
  const events = lines.map((l) => JSON.parse(l) as TimelineEvent)
  t.same(events.map((e) => e.seq), [1, 2, 3, 4], 'the file keeps everything, not only what memory holds')
  t.same(events[3], { seq: 4, ...ev(3) })
})

t.test('a timeline reopened on the same file continues its numbering', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'hvlab-timeline-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const file = join(dir, 'events.jsonl')
  const first = new Timeline(file)
  first.append({ at_ms: 1, kind: 'a', source: 'lab', details: {} })
  first.append({ at_ms: 2, kind: 'b', source: 'lab', details: {} })
  const second = new Timeline(file)
  t.equal(second.append({ at_ms: 3, kind: 'c', source: 'lab', details: {} }).seq, 3)
})
