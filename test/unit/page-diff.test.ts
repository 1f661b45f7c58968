import t, { type Test } from 'tap'
import { randomFillSync } from 'node:crypto'
import { transferableSymbol, valueSymbol } from 'piscina'
import { GuestMemory } from '../../agent/vm/guest-memory.js'
import { PAGE_SIZE_BYTES } from '../../shared/protocol/page-size.js'
import { applyBatch, pageBatchBytesMax, readPageBatch, PageKind, PAGE_BATCH_PAGES_MAX } from '../../agent/migration/page-batch.js'
import { diffPages, unkeptBitmapBytes, type PageDiffResult } from '../../agent/migration/page-diff.js'
import { faultedSpare } from '../../agent/migration/spare-buffers.js'
import runPageDiff from '../../agent/migration/page-diff-worker.js'
import { PageDiffPool, PAGE_DIFF_SPARES_MAX } from '../../agent/migration/page-diff-pool.js'
import { pageKernel, type PageKernel } from '../../agent/migration/page-kernel.js'
import { mulberry32 } from '../../shared/seeded-random.js'
import { seeds } from '../sim/seed.js'

const PAGE = PAGE_SIZE_BYTES

const bytesOf = (sab: SharedArrayBuffer, page: number): Uint8Array => new Uint8Array(sab, page * PAGE, PAGE)

/**
 * Source memory of 6 pages and a last-sent copy (= what the destination holds):
 *   0 identical, 1 zeroed since sent, 2 a few bytes changed, 3 rewritten at random,
 *   4 zero and never changed, 5 small change on a zero page
 */
function scenario(): { source: GuestMemory; last_sent: SharedArrayBuffer; dest: GuestMemory } {
  const rnd = mulberry32(7)
  const source = GuestMemory.create(6)
  const dest = GuestMemory.create(6)
  const last_sent = new SharedArrayBuffer(6 * PAGE)
  const set = (page: number, bytes: Uint8Array): void => {
    bytesOf(last_sent, page).set(bytes)
    dest.pageView(page).set(bytes)
    source.pageView(page).set(bytes)
  }
  for (const p of [0, 1, 2, 3])
    set(
      p,
      Uint8Array.from({ length: PAGE }, () => Math.floor(rnd() * 256)),
    )
  source.fill(1 * PAGE, PAGE, 0)
  source.write(2 * PAGE + 17, Uint8Array.from([1, 2, 3]))
  source.write(2 * PAGE + 3000, Uint8Array.from([4]))
  source.write(
    3 * PAGE,
    Uint8Array.from({ length: PAGE }, () => Math.floor(rnd() * 256)),
  )
  source.writeByte(5 * PAGE + 99, 0x77)
  return { source, last_sent, dest }
}

for (const kernel of ['wasm-simd', 'js'] as const)
  t.test(`diffPages with the ${kernel} kernel classifies pages and the destination ends equal to the source`, async (t) => {
    await classifiesPages(t, pageKernel(kernel))
  })

async function classifiesPages(t: Test, kernel: PageKernel): Promise<void> {
  const { source, last_sent, dest } = scenario()
  const pages = Uint32Array.from([0, 1, 2, 3, 4, 5])
  const { batch, stats } = diffPages({ memory: source.buffers.memory, last_sent, pages }, kernel)
  t.same(stats, {
    scanned: 6,
    zero: 1,
    skipped: 2,
    delta: 2,
    full: 1,
    rawBytes: 6 * PAGE,
    encodedBytes: batch.length,
  })
  t.same(
    readPageBatch(batch, 6).map((e) => [e.index, e.kind]),
    [
      [1, PageKind.zero],
      [2, PageKind.delta],
      [3, PageKind.full],
      [5, PageKind.delta],
    ],
  )
  t.ok(stats.encodedBytes < 2 * PAGE, `encoded ${stats.encodedBytes} bytes for one full page and small changes`)
  t.same(new Uint8Array(last_sent), source.bytes, 'last-sent copy now mirrors the source')
  applyBatch(dest, batch, kernel)
  t.equal(dest.sha256(), source.sha256())
  const again = diffPages({ memory: source.buffers.memory, last_sent, pages }, kernel)
  t.equal(again.stats.skipped, 6, 'a second pass without writes sends nothing')
}

