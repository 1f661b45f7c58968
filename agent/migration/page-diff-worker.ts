/**
 * The piscina worker entry: runs diffPages() on a task whose memory and last-sent copy
 * are SharedArrayBuffers (shared with the main thread, not copied) and hands the batch
 * back by transferring its ArrayBuffer (moved, not copied). The thread runs at nice 19
 * (worker-priority.ts): it gives way to every event loop on the machine.
 */
import { move, transferableSymbol, valueSymbol } from 'piscina'
import { diffPages, type PageDiffResult, type PageDiffTask } from './page-diff.js'
import { isMainThread } from 'node:worker_threads'
import { lowerWorkerPriority } from './worker-priority.js'

// Not when a test imports this module on its main thread to run the worker's function directly.
if (!isMainThread) lowerWorkerPriority()

/** A batch much smaller than the buffer it was built in is copied out, so the
 * main thread does not hold a page-sized reservation per entry. */
function compact(result: PageDiffResult): PageDiffResult {
  const { batch } = result
  return batch.length * 2 < batch.buffer.byteLength ? { batch: batch.slice(), stats: result.stats } : result
}

export default function runPageDiff(task: PageDiffTask): unknown {
  const result = compact(diffPages(task))
  return move({ [transferableSymbol]: result.batch.buffer, [valueSymbol]: result })
}
