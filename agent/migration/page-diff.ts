/**
 * The page-diff hot path: what each piscina worker runs over shared memory.
 *
 * For each dirty page, against the source's "last sent" copy (a SharedArrayBuffer the
 * size of guest memory that mirrors what the destination holds; both start zeroed):
 *
 *   1. identical to the last-sent copy → skipped (nothing sent);
 *   2. all zero → a zero marker (the last-sent page is zeroed);
 *   3. otherwise snapshot the page (the guest keeps running and may write it while we
 *      work; every later step uses the snapshot, so what is sent and what is recorded as
 *      sent are the same bytes — a write that races lands in the next round via its dirty
 *      bit), then an XBZRLE delta against the last-sent copy when it is smaller than the
 *      page, else the whole page (whole at once when a sample shows the page changed
 *      throughout: see looksChangedThroughout);
 *   4. the last-sent copy of the page becomes the snapshot.
 *
 * Steps 1 and 2 need no snapshot (see diffPages).
 *
 * The bulk round (round 0, every page, to a destination whose memory is all zero) keeps no
 * copy, as QEMU's XBZRLE cache keeps none of its bulk stage: a zero page is already there
 * (skipped), any other goes whole, copied from guest memory straight into the batch, and
 * its bit in `unkept` says that the last-sent page (still zero, never written) does not
 * hold what the destination has. A later round sends such a page whole (or as a zero
 * marker) and keeps it then: the copy holds only the pages dirtied again. Writing a copy of
 * the whole guest costs a page fault per 4 KiB of new memory (about 13 µs on the 2-core
 * bench machine, more than diffing the page), and most of a guest is never written again.
 *
 * The final round (the blackout's, the guest paused) writes no copy either: no round comes
 * after it to read one, and a first write into the copy's pages would fault them in while
 * the guest waits. Its pages go as in any later round (skipped, zero, delta or whole), and
 * the last-sent copy and `unkept` stay as they were. The zero checks and the encoding run in
 * a page kernel (page-kernel.ts: WebAssembly SIMD, or JavaScript where that is missing);
 * the batch is built in the kernel's arena, and only its used bytes are copied out.
 *
 * Pure apart from writing the last-sent pages it was given: no I/O, no clock.
 * Workers given disjoint page lists never touch the same last-sent page.
 */
import { HvlabError } from '../../shared/errors.js'
import { PAGE_SIZE_BYTES } from '../../shared/protocol/page-size.js'
import { PageBatchBuilder, PAGE_BATCH_PAGES_MAX } from './page-batch.js'
import { changedThroughoutAt, DELTA_NOT_SMALLER } from './page-delta.js'
import { ARENA_BATCH_AT, ARENA_CUR_AT, ARENA_PREV_AT, pageKernel, type PageKernel, type PageKernelChoice } from './page-kernel.js'

export interface PageDiffTask {
  /** Guest memory (GuestMemory.buffers.memory). */
  readonly memory: SharedArrayBuffer
  /** The source's copy of what was last sent, same size as memory. */
  readonly last_sent: SharedArrayBuffer
  /** Dirty page indices, at most PAGE_BATCH_PAGES_MAX, each once. */
  readonly pages: Uint32Array
  /** Which page kernel the worker uses (page-kernel.ts); default HVLAB_PAGE_KERNEL's. */
  readonly kernel?: PageKernelChoice
  /**
   * A spare buffer (a batch given back to the pool: PageDiffPool.recycle) the batch is
   * copied into when it fits, at offset 0; else the batch gets a new buffer of its size.
   * Reusing memory matters: a fresh page costs a page fault on first write (13 µs each
   * on the 2-core bench VM), more than diffing several pages.
   */
  readonly out?: ArrayBuffer
  /**
   * One bit per page (Int32 words, Atomics: workers share words): set where the last-sent
   * page is not kept (see the top). Needed by `bulk`; without it every page is kept.
   */
  readonly unkept?: SharedArrayBuffer
  /** The bulk round: last_sent and the destination's memory are all zero; nothing is kept. */
  readonly bulk?: boolean
  /** The final round (the blackout's): nothing reads the last-sent copy after it; nothing is kept. */
  readonly final?: boolean
}

const BITS_PER_WORD = 32

/** The size of a task's `unkept` bitmap for memory of `page_count` pages. */
export const unkeptBitmapBytes = (page_count: number): number => Math.ceil(page_count / BITS_PER_WORD) * 4

export interface PageDiffStats {
  /** Pages looked at. */
  scanned: number
  /** Sent as a zero marker. */
  zero: number
  /** Dirtied but identical to what was last sent: not sent. */
  skipped: number
  /** Sent as an XBZRLE delta. */
  delta: number
  /** Sent whole. */
  full: number
  /** Bytes of the pages scanned (scanned × 4096). */
  rawBytes: number
  /** Bytes of the batches produced (headers included): what goes on the wire. */
  encodedBytes: number
}

