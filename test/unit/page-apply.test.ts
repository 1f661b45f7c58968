/**
 * The destination's page apply off the event loop: applyPageTask() (what the worker runs,
 * tested here directly: coverage does not see worker threads) on good and adversarial
 * batches, and PageApplyPool through a real worker, writing shared guest memory in place.
 */
import { randomFillSync } from 'node:crypto'
import t from 'tap'
import { GuestMemory } from '../../agent/vm/guest-memory.js'
import { PAGE_SIZE_BYTES } from '../../shared/protocol/page-size.js'
import { mulberry32 } from '../../shared/seeded-random.js'
import { PAGE_BATCH_HEADER_BYTES, PageBatchBuilder } from '../../agent/migration/page-batch.js'
import { encodeDeltaToBytes } from '../../agent/migration/page-delta.js'
import { diffPages } from '../../agent/migration/page-diff.js'
import { appliedCounts, applyPageTask, commitMemoryTask, type PageApplyTask } from '../../agent/migration/page-apply.js'
import { PageApplyPool, ownedBatch } from '../../agent/migration/page-apply-pool.js'
import { destination, sampleBatch } from './page-batch-fixture.js'

const PAGE = PAGE_SIZE_BYTES

/** A task of `batches`, as PageApplyPool hands them to a worker. */
const task = (memory: GuestMemory, ...batches: Uint8Array[]): PageApplyTask => ({ memory: memory.buffers, batches })

/** An integer in [0, n) from a seeded PRNG. */
function seeded(seed: number): { int: (n: number) => number } {
  const next = mulberry32(seed)
  return { int: (n) => Math.floor(next() * n) }
}

t.test('committing memory (in the worker, and through the pool) changes no byte and no dirty bit', async (t) => {
  const memory = GuestMemory.create(64)
  const data = randomFillSync(new Uint8Array(3 * PAGE + 10))
  memory.write(5 * PAGE + 7, data)
  const sha = memory.sha256()
  const dirty = memory.dirtyCount()
  const result = commitMemoryTask({ memory: memory.buffers, commit: true })
  t.ok(result.ok && result.batches === 0 && result.worker_ms >= 0, 'the task commits and applies no batch')
  t.same(appliedCounts(result), { pages: 0, zero: 0, delta: 0, full: 0 }, 'and counts no page')
  const pool = new PageApplyPool({ threads: 1 })
  t.teardown(() => pool.close())
  t.ok((await pool.commit(memory.buffers)) >= 0, 'the pool commits in its worker and says how long it took')
  t.equal(memory.sha256(), sha, 'no byte changed')
  t.equal(memory.dirtyCount(), dirty, 'no page was marked dirty')
})

t.test('applyPageTask applies zero, delta and full pages into shared memory', async (t) => {
  const { batch, page1, page2 } = sampleBatch()
  const dest = destination()
  const { worker_ms, ...result } = applyPageTask(task(dest, batch))
  t.same(result, { ok: true, batches: 1, counts: { pages: 3, zero: 1, delta: 1, full: 1 } })
  t.ok(worker_ms >= 0 && Number.isFinite(worker_ms), 'the worker says how long it took (for the bench)')
  t.ok(
    dest.pageView(0).every((b) => b === 0),
    'page 0 zeroed',
  )
  t.same(dest.pageView(1), page1, 'page 1 decoded from its delta')
  t.same(dest.pageView(2), page2, 'page 2 copied')
  t.ok(
    dest.pageView(3).every((b) => b === 0),
    'page 3 untouched',
  )
  t.equal(dest.dirtyCount(), 0, 'nothing marked dirty')
})

t.test('a malformed batch comes back as a refusal with its code, and changes no memory', async (t) => {
  const { batch } = sampleBatch()
  const e1 = PAGE_BATCH_HEADER_BYTES + 7
  const cases: Array<[string, Uint8Array, RegExp]> = [
    ['short header', batch.subarray(0, 11), /shorter than/],
    ['bad magic', patched(batch, 0, 0xde), /magic/],
    ['duplicate index', patchedU32(batch, batch.length - PAGE - 7, 0), /twice/],
    ['malformed delta bytes', patched(batch, e1 + 7 + 1, 0x00), /malformed page delta/],
    ['trailing byte', Uint8Array.from([...batch, 0]), /left over/],
  ]
  for (const [what, bad, message] of cases) {
    const dest = destination()
    const before = dest.sha256()
    const result = applyPageTask(task(dest, bad))
    t.equal(result.ok, false, `${what}: refused`)
    if (!result.ok) {
      t.equal(result.code, 'HVLAB_E_PROTOCOL', `${what}: code`)
      t.match(result.message, message, `${what}: reason`)
    }
    t.throws(() => appliedCounts(result), { name: 'HvlabError', code: 'HVLAB_E_PROTOCOL', message }, `${what}: rethrown on the main thread`)
    t.equal(dest.sha256(), before, `${what}: memory unchanged`)
  }
})

