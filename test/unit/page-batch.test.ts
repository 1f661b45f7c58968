import t from 'tap'
import { ATTACHMENT_BYTES_MAX } from '../../shared/protocol/codec.js'
import { PAGE_SIZE_BYTES } from '../../shared/protocol/page-size.js'
import {
  PAGE_BATCH_HEADER_BYTES,
  PAGE_BATCH_PAGES_MAX,
  PageBatchBuilder,
  PageKind,
  applyBatch,
  pageBatchBytesMax,
  readPageBatch,
} from '../../agent/migration/page-batch.js'
import { destination, sampleBatch } from './page-batch-fixture.js'

const PAGE = PAGE_SIZE_BYTES

t.test('a batch of zero, delta and full pages applies on the destination', async (t) => {
  const { batch, page1, page2 } = sampleBatch()
  const entries = readPageBatch(batch, 4)
  t.same(
    entries.map((e) => [e.index, e.kind]),
    [
      [0, PageKind.zero],
      [1, PageKind.delta],
      [2, PageKind.full],
    ],
  )
  const dest = destination()
  t.same(applyBatch(dest, batch), { pages: 3, zero: 1, delta: 1, full: 1 })
  t.ok(dest.pageView(0).every((b) => b === 0))
  t.same(dest.pageView(1), page1)
  t.same(dest.pageView(2), page2)
  t.ok(
    dest.pageView(3).every((b) => b === 0),
    'pages not in the batch are untouched',
  )
  t.equal(dest.dirtyCount(), 0, 'applying marks nothing dirty')
})

t.test('the largest batch fits one frame attachment', async (t) => {
  t.ok(pageBatchBytesMax(PAGE_BATCH_PAGES_MAX) <= ATTACHMENT_BYTES_MAX)
  const b = new PageBatchBuilder(2)
  b.addZero(0)
  b.addZero(1)
  t.throws(() => b.addZero(2), { code: 'HVLAB_E_INTERNAL', message: /full/ })
  t.throws(() => new PageBatchBuilder(PAGE_BATCH_PAGES_MAX + 1), { code: 'HVLAB_E_USAGE' })
  t.throws(() => new PageBatchBuilder(1).addFull(0, new Uint8Array(10)), { code: 'HVLAB_E_INTERNAL' })
  t.throws(() => new PageBatchBuilder(1).addDelta(0, new Uint8Array(PAGE)), { code: 'HVLAB_E_INTERNAL' })
  t.throws(() => new PageBatchBuilder(1).commitDelta(0, 0), { code: 'HVLAB_E_INTERNAL' })
  t.throws(() => new PageBatchBuilder(1).addZero(-1), { code: 'HVLAB_E_INTERNAL' })
  t.equal(new PageBatchBuilder(1).finish().length, PAGE_BATCH_HEADER_BYTES, 'an empty batch is just the header')
})

/** Copies the batch and lets `edit` corrupt it through a DataView. */
function corrupt(batch: Uint8Array, edit: (v: DataView, bytes: Uint8Array) => Uint8Array | void): Uint8Array {
  const copy = batch.slice()
  return edit(new DataView(copy.buffer), copy) ?? copy
}

t.test('strict validation: every malformed batch is refused and changes no memory', async (t) => {
  const { batch } = sampleBatch()
  // entry offsets in the sample: e0 at 12 (zero, 7 bytes), e1 at 19 (delta), e2 after it (full)
  const e1 = PAGE_BATCH_HEADER_BYTES + 7
  const deltaLen = new DataView(batch.buffer, batch.byteOffset).getUint16(e1 + 5, true)
  const e2 = e1 + 7 + deltaLen
  const cases: Array<[string, Uint8Array, RegExp]> = [
    ['short header', batch.subarray(0, 11), /shorter than/],
    ['bad magic', corrupt(batch, (v) => v.setUint32(0, 0xdeadbeef, true)), /magic/],
    ['version 2', corrupt(batch, (v) => v.setUint8(4, 2)), /version 2/],
    ['page size 8 KiB', corrupt(batch, (v) => v.setUint8(5, 13)), /page size/],
    ['reserved bytes', corrupt(batch, (v) => v.setUint16(6, 1, true)), /reserved/],
    ['count over the limit', corrupt(batch, (v) => v.setUint32(8, PAGE_BATCH_PAGES_MAX + 1, true)), /over the limit/],
    ['count larger than the entries', corrupt(batch, (v) => v.setUint32(8, 4, true)), /cut off/],
    ['count smaller than the entries', corrupt(batch, (v) => v.setUint32(8, 2, true)), /left over/],
    ['index out of range', corrupt(batch, (v) => v.setUint32(e2, 4, true)), /memory has 4 pages/],
    ['duplicate index', corrupt(batch, (v) => v.setUint32(e2, 0, true)), /twice/],
    ['unknown kind', corrupt(batch, (v) => v.setUint8(e2 + 4, 7)), /unknown kind/],
    ['zero page with bytes', corrupt(batch, (v) => v.setUint16(PAGE_BATCH_HEADER_BYTES + 5, 1, true)), /zero page/],
    ['full page of the wrong size', corrupt(batch, (v) => v.setUint16(e2 + 5, PAGE - 1, true)), /full page/],
    ['empty delta', corrupt(batch, (v) => v.setUint16(e1 + 5, 0, true)), /delta of 0/],
    ['truncated last page', batch.subarray(0, batch.length - 1), /needs 4096 bytes/],
    ['trailing byte', Uint8Array.from([...batch, 0]), /left over/],
    ['malformed delta bytes', corrupt(batch, (v) => v.setUint8(e1 + 7 + 1, 0x00)), /malformed page delta/],
  ]
  for (const [what, bad, message] of cases) {
    const dest = destination()
    const before = dest.sha256()
    t.throws(() => applyBatch(dest, bad), { code: 'HVLAB_E_PROTOCOL', message }, what)
    t.equal(dest.sha256(), before, `${what}: memory unchanged`)
  }
})

t.test('a delta past the page count is refused even when earlier pages were fine', async (t) => {
  const b = new PageBatchBuilder(2)
  b.addZero(0)
  b.addFull(9, new Uint8Array(PAGE).fill(1))
  const dest = destination()
  const before = dest.sha256()
  t.throws(() => applyBatch(dest, b.finish()), { code: 'HVLAB_E_PROTOCOL' })
  t.equal(dest.sha256(), before, 'page 0 was not zeroed: validation comes before any write')
})
