/**
 * The page-diff hot path: what each piscina worker runs over shared memory.
 *
 * For each dirty page, against the source's "last sent" copy (a SharedArrayBuffer the
 * size of guest memory that mirrors what the destination holds; both start zeroed):
 *
 *   1. snapshot the page (the guest keeps running and may write it while we work; every
 *      later step uses the snapshot, so what is sent and what is recorded as sent are
 *      the same bytes — a write that races lands in the next round via its dirty bit);
 *   2. identical to the last-sent copy → skipped (nothing sent);
 *   3. all zero → a zero marker;
 *   4. otherwise an XBZRLE delta against the last-sent copy when it is smaller than the
 *      page, else the whole page (whole at once when a sample shows the page changed
 *      throughout: see looksChangedThroughout);
 *   5. the last-sent copy of the page becomes the snapshot.
 *
 * Pure apart from writing the last-sent pages it was given: no I/O, no clock.
 * Workers given disjoint page lists never touch the same last-sent page.
 */
import { HvlabError } from '../../shared/errors.js'
import { PAGE_SIZE_BYTES } from '../../shared/protocol/page-size.js'
import { PageBatchBuilder, PAGE_BATCH_PAGES_MAX } from './page-batch.js'
import { DELTA_NOT_SMALLER, encodeDelta, looksChangedThroughout } from './page-delta.js'

export interface PageDiffTask {
  /** Guest memory (GuestMemory.buffers.memory). */
  readonly memory: SharedArrayBuffer
  /** The source's copy of what was last sent, same size as memory. */
  readonly last_sent: SharedArrayBuffer
  /** Dirty page indices, at most PAGE_BATCH_PAGES_MAX, each once. */
  readonly pages: Uint32Array
}

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

const ZERO_PAGE = new Uint8Array(PAGE_SIZE_BYTES)

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
  return memory.byteLength / PAGE_SIZE_BYTES
}

/** Diffs the task's pages into one batch and updates their last-sent copies. */
export function diffPages(task: PageDiffTask): PageDiffResult {
  const page_count = checkTask(task)
  const stats = emptyPageDiffStats()
  const builder = new PageBatchBuilder(Math.max(1, task.pages.length))
  const snapshot = new Uint8Array(PAGE_SIZE_BYTES)
  for (let k = 0; k < task.pages.length; k++) {
    const index = task.pages[k] as number
    if (index >= page_count) {
      throw new HvlabError('HVLAB_E_INTERNAL', `dirty page ${index} is outside memory of ${page_count} pages`)
    }
    const offset = index * PAGE_SIZE_BYTES
    snapshot.set(new Uint8Array(task.memory, offset, PAGE_SIZE_BYTES))
    const sent = new Uint8Array(task.last_sent, offset, PAGE_SIZE_BYTES)
    stats.scanned++
    if (Buffer.compare(snapshot, sent) === 0) {
      stats.skipped++
      continue
    }
    if (Buffer.compare(snapshot, ZERO_PAGE) === 0) {
      builder.addZero(index)
      sent.fill(0)
      stats.zero++
      continue
    }
    const length = looksChangedThroughout(sent, snapshot) ? DELTA_NOT_SMALLER : encodeDelta(sent, snapshot, builder.deltaSpace())
    if (length === DELTA_NOT_SMALLER) {
      builder.addFull(index, snapshot)
      stats.full++
    } else {
      builder.commitDelta(index, length)
      stats.delta++
    }
    sent.set(snapshot)
  }
  const batch = builder.finish()
  stats.rawBytes = stats.scanned * PAGE_SIZE_BYTES
  stats.encodedBytes = batch.length
  return { batch, stats }
}
