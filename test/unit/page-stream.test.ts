/**
 * The source's stream of one round (page-stream.ts): every non-empty batch goes out in
 * order, and each batch's buffer goes back to the diff pool once its frame is written to
 * the socket — not before, and not when the write never happened.
 */
import t from 'tap'
import type { PeerConnection } from '../../shared/transport/peer-connection.js'
import { GuestMemory } from '../../agent/vm/guest-memory.js'
import type { PageDiffPool, PageDiffRound } from '../../agent/migration/page-diff-pool.js'
import { emptyPageDiffStats } from '../../agent/migration/page-diff.js'
import { streamRound, STREAM_SLICE_PAGES } from '../../agent/migration/page-stream.js'

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