t.test('diffPages writes its batch into the spare buffer given when it fits, else into a new one of its size', async (t) => {
  const { source, last_sent } = scenario()
  const pages = Uint32Array.from([1, 2, 3])
  const spare = new ArrayBuffer(3 * PAGE)
  new Uint8Array(spare).fill(0xcc)
  const fits = diffPages({ memory: source.buffers.memory, last_sent: last_sent.slice(0), pages, out: spare })
  t.equal(fits.batch.buffer, spare, 'written into the spare')
  t.equal(fits.batch.byteOffset, 0)
  const fresh = diffPages({ memory: source.buffers.memory, last_sent: last_sent.slice(0), pages })
  t.same(fits.batch, fresh.batch, 'the same bytes as in a new buffer')
  t.equal(fresh.batch.buffer.byteLength, fresh.batch.length, 'a new buffer is exactly the batch')
  const small = new ArrayBuffer(16)
  const over = diffPages({ memory: source.buffers.memory, last_sent: last_sent.slice(0), pages, out: small })
  t.not(over.batch.buffer, small, 'a spare too small is not used')
  t.same(over.batch, fresh.batch)
})

t.test('diffPages refuses bad tasks', async (t) => {
  const m = GuestMemory.create(2)
  const last_sent = new SharedArrayBuffer(2 * PAGE)
  t.throws(() => diffPages({ memory: m.buffers.memory, last_sent, pages: Uint32Array.from([2]) }), {
    code: 'HVLAB_E_INTERNAL',
    message: /outside/,
  })
  t.throws(() => diffPages({ memory: m.buffers.memory, last_sent: new SharedArrayBuffer(PAGE), pages: new Uint32Array(0) }), {
    code: 'HVLAB_E_INTERNAL',
  })
  t.throws(() => diffPages({ memory: m.buffers.memory, last_sent, pages: new Uint32Array(PAGE_BATCH_PAGES_MAX + 1) }), {
    code: 'HVLAB_E_INTERNAL',
    message: /split/,
  })
})

t.test('the worker entry returns the result with its batch buffer to transfer', async (t) => {
  const { source, last_sent } = scenario()
  const moved = runPageDiff({ memory: source.buffers.memory, last_sent, pages: Uint32Array.from([2, 3]) }) as Record<symbol, unknown>
  const value = moved[valueSymbol] as PageDiffResult
  t.equal(value.stats.delta, 1)
  t.equal(value.stats.full, 1)
  t.equal(moved[transferableSymbol], value.batch.buffer)
  t.equal(value.batch.buffer.byteLength, value.batch.length, 'the batch is copied out of the kernel arena into a buffer of its size')
})

t.test('the worker entry faults in a spare buffer of the size asked and moves it back', async (t) => {
  const bytes = pageBatchBytesMax(3)
  const moved = runPageDiff({ spare_bytes: bytes }) as Record<symbol, unknown>
  const { spare } = moved[valueSymbol] as { spare: ArrayBuffer }
  t.equal(spare.byteLength, bytes)
  t.equal(moved[transferableSymbol], spare, 'the spare is moved, not copied')
  t.ok(
    new Uint8Array(spare).every((b) => b === 0),
    'its bytes are all zero: each page was written with what it held',
  )
  for (const spare_bytes of [0, -1, 1.5, pageBatchBytesMax(PAGE_BATCH_PAGES_MAX) + 1, Number.NaN]) {
    t.throws(() => faultedSpare({ spare_bytes }), { code: 'HVLAB_E_INTERNAL' }, `${spare_bytes} bytes is refused`)
  }
})

