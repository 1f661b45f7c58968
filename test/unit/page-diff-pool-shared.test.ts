/**
 * One PageDiffPool serves every migration of a host: concurrent diff() calls must share
 * its in-flight bound instead of each filling piscina's queue (which refused with
 * "Task queue is at limit" before the bound was made pool-wide).
 */
import { createHash, randomFillSync } from 'node:crypto'
import t from 'tap'
import { GuestMemory } from '../../agent/vm/guest-memory.js'
import { PageDiffPool } from '../../agent/migration/page-diff-pool.js'
import { applyBatch } from '../../agent/migration/page-batch.js'

t.test('concurrent diff() calls on one pool all succeed and stay correct', async (t) => {
  const pool = new PageDiffPool({ threads: 1, chunk_pages: 16, inflight_max: 1 })
  t.teardown(() => pool.close())
  const vms = [0, 1, 2, 3].map(() => {
    const memory = GuestMemory.create(256)
    randomFillSync(memory.bytes)
    return { memory, last_sent: new SharedArrayBuffer(memory.byte_length) }
  })
  const all = Uint32Array.from({ length: 256 }, (_, i) => i)
  const rounds = await Promise.all(vms.map((v) => pool.diff(v.memory.buffers.memory, v.last_sent, all)))
  for (const [i, round] of rounds.entries()) {
    const copy = GuestMemory.create(256)
    for (const batch of round.batches) applyBatch(copy, batch)
    t.equal(copy.sha256(), vms[i]?.memory.sha256(), `vm ${i} arrives whole`)
    t.equal(round.stats.full, 256)
  }
})

t.test('diffHere diffs on the calling thread into the same batches as the workers, into recycled buffers', async (t) => {
  const pool = new PageDiffPool({ threads: 1, chunk_pages: 32 })
  t.teardown(() => pool.close())
  const memory = GuestMemory.create(100)
  randomFillSync(memory.bytes.subarray(0, 60 * 4096))
  const pages = Uint32Array.from({ length: 100 }, (_, i) => i)
  const in_workers = await pool.diff(memory.buffers.memory, new SharedArrayBuffer(memory.byte_length), pages)
  const digest = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex')
  const expected = in_workers.batches.map(digest)
  const spare = in_workers.batches[0] as Uint8Array
  pool.recycle(spare)
  await pool.warmHere() // as a migration's setup does: the kernel loaded, its arena written
  const here = await pool.diffHere(memory.buffers.memory, new SharedArrayBuffer(memory.byte_length), pages)
  t.same(here.batches.map(digest), expected, 'the same batches, byte for byte')
  t.same(here.stats, in_workers.stats, 'and the same counts')
  t.equal(here.batches[0]?.buffer, spare.buffer, 'the first batch was written into the buffer given back')
  const copy = GuestMemory.create(100)
  for (const b of here.batches) applyBatch(copy, b)
  t.equal(copy.sha256(), memory.sha256(), 'applied, they make the same memory')
  for (const b of here.batches) pool.recycle(b)
  t.equal(pool.releaseSpares(), 4, 'the buffers given back are spares until released')
  const after = await pool.diffHere(memory.buffers.memory, new SharedArrayBuffer(memory.byte_length), pages)
  t.notOk(
    after.batches.some((b) => here.batches.some((h) => h.buffer === b.buffer)),
    'after the release, no batch is written into a buffer given back before',
  )
})
