/**
 * The source's data plane for one round: diff the round's dirty pages in the worker
 * pool and send each batch as a `migration-pages` frame. Pages are diffed a slice at a
 * time, the next slice in the workers while this one is on the wire, so at most two
 * slices of batches are held in memory whatever the VM's size. Batches in which every
 * page was skipped are not sent. Sending (sealing a frame, queueing it on the socket)
 * is main-thread work: the event loop is served every LOOP_SLICE_MS_DEFAULT between sends.
 * A batch's buffer goes back to the pool (PageDiffPool.recycle) once its frame is written
 * to the socket: a new buffer costs a page fault per 4 KiB on its first write.
 */
import { HvlabError } from '../../shared/errors.js'
import type { PeerConnection } from '../../shared/transport/peer-connection.js'
import type { MessageOf } from '../../shared/protocol/messages.js'
import type { GuestMemory } from '../vm/guest-memory.js'
import type { PageDiffPool, PageDiffRound } from './page-diff-pool.js'
import { LoopSlicer } from './loop-slice.js'
import { stageTimes } from '../../shared/stage-times.js'
import { addPageDiffStats, emptyPageDiffStats, type PageDiffStats } from './page-diff.js'

/** Pages diffed per slice (16 MiB of guest memory). */
export const STREAM_SLICE_PAGES = 4096
const BATCH_ENTRY_COUNT_OFFSET = 8

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

export async function streamRound(r: PageStreamRound): Promise<PageStreamResult> {
  const stats = emptyPageDiffStats()
  const slices = Math.ceil(r.pages.length / STREAM_SLICE_PAGES)
  const diffSlice = (k: number): Promise<PageDiffRound> => {
    const kept = { unkept: r.unkept, bulk: r.bulk, final: r.final === true }
    const pages = r.pages.subarray(k * STREAM_SLICE_PAGES, (k + 1) * STREAM_SLICE_PAGES)
    const memory = r.memory.buffers.memory
    // The blackout's round on this thread: the paused guest waits for it (PageDiffPool.diffHere).
    const p = r.final ? r.pool.diffHere(memory, r.last_sent, pages, kept) : r.pool.diff(memory, r.last_sent, pages, kept)
    p.catch(() => undefined) // awaited below; a failure while the previous slice is sent must not go unhandled
    return p
  }
  let seq = 0
  let bytes_sent = 0
  const slicer = new LoopSlicer()
  let next = slices > 0 ? diffSlice(0) : null
  for (let k = 0; k < slices; k++) {
    const waiting = stageTimes.start()
    const diffed = await (next as Promise<PageDiffRound>)
    stageTimes.end('diff_wait', waiting)
    next = k + 1 < slices ? diffSlice(k + 1) : null
    addPageDiffStats(stats, diffed.stats)
    for (const batch of diffed.batches) {
      if (r.stopped()) {
        if (next) await next.catch(() => undefined)
        throw stoppedError(r)
      }
      if (batchEntryCount(batch) === 0) continue
      const batch_bytes = batch.length // read before the send: once written, the buffer is the pool's
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
    r.onSlice?.(Math.min(r.pages.length, (k + 1) * STREAM_SLICE_PAGES), bytes_sent)
  }
  return { batches: seq, bytes_sent, stats }
}
