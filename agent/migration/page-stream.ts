/**
 * The source's data plane for one round: diff the round's dirty pages in the worker
 * pool and send each batch as a `migration-pages` frame. Pages are diffed a slice at a
 * time, the next slices in the workers while this one is on the wire (diffedSlices), so at
 * most DIFF_SLICES_AHEAD + 1 slices of batches are held in memory whatever the VM's size. Batches in which every
 * page was skipped are not sent. Sending (sealing a frame, queueing it on the socket)
 * is main-thread work: the event loop is served every LOOP_SLICE_MS_DEFAULT between sends.
 * A batch's buffer goes back to the pool (PageDiffPool.recycle) once its frame is written
 * to the socket: a new buffer costs a page fault per 4 KiB on its first write.
 */
import { HvlabError } from '../../shared/errors.js'
import type { PeerConnection } from '../../shared/transport/peer-connection.js'
import type { MessageOf } from '../../shared/protocol/messages.js'
import type { GuestMemory } from '../vm/guest-memory.js'
import type { DiffKept, PageDiffPool, PageDiffRound } from './page-diff-pool.js'
import type { SendWindow } from './send-window.js'
import { LoopSlicer } from './loop-slice.js'
import { stageTimes } from '../../shared/stage-times.js'
import { addPageDiffStats, emptyPageDiffStats, type PageDiffStats } from './page-diff.js'

/** Pages diffed per slice (8 MiB of guest memory: two of the pool's tasks). */
export const STREAM_SLICE_PAGES = 2048
/**
 * Slices in the pool while one is sent: with one, the workers waited at every slice's end
 * for the next (measured on the project's 2-core machine: 2 threads diffed 1.15–1.5× one).
 * At most this many slices and the one on the wire are held as batches (24 MiB of pages).
 */
export const DIFF_SLICES_AHEAD = 2
const BATCH_ENTRY_COUNT_OFFSET = 8

/**
 * Spare batch buffers a stream keeps in use (PageDiffPool.warmSpares, in a migration's
 * setup): its slices in the pool, the one on the wire, and a slice of frames still waiting
 * in the socket before their buffers come back (8 with the default chunks).
 */
export const streamSpares = (chunk_pages: number): number => Math.ceil(((DIFF_SLICES_AHEAD + 2) * STREAM_SLICE_PAGES) / chunk_pages)

export interface PageStreamRound {
  readonly conn: PeerConnection
  readonly pool: PageDiffPool
  readonly memory: GuestMemory
  readonly last_sent: SharedArrayBuffer
  /** Pages whose last-sent copy is not kept (page-diff.ts): the bulk round sets them, later rounds keep them. */
  readonly unkept: SharedArrayBuffer
  /** Round 0: every page, to a destination whose memory is zero; nothing is kept (page-diff.ts). */
  readonly bulk: boolean
  /** The blackout's round: the last; nothing is kept (page-diff.ts); diffed on this thread, and its frames say so. */
  readonly final?: boolean
  readonly pages: Uint32Array
  readonly migration_id: string
  readonly round: number
  /** Checked between batches: true once the migration ended (cancel, failure). */
  readonly stopped: () => boolean
  /** Batch bytes in flight stay within it (send-window.ts); absent: not paced. */
  readonly window?: SendWindow | null
  /** After each slice is on the wire: pages of the round done so far, bytes sent so far. */
  readonly onSlice?: (pages_done: number, bytes_sent: number) => void
}

export interface PageStreamResult {
  readonly batches: number
  /** Bytes of the batches sent (the attachments). */
  readonly bytes_sent: number
  readonly stats: PageDiffStats
}

export const batchEntryCount = (batch: Uint8Array): number =>
  new DataView(batch.buffer, batch.byteOffset, batch.byteLength).getUint32(BATCH_ENTRY_COUNT_OFFSET, true)

function stoppedError(r: PageStreamRound): HvlabError {
  return new HvlabError('HVLAB_E_STATE', `migration ${r.migration_id} ended while round ${r.round} was being sent`)
}