function patched(batch: Uint8Array, at: number, value: number): Uint8Array {
  const copy = batch.slice()
  copy[at] = value
  return copy
}

function patchedU32(batch: Uint8Array, at: number, value: number): Uint8Array {
  const copy = batch.slice()
  new DataView(copy.buffer).setUint32(at, value, true)
  return copy
}

t.test('batches of one task go in order, up to the first refused one; none after it', async (t) => {
  const first = new PageBatchBuilder(1)
  first.addFull(3, new Uint8Array(PAGE).fill(0x44))
  const second = new PageBatchBuilder(1) // page 3 again: a delta against what the first batch wrote
  const page3 = new Uint8Array(PAGE).fill(0x44)
  page3[7] = 0x99
  second.addDelta(3, encodeDeltaToBytes(new Uint8Array(PAGE).fill(0x44), page3) as Uint8Array)
  const dest = destination()
  const { worker_ms: _, ...both } = applyPageTask(task(dest, first.finish(), second.finish()))
  t.same(both, {
    ok: true,
    batches: 2,
    counts: { pages: 2, zero: 0, delta: 1, full: 1 },
  })
  t.same(dest.pageView(3), page3, 'the later batch decoded against the earlier one')
  const { batch } = sampleBatch()
  const after = destination()
  const result = applyPageTask(task(after, first.finish(), patched(batch, 0, 0xde), batch))
  t.match(result, { ok: false, batches: 1, code: 'HVLAB_E_PROTOCOL', message: /magic/ })
  t.ok(
    after.pageView(3).every((b) => b === 0x44),
    'the batch before the bad one went in',
  )
  t.ok(
    after.pageView(2).every((b) => b === 0x33),
    'the batch after it did not',
  )
})

t.test('adversarial bytes: random corruptions apply whole or are refused with memory unchanged, never throw', async (t) => {
  const rng = seeded(7)
  const { batch } = sampleBatch()
  let refused = 0
  let applied = 0
  for (let i = 0; i < 2000; i++) {
    const bad = batch.slice()
    const flips = 1 + rng.int(4)
    for (let f = 0; f < flips; f++) bad[rng.int(Math.min(bad.length, 64 + rng.int(bad.length)))] = rng.int(256)
    const cut = rng.int(8) === 0 ? bad.subarray(0, rng.int(bad.length)) : bad
    const dest = destination()
    const before = dest.sha256()
    const result = applyPageTask(task(dest, cut))
    if (result.ok) applied++
    else {
      refused++
      if (result.code !== 'HVLAB_E_PROTOCOL') t.fail(`case ${i}: code ${result.code}`)
      if (dest.sha256() !== before) t.fail(`case ${i}: a refused batch changed memory`)
    }
  }
  t.ok(refused > 0 && applied > 0, `both outcomes seen (${applied} applied, ${refused} refused)`)
  const noise = new Uint8Array(4096)
  for (let i = 0; i < 200; i++) {
    randomFillSync(noise)
    new DataView(noise.buffer).setUint32(0, 0x42505648, true) // the magic, so parsing goes on
    noise[4] = 1
    noise[5] = 12
    noise[6] = noise[7] = 0
    const dest = destination()
    const result = applyPageTask(task(dest, noise.subarray(0, 12 + rng.int(4084))))
    t.equal(result.ok ? 'applied' : result.code, result.ok ? 'applied' : 'HVLAB_E_PROTOCOL', `noise ${i}`)
  }
})