t.test('warmSpares faults in whole-batch spares that the next diff writes into, and a release drops them', async (t) => {
  const pool = new PageDiffPool({ threads: 2, chunk_pages: 4 })
  t.teardown(() => pool.close())
  const whole = pageBatchBytesMax(4)
  await pool.warmSpares(3)
  await pool.warmSpares(3) // three are kept already: none more
  t.equal(pool.releaseSpares(), 3, 'three spares were kept')
  await pool.warmSpares(PAGE_DIFF_SPARES_MAX + 5)
  t.equal(pool.releaseSpares(), PAGE_DIFF_SPARES_MAX, 'never more than PAGE_DIFF_SPARES_MAX')

  const { source, last_sent } = scenario()
  await pool.warmSpares(2)
  const round = await pool.diff(source.buffers.memory, last_sent, Uint32Array.from([2, 3, 4, 5]))
  t.equal(round.batches.length, 1)
  t.equal(round.batches[0]?.buffer.byteLength, whole, 'the batch went into a spare of a whole batch')
  t.equal(pool.releaseSpares(), 1, 'one spare is left')

  const warming = pool.warmSpares(2)
  t.equal(pool.releaseSpares(), 0, 'released while the workers fault them in')
  await warming
  t.equal(pool.releaseSpares(), 0, 'the spares faulted in before the release are dropped, not kept')
})

/** Random guest writes between rounds: small edits, whole pages, zeroing. */
function guestWrites(m: GuestMemory, rnd: () => number, count: number): void {
  for (let n = 0; n < count; n++) {
    const page = Math.floor(rnd() * m.page_count)
    const kind = rnd()
    if (kind < 0.6)
      m.write(
        page * PAGE + Math.floor(rnd() * (PAGE - 8)),
        Uint8Array.from({ length: 1 + Math.floor(rnd() * 8) }, () => Math.floor(rnd() * 256)),
      )
    else if (kind < 0.8)
      m.write(
        page * PAGE,
        Uint8Array.from({ length: PAGE }, () => Math.floor(rnd() * 256)),
      )
    else if (kind < 0.9) m.fill(page * PAGE, PAGE, 0)
    else m.markDirty(page) // dirtied but unchanged
  }
}

t.test('seeded pre-copy rounds in process: destination hash equals source hash at pause', async (t) => {
  for (const seed of seeds(import.meta.url, [1, 2, 3, 0xc0ffee]).list) {
    const rnd = mulberry32(seed)
    const source = GuestMemory.create(300)
    const dest = GuestMemory.create(300)
    const last_sent = new SharedArrayBuffer(source.byte_length)
    guestWrites(source, rnd, 400)
    source.markAllDirty()
    for (let round = 0; round < 5; round++) {
      const dirty = source.takeDirty()
      for (let at = 0; at < dirty.length; at += 64)
        applyBatch(dest, diffPages({ memory: source.buffers.memory, last_sent, pages: dirty.slice(at, at + 64) }).batch)
      if (round < 4) guestWrites(source, rnd, 50)
    }
    if (dest.sha256() !== source.sha256()) {
      t.fail(`seed ${seed}: destination differs from source after the final round (rerun: ${seeds(import.meta.url, [seed]).rerun(seed)})`)
      return
    }
  }
  t.pass('every seed converges to equal memory')
})