export interface PageDiffResult {
  readonly batch: Uint8Array
  readonly stats: PageDiffStats
}

export const emptyPageDiffStats = (): PageDiffStats => ({
  scanned: 0,
  zero: 0,
  skipped: 0,
  delta: 0,
  full: 0,
  rawBytes: 0,
  encodedBytes: 0,
})

/** Adds `b` into `a` and returns `a`. */
export function addPageDiffStats(a: PageDiffStats, b: PageDiffStats): PageDiffStats {
  a.scanned += b.scanned
  a.zero += b.zero
  a.skipped += b.skipped
  a.delta += b.delta
  a.full += b.full
  a.rawBytes += b.rawBytes
  a.encodedBytes += b.encodedBytes
  return a
}

const ZERO_PAGE = Buffer.alloc(PAGE_SIZE_BYTES)

function checkTask(task: PageDiffTask): number {
  const { memory, last_sent, pages } = task
  if (memory.byteLength === 0 || memory.byteLength % PAGE_SIZE_BYTES !== 0 || last_sent.byteLength !== memory.byteLength) {
    throw new HvlabError(
      'HVLAB_E_INTERNAL',
      `page diff needs memory and last-sent copies of the same whole-page size, got ${memory.byteLength} and ${last_sent.byteLength} bytes`,
    )
  }
  if (pages.length > PAGE_BATCH_PAGES_MAX) {
    throw new HvlabError('HVLAB_E_INTERNAL', `page diff task of ${pages.length} pages is over ${PAGE_BATCH_PAGES_MAX}; split the dirty set`)
  }
  const page_count = memory.byteLength / PAGE_SIZE_BYTES
  if (task.unkept !== undefined && task.unkept.byteLength !== unkeptBitmapBytes(page_count)) {
    throw new HvlabError('HVLAB_E_INTERNAL', `unkept bitmap of ${task.unkept.byteLength} bytes does not fit ${page_count} pages`)
  }
  if (task.bulk === true && task.final === true) {
    throw new HvlabError('HVLAB_E_INTERNAL', 'a round is the bulk round or the final one, not both')
  }
  if (task.bulk === true && task.unkept === undefined) {
    throw new HvlabError('HVLAB_E_INTERNAL', 'a bulk round keeps no copy and needs an unkept bitmap to say so')
  }
  return page_count
}

/** A task's views: made once per task, so no page needs a view of its own. */
interface DiffViews {
  /** compare() takes offsets: a Buffer over each shared buffer. */
  readonly memory: Buffer
  readonly sent: Buffer
  /** Copies go through TypedArray set(), faster than Buffer's copy(). */
  readonly memory8: Uint8Array
  readonly sent8: Uint8Array
  readonly sent32: Uint32Array
  readonly kernel: PageKernel
  /** The kernel's slot the snapshot is taken into. */
  readonly snapshot: Uint8Array
  readonly builder: PageBatchBuilder
  readonly unkept: Int32Array | null
  readonly bulk: boolean
  /** Write the last-sent copy and `unkept` (false in the final round). */
  readonly keep: boolean
}

type Outcome = 'skipped' | 'zero' | 'delta' | 'full'

/**
 * Diffs the task's pages into one batch and updates their last-sent copies, with `kernel`
 * (default: this thread's, page-kernel.ts) doing the encoding in its arena.
 */
export function diffPages(task: PageDiffTask, kernel: PageKernel = pageKernel()): PageDiffResult {
  const page_count = checkTask(task)
  const stats = emptyPageDiffStats()
  const v: DiffViews = {
    memory: Buffer.from(task.memory),
    sent: Buffer.from(task.last_sent),
    memory8: new Uint8Array(task.memory),
    sent8: new Uint8Array(task.last_sent),
    sent32: new Uint32Array(task.last_sent),
    kernel,
    snapshot: kernel.arena.subarray(ARENA_CUR_AT, ARENA_CUR_AT + PAGE_SIZE_BYTES),
    builder: new PageBatchBuilder(Math.max(1, task.pages.length), kernel.arena.subarray(ARENA_BATCH_AT)),
    unkept: task.unkept === undefined ? null : new Int32Array(task.unkept),
    bulk: task.bulk === true,
    keep: task.final !== true,
  }
  for (let k = 0; k < task.pages.length; k++) {
    const index = task.pages[k] as number
    if (index >= page_count) {
      throw new HvlabError('HVLAB_E_INTERNAL', `dirty page ${index} is outside memory of ${page_count} pages`)
    }
    stats[diffPage(v, index)]++
  }
  stats.scanned = task.pages.length
  // Copied out of the arena, which the next task reuses: into the spare buffer when it fits,
  // else a buffer of exactly its size (new + set: slice() of a view over WebAssembly memory
  // copies byte by byte).
  const built = v.builder.finish()
  const out = task.out
  const batch = out !== undefined && out.byteLength >= built.length ? new Uint8Array(out, 0, built.length) : new Uint8Array(built.length)
  batch.set(built)
  stats.rawBytes = stats.scanned * PAGE_SIZE_BYTES
  stats.encodedBytes = batch.length
  return { batch, stats }
}

