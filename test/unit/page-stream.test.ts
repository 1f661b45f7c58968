/**
 * The source's stream of one round (page-stream.ts): every non-empty batch goes out in
 * order, and each batch's buffer goes back to the diff pool once its frame is written to
 * the socket — not before, and not when the write never happened. The slices are diffed
 * ahead, in order, and nothing still diffs once the round's loop has been left.
 */
import t from 'tap'
import type { PeerConnection } from '../../shared/transport/peer-connection.js'
import { GuestMemory } from '../../agent/vm/guest-memory.js'
import type { PageDiffPool, PageDiffRound } from '../../agent/migration/page-diff-pool.js'
import { emptyPageDiffStats } from '../../agent/migration/page-diff.js'
import { diffedSlices, DIFF_SLICES_AHEAD, streamRound, STREAM_SLICE_PAGES } from '../../agent/migration/page-stream.js'

/** A batch of `entries` pages (only its header's entry count matters here), in a buffer of its own. */
function batch(entries: number, bytes = 64): Uint8Array {
  const b = new Uint8Array(bytes)
  new DataView(b.buffer).setUint32(8, entries, true)
  return b
}

/** A pool whose diff hands back the given batches, slice by slice, and records what is recycled. */
function fakePool(slices: Uint8Array[][]) {
  const recycled: Uint8Array[] = []
  let k = 0
  const pool = {
    diff: async (): Promise<PageDiffRound> => ({ batches: slices[k++] ?? [], stats: emptyPageDiffStats() }),
    recycle: (b: Uint8Array) => void recycled.push(b),
  }
  return { pool: pool as unknown as PageDiffPool, recycled }
}

/** A connection whose writes complete when the test says so (or fail). */
function fakeConn() {
  const sent: { seq: number; batch: Uint8Array }[] = []
  const writes: (() => void)[] = []
  const conn = {
    send: async (m: { seq: number }, batch: Uint8Array, o: { onWritten?: () => void } = {}) => {
      sent.push({ seq: m.seq, batch })
      if (o.onWritten) writes.push(o.onWritten)
    },
  }
  return { conn: conn as unknown as PeerConnection, sent, complete: () => writes.splice(0).forEach((w) => w()) }
}

t.test('each batch sent goes back to the pool once written, empty batches are not sent', async (t) => {
  const memory = GuestMemory.create(2 * STREAM_SLICE_PAGES)
  const slices = [[batch(3), batch(0), batch(5)], [batch(2, 100)]]
  const { pool, recycled } = fakePool(slices)
  const { conn, sent, complete } = fakeConn()
  const result = await streamRound({
    conn,
    pool,
    memory,
    last_sent: new SharedArrayBuffer(memory.byte_length),
    unkept: new SharedArrayBuffer(4 * Math.ceil(memory.page_count / 32)),
    bulk: true,
    pages: Uint32Array.from({ length: memory.page_count }, (_, i) => i),
    migration_id: 'm-1',
    round: 0,
    stopped: () => false,
  })
  t.same(
    sent.map((s) => s.seq),
    [0, 1, 2],
    'three frames, numbered in order; the batch with no entries was not sent',
  )
  t.same(
    sent.map((s) => s.batch),
    [slices[0]![0], slices[0]![2], slices[1]![0]],
    'the batches themselves, not copies',
  )
  t.equal(result.bytes_sent, 64 + 64 + 100, 'bytes sent count the batches sent')
  t.same(recycled, [], 'nothing goes back before its frame is written')
  complete()
  t.same(recycled, [slices[0]![0], slices[0]![2], slices[1]![0]], 'each sent batch goes back once written')
})

/** A pool whose slices finish when the test says so; it counts the diffs running at once. */
function gatedPool() {
  const gates: { pages: number; done: (r: PageDiffRound) => void; fail: (e: Error) => void }[] = []
  let running = 0
  let running_max = 0
  const pool = {
    diff: (_m: unknown, _l: unknown, pages: Uint32Array): Promise<PageDiffRound> => {
      running_max = Math.max(running_max, ++running)
      return new Promise((resolve, reject) => {
        const end = (): void => void running--
        gates.push({
          pages: pages[0] as number,
          done: (r) => (end(), resolve(r)),
          fail: (e) => (end(), reject(e)),
        })
      })
    },
  }
  return { pool: pool as unknown as PageDiffPool, gates, running: () => running, running_max: () => running_max }
}

const tick = (): Promise<void> => new Promise((r) => setImmediate(r))

t.test('diffedSlices: the next slices are in the pool while one is sent, in order, at most DIFF_SLICES_AHEAD', async (t) => {
  const slices = 5
  const pages = Uint32Array.from({ length: slices * STREAM_SLICE_PAGES }, (_, i) => i)
  const g = gatedPool()
  const shm = new SharedArrayBuffer(4096)
  const got: number[] = []
  const consuming = (async () => {
    for await (const r of diffedSlices({ pool: g.pool, memory: shm, last_sent: shm, pages })) got.push(r.stats.scanned)
  })()
  await tick()
  t.equal(g.running(), DIFF_SLICES_AHEAD, 'as many slices as allowed start at once')
  // finish them out of order: the second first; the first is still given out first
  const round = (n: number): PageDiffRound => ({ batches: [], stats: { ...emptyPageDiffStats(), scanned: n } })
  g.gates[1]!.done(round(1))
  await tick()
  t.same(got, [], 'nothing before the first slice')
  g.gates[0]!.done(round(0))
  await tick()
  t.same(got, [0, 1], 'in order')
  t.equal(g.running(), DIFF_SLICES_AHEAD, 'refilled: the pool is never left without the next slice')
  for (let k = 2; k < slices; k++) {
    g.gates[k]!.done(round(k))
    await tick()
  }
  await consuming
  t.same(got, [0, 1, 2, 3, 4])
  t.same(
    g.gates.map((x) => x.pages),
    [0, 1, 2, 3, 4].map((k) => k * STREAM_SLICE_PAGES),
    'each slice once, in order',
  )
  t.equal(g.running_max(), DIFF_SLICES_AHEAD)
})

t.test('diffedSlices: leaving early or a failed slice waits for every slice still in the pool', async (t) => {
  const pages = Uint32Array.from({ length: 4 * STREAM_SLICE_PAGES }, (_, i) => i)
  const shm = new SharedArrayBuffer(4096)
  const round = (): PageDiffRound => ({ batches: [], stats: emptyPageDiffStats() })

  const g = gatedPool()
  let left = false
  const leaving = (async () => {
    for await (const _ of diffedSlices({ pool: g.pool, memory: shm, last_sent: shm, pages })) break
    left = true
  })()
  await tick()
  g.gates[0]!.done(round())
  await tick()
  t.equal(left, false, 'the loop has not ended while a later slice still writes last_sent')
  for (const x of g.gates.slice(1)) x.done(round())
  await leaving
  t.equal(g.running(), 0, 'nothing runs once it has ended')

  const f = gatedPool()
  let failed: unknown = null
  const failing = (async () => {
    for await (const _ of diffedSlices({ pool: f.pool, memory: shm, last_sent: shm, pages })) void _
  })().catch((e: unknown) => (failed = e))
  await tick()
  f.gates[0]!.fail(new Error('worker died'))
  await tick()
  t.equal(failed, null, 'the failure waits for the slice beside it')
  f.gates[1]!.done(round())
  await failing
  t.match(failed, { message: 'worker died' })
  t.equal(f.running(), 0)
})
