import t from 'tap'
import { createHash } from 'node:crypto'
import { Worker } from 'node:worker_threads'
import { GUEST_PAGES_MAX, GuestMemory } from '../../agent/vm/guest-memory.js'
import { PAGE_SIZE_BYTES } from '../../shared/protocol/page-size.js'

t.test('sizes: pages of 4 KiB, limits refused with a clear error', async (t) => {
  const m = GuestMemory.create(3)
  t.equal(m.page_count, 3)
  t.equal(m.byte_length, 3 * PAGE_SIZE_BYTES)
  t.equal(m.buffers.dirty.byteLength, 4)
  for (const bad of [0, -1, 1.5, GUEST_PAGES_MAX + 1]) {
    t.throws(() => GuestMemory.create(bad), { code: 'HVLAB_E_USAGE' }, `${bad} pages`)
  }
  t.throws(() => GuestMemory.fromShared({ memory: new SharedArrayBuffer(5000), dirty: new SharedArrayBuffer(4) }), {
    code: 'HVLAB_E_USAGE',
    message: /whole number/,
  })
  t.throws(() => GuestMemory.fromShared({ memory: new SharedArrayBuffer(33 * PAGE_SIZE_BYTES), dirty: new SharedArrayBuffer(4) }), {
    code: 'HVLAB_E_USAGE',
    message: /must be 8 bytes/,
  })
})

t.test('writes mark every touched page dirty; takeDirty reads and resets', async (t) => {
  const m = GuestMemory.create(100)
  t.same(Array.from(m.takeDirty()), [])
  m.write(PAGE_SIZE_BYTES - 2, Uint8Array.from([1, 2, 3, 4])) // spans pages 0 and 1
  m.writeByte(64 * PAGE_SIZE_BYTES, 9)
  m.fill(99 * PAGE_SIZE_BYTES + 10, 5, 7)
  m.markDirty(31)
  m.write(50 * PAGE_SIZE_BYTES, new Uint8Array(0)) // empty write touches nothing
  t.equal(m.dirtyCount(), 5)
  t.ok(m.isDirty(64))
  t.notOk(m.isDirty(50))
  t.same(Array.from(m.takeDirty()), [0, 1, 31, 64, 99], 'ascending indices')
  t.equal(m.dirtyCount(), 0)
  t.same(Array.from(m.takeDirty()), [], 'the bitmap was reset')
  t.same(Array.from(m.read(PAGE_SIZE_BYTES - 2, 4)), [1, 2, 3, 4])
  t.equal(m.pageView(64)[0], 9)
  t.equal(m.pageView(99)[10 + 4], 7)
})

t.test('pageView writes do not mark dirty (the destination applies through it)', async (t) => {
  const m = GuestMemory.create(4)
  m.pageView(2).fill(1)
  t.equal(m.dirtyCount(), 0)
  t.equal(m.read(2 * PAGE_SIZE_BYTES, 1)[0], 1)
})

t.test('markAllDirty sets exactly page_count bits', async (t) => {
  for (const n of [1, 31, 32, 33, 70, 96]) {
    const m = GuestMemory.create(n)
    m.markAllDirty()
    const pages = m.takeDirty()
    t.equal(pages.length, n, `${n} pages`)
    t.equal(pages[n - 1], n - 1)
    t.equal(m.dirtyCount(), 0)
  }
})

t.test('out-of-range access is refused', async (t) => {
  const m = GuestMemory.create(2)
  t.throws(() => m.pageView(2), { code: 'HVLAB_E_USAGE' })
  t.throws(() => m.pageView(-1), { code: 'HVLAB_E_USAGE' })
  t.throws(() => m.markDirty(2), { code: 'HVLAB_E_USAGE' })
  t.throws(() => m.write(2 * PAGE_SIZE_BYTES - 1, new Uint8Array(2)), { code: 'HVLAB_E_USAGE' })
  t.throws(() => m.read(0, 2 * PAGE_SIZE_BYTES + 1), { code: 'HVLAB_E_USAGE' })
  t.throws(() => m.writeByte(-1, 0), { code: 'HVLAB_E_USAGE' })
  t.throws(() => m.fill(0, -1, 0), { code: 'HVLAB_E_USAGE' })
  t.throws(() => m.isDirty(5), { code: 'HVLAB_E_USAGE' })
})

t.test('fromShared wraps the same memory and bitmap', async (t) => {
  const a = GuestMemory.create(40)
  const b = GuestMemory.fromShared(a.buffers)
  a.write(33 * PAGE_SIZE_BYTES, Uint8Array.from([42]))
  t.equal(b.read(33 * PAGE_SIZE_BYTES, 1)[0], 42)
  t.same(Array.from(b.takeDirty()), [33])
  t.same(Array.from(a.takeDirty()), [], 'taking through one wrapper resets the shared bitmap')
})

t.test('sha256 covers all of memory', async (t) => {
  const m = GuestMemory.create(8)
  m.fill(0, m.byte_length, 0x3c)
  t.equal(m.sha256(), createHash('sha256').update(Buffer.alloc(m.byte_length, 0x3c)).digest('hex'))
  const before = m.sha256()
  m.writeByte(m.byte_length - 1, 0)
  t.not(m.sha256(), before, 'the last byte counts')
})

t.test('sha256Async: the same hash, with the event loop served between slices', async (t) => {
  const m = GuestMemory.create(4096 * 4) // 64 MiB: 16 slices
  m.fill(0, m.byte_length, 0x5a)
  m.writeByte(12345678, 1)
  let served = 0
  const ticker = setInterval(() => served++, 0)
  try {
    t.equal(await m.sha256Async(), m.sha256(), 'same hash as the one-go hash')
  } finally {
    clearInterval(ticker)
  }
  t.ok(served > 0, `timers ran while it hashed (${served} times): heartbeats are not held up`)
})

t.test('a worker thread writing through fromShared marks dirty bits the main thread takes', async (t) => {
  const m = GuestMemory.create(64)
  const worker = new Worker(
    `const { workerData, parentPort } = require('node:worker_threads')
     const bytes = new Uint8Array(workerData.memory)
     const words = new Int32Array(workerData.dirty)
     for (const p of [3, 40, 63]) { bytes[p * 4096] = p; Atomics.or(words, p >> 5, 1 << (p & 31)) }
     parentPort.postMessage('done')`,
    { eval: true, workerData: m.buffers },
  )
  await new Promise<void>((resolve, reject) => {
    worker.once('message', () => resolve())
    worker.once('error', reject)
  })
  await worker.terminate()
  t.same(Array.from(m.takeDirty()), [3, 40, 63])
  t.equal(m.read(40 * PAGE_SIZE_BYTES, 1)[0], 40)
})
