/**
 * One PageDiffPool serves every migration of a host: concurrent diff() calls must share
 * its in-flight bound instead of each filling piscina's queue (which refused with
 * "Task queue is at limit" before the bound was made pool-wide).
 */
import { randomFillSync } from 'node:crypto'
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