t.test('seeded rounds with the bulk round keeping no copy: equal memory, the copy holds only pages sent again', async (t) => {
  for (const seed of seeds(import.meta.url, [4, 5, 6, 0xfeed]).list) {
    const rerun = seeds(import.meta.url, [seed]).rerun(seed)
    const rnd = mulberry32(seed)
    const source = GuestMemory.create(300)
    const dest = GuestMemory.create(300)
    const last_sent = new SharedArrayBuffer(source.byte_length)
    const unkept = new SharedArrayBuffer(unkeptBitmapBytes(300))
    guestWrites(source, rnd, 400)
    const wasNonzero = Array.from({ length: 300 }, (_, p) => source.pageView(p).some((b) => b !== 0))
    const nonzero = wasNonzero.filter(Boolean).length
    source.takeDirty()
    const all = Uint32Array.from({ length: 300 }, (_, i) => i)
    const round = (pages: Uint32Array, bulk: boolean, final = false) => {
      const stats = { full: 0, delta: 0, zero: 0, skipped: 0 }
      for (let at = 0; at < pages.length; at += 64) {
        const r = diffPages({ memory: source.buffers.memory, last_sent, pages: pages.slice(at, at + 64), unkept, bulk, final })
        applyBatch(dest, r.batch)
        for (const k of ['full', 'delta', 'zero', 'skipped'] as const) stats[k] += r.stats[k]
      }
      return stats
    }
    const bulk = round(all, true)
    const kept = new Uint8Array(last_sent)
    if (bulk.full !== nonzero || bulk.delta + bulk.zero !== 0 || kept.some((b) => b !== 0)) {
      t.fail(
        `seed ${seed}: the bulk round sends each nonzero page whole and keeps nothing (${JSON.stringify(bulk)}, ${nonzero} nonzero; rerun: ${rerun})`,
      )
      return
    }
    if (dest.sha256() !== source.sha256()) return void t.fail(`seed ${seed}: differs after the bulk round (rerun: ${rerun})`)
    // the same pages written twice: the first later round sends those the bulk round sent whole (not kept)
    // whole again, and those it skipped (zero, as the copy) as deltas; the next round all as deltas (kept)
    const hot = Uint32Array.from({ length: 20 }, (_, i) => i * 15)
    const hotSentWhole = [...hot].filter((p) => wasNonzero[p]).length
    for (const p of hot) source.write(p * PAGE + 9, Uint8Array.of(1, 2, 3, (seed + p) & 0xff))
    const first = round(source.takeDirty(), false)
    for (const p of hot) source.write(p * PAGE + 900, Uint8Array.of(7, (seed + p) & 0xff))
    const second = round(source.takeDirty(), false)
    if (first.full !== hotSentWhole || first.delta !== hot.length - hotSentWhole || second.delta !== hot.length || hotSentWhole === 0) {
      t.fail(
        `seed ${seed}: ${hotSentWhole} of ${hot.length} whole then all deltas, got ${JSON.stringify(first)} then ${JSON.stringify(second)} (rerun: ${rerun})`,
      )
      return
    }
    for (let r = 0; r < 4; r++) {
      guestWrites(source, rnd, 60)
      source.fill(Math.floor(rnd() * 300) * PAGE, PAGE, 0) // a page zeroed, kept or not
      round(source.takeDirty(), false)
    }
    if (dest.sha256() !== source.sha256()) return void t.fail(`seed ${seed}: differs after the later rounds (rerun: ${rerun})`)
    // the final round (the blackout's): pages kept or not, zeroed or not, go across; the copy and the bitmap are left as they were
    guestWrites(source, rnd, 80)
    source.fill(Math.floor(rnd() * 300) * PAGE, PAGE, 0)
    const copy_before = Buffer.from(new Uint8Array(last_sent))
    const unkept_before = Buffer.from(new Uint8Array(unkept))
    round(source.takeDirty(), false, true)
    if (dest.sha256() !== source.sha256()) return void t.fail(`seed ${seed}: differs after the final round (rerun: ${rerun})`)
    if (!copy_before.equals(new Uint8Array(last_sent)) || !unkept_before.equals(new Uint8Array(unkept)))
      return void t.fail(`seed ${seed}: the final round wrote the last-sent copy or the unkept bitmap (rerun: ${rerun})`)
  }
  t.pass('every seed ends with equal memory; the final round writes no copy')
})

t.test('a bulk round needs its unkept bitmap, of the right size', async (t) => {
  const memory = GuestMemory.create(40).buffers.memory
  const last_sent = new SharedArrayBuffer(memory.byteLength)
  const pages = Uint32Array.of(0)
  t.throws(() => diffPages({ memory, last_sent, pages, bulk: true }), { code: 'HVLAB_E_INTERNAL' })
  const unkept = new SharedArrayBuffer(unkeptBitmapBytes(40))
  t.throws(
    () => diffPages({ memory, last_sent, pages, unkept, bulk: true, final: true }),
    { code: 'HVLAB_E_INTERNAL' },
    'bulk and final at once: refused',
  )
  t.throws(() => diffPages({ memory, last_sent, pages, unkept: new SharedArrayBuffer(4 * 3) }), { code: 'HVLAB_E_INTERNAL' })
  t.equal(diffPages({ memory, last_sent, pages, unkept: new SharedArrayBuffer(unkeptBitmapBytes(40)), bulk: true }).stats.skipped, 1)
})