t.test('diff → apply round trip through the pool: three rounds, each page in order, memories equal', async (t) => {
  const pool = new PageApplyPool({ threads: 1, idle_timeout_ms: 5_000 })
  t.teardown(() => pool.close())
  t.equal(pool.started, false, 'no worker before the first batch')
  const pages = 256
  const source = GuestMemory.create(pages)
  randomFillSync(source.bytes.subarray(0, (pages / 2) * PAGE))
  const last_sent = new SharedArrayBuffer(source.byte_length)
  const dest = GuestMemory.create(pages)
  const rng = seeded(3)
  source.markAllDirty()
  for (let round = 0; round < 3; round++) {
    const dirty = source.takeDirty()
    for (let k = 0; k < dirty.length; k += 64) {
      const { batch } = diffPages({ memory: source.buffers.memory, last_sent, pages: dirty.slice(k, k + 64) })
      await pool.apply(dest.buffers, [batch])
    }
    // the guest writes a few bytes here and there: the next round sends deltas of the same pages
    for (let w = 0; w < 40; w++) source.writeByte(rng.int(pages) * PAGE + rng.int(PAGE), rng.int(256))
    source.fill(rng.int(pages) * PAGE, PAGE, 0)
  }
  for (const k of source.takeDirty()) {
    const { batch } = diffPages({ memory: source.buffers.memory, last_sent, pages: Uint32Array.of(k) })
    await pool.apply(dest.buffers, [batch])
  }
  t.ok(pool.started, 'the pool started on the first batch')
  t.equal(dest.sha256(), source.sha256(), 'destination memory equals the source, written in place by the worker')
})

t.test('hand-over: a view into a larger buffer is copied, never detached; a whole buffer is moved', async (t) => {
  const pool = new PageApplyPool({ threads: 1, idle_timeout_ms: 5_000 })
  t.teardown(() => pool.close())
  const { batch } = sampleBatch()
  const frame = new Uint8Array(batch.length + 100) // as a frame: header, then the batch as its attachment
  frame.set(batch, 100)
  const attachment = frame.subarray(100)
  t.not(ownedBatch(attachment), attachment, 'a view is copied')
  const whole = batch.slice()
  t.equal(ownedBatch(whole), whole, 'a whole buffer is taken as it is')
  const dest = destination()
  await pool.apply(dest.buffers, [attachment, whole])
  t.equal(frame.byteLength, batch.length + 100, "the frame's buffer is not detached")
  t.same(attachment, batch, 'nor changed')
  t.equal(whole.byteLength, 0, 'the whole buffer was moved to the worker (detached here)')
  t.same(dest.pageView(2), sampleBatch().page2, 'both applied')
})

t.test('hand-over with views_movable: a view whose buffer the caller gives away is moved, not copied', async (t) => {
  const pool = new PageApplyPool({ threads: 1, idle_timeout_ms: 5_000 })
  t.teardown(() => pool.close())
  const { batch, page2 } = sampleBatch()
  const frame = new Uint8Array(batch.length + 100) // a frame handed over by the transport: header, then the batch
  frame.set(batch, 100)
  const dest = destination()
  t.same(await pool.apply(dest.buffers, [frame.subarray(100)], true), { pages: 3, zero: 1, delta: 1, full: 1 })
  t.equal(frame.byteLength, 0, "the frame's buffer was moved to the worker (detached here)")
  t.same(dest.pageView(2), page2, 'and the batch in it applied')
  const shared = new Uint8Array(new SharedArrayBuffer(batch.length))
  shared.set(batch)
  await pool.apply(dest.buffers, [shared], true)
  t.equal(shared.byteLength, batch.length, 'shared memory is never moved: copied instead')
})

t.test('the pool: a malformed batch rejects with its code and changes no memory; a closed pool refuses', async (t) => {
  const pool = new PageApplyPool({ threads: 1, idle_timeout_ms: 5_000 })
  const dest = destination()
  const before = dest.sha256()
  const { batch } = sampleBatch()
  await t.rejects(pool.apply(dest.buffers, [patched(batch, 0, 0xde)]), { name: 'HvlabError', code: 'HVLAB_E_PROTOCOL', message: /magic/ })
  t.equal(dest.sha256(), before, 'memory unchanged')
  t.same(await pool.apply(dest.buffers, [batch]), { pages: 3, zero: 1, delta: 1, full: 1 }, 'the worker goes on after a refusal')
  t.ok(
    dest.pageView(0).every((b) => b === 0),
    "the worker's writes are seen on the main thread",
  )
  await pool.close()
  await t.rejects(pool.apply(dest.buffers, [batch]), { code: 'HVLAB_E_STATE', message: /closed/ })
  t.throws(() => new PageApplyPool({ threads: 0 }), { code: 'HVLAB_E_USAGE', message: /threads/ })
  t.throws(() => new PageApplyPool({ threads: 1, inflight_max: 0 }), { code: 'HVLAB_E_USAGE', message: /inflight_max/ })
})