/** The guest page at offset..end is all zero (native memcmp, in place). */
const isZeroAt = (v: DiffViews, offset: number, end: number): boolean => v.memory.compare(ZERO_PAGE, 0, PAGE_SIZE_BYTES, offset, end) === 0

const isUnkept = (words: Int32Array, index: number): boolean => ((Atomics.load(words, index >>> 5) >>> (index & 31)) & 1) === 1

function setUnkept(words: Int32Array, index: number, unkept: boolean): void {
  const bit = 1 << (index & 31)
  if (unkept) Atomics.or(words, index >>> 5, bit)
  else Atomics.and(words, index >>> 5, ~bit)
}

/**
 * The guest page at offset..end into the batch whole, by way of the snapshot slot. A copy out
 * of shared memory to where an entry's bytes go (7 bytes after its header, so unaligned) is
 * done a byte at a time (V8 copies shared memory with relaxed atomics, by words only between
 * two aligned addresses): 1.2 µs a page on the project's 2-core machine, against 0.38 µs for
 * the aligned copy into the snapshot and the plain one from there.
 */
function copyPageWhole(v: DiffViews, index: number, offset: number, end: number): void {
  v.snapshot.set(v.memory8.subarray(offset, end))
  snapshotWhole(v, index)
}

/** The snapshot slot into the batch as page `index`, whole (a plain copy within the kernel's arena). */
function snapshotWhole(v: DiffViews, index: number): void {
  v.kernel.arena.copyWithin(ARENA_BATCH_AT + v.builder.entryBytesOffset(), ARENA_CUR_AT, ARENA_CUR_AT + PAGE_SIZE_BYTES)
  v.builder.commitFull(index)
}

/** The bulk round: zero pages are there already; any other goes whole, not kept. */
function bulkPage(v: DiffViews, index: number, offset: number, end: number): Outcome {
  if (isZeroAt(v, offset, end)) return 'skipped'
  copyPageWhole(v, index, offset, end)
  setUnkept(v.unkept as Int32Array, index, true)
  return 'full'
}

/** A page the bulk round sent whole and did not keep (its last-sent page is zero): whole or zero again, kept now. */
function unkeptPage(v: DiffViews, words: Int32Array, index: number, offset: number, end: number): Outcome {
  if (v.keep) setUnkept(words, index, false)
  if (isZeroAt(v, offset, end)) {
    v.builder.addZero(index) // the destination's page becomes zero, as the last-sent page is
    return 'zero'
  }
  copyPageWhole(v, index, offset, end)
  if (v.keep) v.sent8.set(v.snapshot, offset)
  return 'full'
}

function diffPage(v: DiffViews, index: number): Outcome {
  const offset = index * PAGE_SIZE_BYTES
  const end = offset + PAGE_SIZE_BYTES
  if (v.bulk) return bulkPage(v, index, offset, end)
  if (v.unkept !== null && isUnkept(v.unkept, index)) return unkeptPage(v, v.unkept, index, offset, end)
  // Steps 1 and 2 read guest memory in place, no snapshot: what they conclude (nothing to
  // send, a zero page) is true of bytes that were there, and a write racing them sets the
  // page's dirty bit again, so the next round sends it.
  if (v.memory.compare(v.sent, offset, end, offset, end) === 0) return 'skipped'
  if (isZeroAt(v, offset, end)) {
    v.builder.addZero(index)
    if (v.keep) v.sent8.set(ZERO_PAGE, offset) // set(), not fill(): fill() of a shared buffer is far slower
    return 'zero'
  }
  const { kernel, builder } = v
  v.snapshot.set(v.memory8.subarray(offset, end))
  const out_at = ARENA_BATCH_AT + builder.entryBytesOffset()
  let length = DELTA_NOT_SMALLER
  if (!changedThroughoutAt(v.sent32, offset >>> 2, kernel.arena32, ARENA_CUR_AT >>> 2)) {
    kernel.arena.set(v.sent8.subarray(offset, end), ARENA_PREV_AT)
    length = kernel.encode(ARENA_PREV_AT, ARENA_CUR_AT, out_at, PAGE_SIZE_BYTES)
  }
  if (v.keep) v.sent8.set(v.snapshot, offset)
  if (length === DELTA_NOT_SMALLER) {
    snapshotWhole(v, index)
    return 'full'
  }
  builder.commitDelta(index, length)
  return 'delta'
}