t.test('pool with 2 threads: rounds with writes between them end with equal hashes', async (t) => {
  const seed = seeds(import.meta.url, [0xbadc0de]).list[0]!
  const rnd = mulberry32(seed)
  const pool = new PageDiffPool({ threads: 2, chunk_pages: 32, idle_timeout_ms: 5_000 })
  t.teardown(() => pool.close())
  const source = GuestMemory.create(512)
  const dest = GuestMemory.create(512)
  const last_sent = new SharedArrayBuffer(source.byte_length)
  guestWrites(source, rnd, 600)
  source.markAllDirty()
  const totals = { zero: 0, skipped: 0, delta: 0, full: 0 }
  for (let round = 0; round < 6; round++) {
    const dirty = source.takeDirty()
    const { batches, stats } = await pool.diff(source.buffers.memory, last_sent, dirty)
    t.equal(stats.scanned, dirty.length, `round ${round} scanned every dirty page (seed ${seed})`)
    t.equal(batches.length, Math.ceil(dirty.length / 32))
    t.equal(
      stats.encodedBytes,
      batches.reduce((n, b) => n + b.length, 0),
    )
    for (const b of batches) applyBatch(dest, b)
    for (const k of ['zero', 'skipped', 'delta', 'full'] as const) totals[k] += stats[k]
    if (round < 5) guestWrites(source, rnd, 80)
  }
  t.equal(dest.sha256(), source.sha256(), `destination equals source at pause (seed ${seed})`)
  t.same(
    Buffer.compare(Buffer.from(last_sent), Buffer.from(source.bytes.buffer as SharedArrayBuffer)),
    0,
    'last-sent copy mirrors the source',
  )
  for (const k of ['zero', 'skipped', 'delta', 'full'] as const) t.ok(totals[k] > 0, `some pages went as ${k} (${totals[k]})`)
  await pool.close()
  await t.rejects(pool.diff(source.buffers.memory, last_sent, new Uint32Array(0)), { code: 'HVLAB_E_STATE' })
})

t.test('pool: a batch given back is written over by a later task (its buffer reused), and the pages arrive whole', async (t) => {
  const pool = new PageDiffPool({ threads: 1, chunk_pages: 64, inflight_max: 1, kernel: 'js' })
  t.teardown(() => pool.close())
  const source = GuestMemory.create(128)
  const dest = GuestMemory.create(128)
  randomFillSync(source.bytes)
  const all = Uint32Array.from({ length: 128 }, (_, i) => i)
  const last_sent = new SharedArrayBuffer(source.byte_length)
  const first = await pool.diff(source.buffers.memory, last_sent, all)
  const sizes = first.batches.map((b) => b.buffer.byteLength)
  for (const b of first.batches) applyBatch(dest, b)
  for (const b of first.batches) pool.recycle(b)
  for (let p = 0; p < 128; p++) source.writeByte(p * PAGE + 5, 0x42) // small deltas: much shorter batches
  const second = await pool.diff(source.buffers.memory, last_sent, all)
  t.ok(
    first.batches.every((b) => b.buffer.byteLength === 0),
    'the buffers given back went to the workers (moved: detached here)',
  )
  t.ok(
    second.batches.every((b) => b.buffer.byteLength > b.length && sizes.includes(b.buffer.byteLength)),
    'the second round came back in them',
  )
  for (const b of second.batches) applyBatch(dest, b)
  t.equal(dest.sha256(), source.sha256(), 'the destination equals the source')
})

t.test('pool reports a failing task and refuses bad options', async (t) => {
  t.throws(() => new PageDiffPool({ threads: 1, kernel: 'simd' as 'js' }), { code: 'HVLAB_E_USAGE', message: /kernel/ })
  t.throws(() => new PageDiffPool({ threads: 0 }), { code: 'HVLAB_E_USAGE', message: /threads/ })
  t.throws(() => new PageDiffPool({ threads: 1, chunk_pages: PAGE_BATCH_PAGES_MAX + 1 }), { code: 'HVLAB_E_USAGE', message: /chunk_pages/ })
  const pool = new PageDiffPool({ threads: 1, chunk_pages: 4, inflight_max: 1 })
  t.teardown(() => pool.close())
  const m = GuestMemory.create(8)
  await t.rejects(pool.diff(m.buffers.memory, new SharedArrayBuffer(8 * PAGE), Uint32Array.from([0, 1, 2, 3, 8])), {
    message: /outside memory/,
  })
})