/** What diffedSlices() diffs: a round's pages, a slice at a time. */
export interface SliceDiff {
  readonly pool: PageDiffPool
  readonly memory: SharedArrayBuffer
  readonly last_sent: SharedArrayBuffer
  readonly pages: Uint32Array
  readonly kept?: DiffKept
  /** The blackout's round: diffed on this thread (PageDiffPool.diffHere), one slice at a time. */
  readonly here?: boolean
}

/**
 * The round's slices diffed, in order, DIFF_SLICES_AHEAD of them in the pool while the
 * caller sends the one it was given: the workers never wait at a slice's end for the next
 * to be handed out. However the caller leaves the loop (done, a break, a throw), nothing
 * still writes last_sent once it has left: the slices in the pool are awaited first.
 */
export async function* diffedSlices(d: SliceDiff): AsyncGenerator<PageDiffRound> {
  const slices = Math.ceil(d.pages.length / STREAM_SLICE_PAGES)
  const ahead = d.here === true ? 1 : DIFF_SLICES_AHEAD
  const pending: Promise<PageDiffRound>[] = []
  let started = 0
  const fill = (): void => {
    while (started < slices && pending.length < ahead) {
      const pages = d.pages.subarray(started * STREAM_SLICE_PAGES, ++started * STREAM_SLICE_PAGES)
      const p = d.here === true ? d.pool.diffHere(d.memory, d.last_sent, pages, d.kept) : d.pool.diff(d.memory, d.last_sent, pages, d.kept)
      p.catch(() => undefined) // awaited in turn; a failure while an earlier slice is sent must not go unhandled
      pending.push(p)
    }
  }
  try {
    fill()
    while (pending.length > 0) {
      const waiting = stageTimes.start()
      const diffed = await (pending[0] as Promise<PageDiffRound>)
      stageTimes.end('diff_wait', waiting)
      pending.shift()
      fill()
      yield diffed
    }
  } finally {
    await Promise.allSettled(pending)
  }
}

/** Waits for room in the send window for a batch; throws if the migration ended meanwhile. */
async function reserve(r: PageStreamRound, window: SendWindow, batch_bytes: number): Promise<void> {
  const waiting = stageTimes.start()
  await window.reserve(batch_bytes)
  stageTimes.end('window_wait', waiting)
  if (r.stopped()) throw stoppedError(r)
}

export async function streamRound(r: PageStreamRound): Promise<PageStreamResult> {
  const stats = emptyPageDiffStats()
  let seq = 0
  let bytes_sent = 0
  let pages_done = 0
  const slicer = new LoopSlicer()
  const kept = { unkept: r.unkept, bulk: r.bulk, final: r.final === true }
  const memory = r.memory.buffers.memory
  for await (const diffed of diffedSlices({ pool: r.pool, memory, last_sent: r.last_sent, pages: r.pages, kept, here: r.final === true })) {
    addPageDiffStats(stats, diffed.stats)
    for (const batch of diffed.batches) {
      if (r.stopped()) throw stoppedError(r) // leaving the loop awaits the slices still in the pool
      if (batchEntryCount(batch) === 0) continue
      const batch_bytes = batch.length // read before the send: once written, the buffer is the pool's
      if (r.window) await reserve(r, r.window, batch_bytes)
      // Once on the socket, the batch's buffer goes back to the pool: the next diff writes there, not into new memory.
      const message: MessageOf<'migration-pages'> = { t: 'migration-pages', migration_id: r.migration_id, round: r.round, seq }
      if (r.final) message.final = true
      await r.conn.send(message, batch, {
        onWritten: () => r.pool.recycle(batch),
      })
      seq++
      bytes_sent += batch_bytes
      await slicer.serve()
    }
    pages_done = Math.min(r.pages.length, pages_done + STREAM_SLICE_PAGES)
    r.onSlice?.(pages_done, bytes_sent)
  }
  return { batches: seq, bytes_sent, stats }
}
