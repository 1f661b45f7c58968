/**
 * The piscina worker entry: runs diffPages() on a task whose memory and last-sent copy
 * are SharedArrayBuffers (shared with the main thread, not copied) and hands the batch
 * back by transferring its ArrayBuffer (moved, not copied); or faults in a spare batch
 * buffer for the pool (PageDiffPool.warmSpares), moved the same way. Each worker keeps its page
 * kernel (page-kernel.ts) and the kernel's scratch arena from task to task. The thread runs at nice 19
 * (worker-priority.ts): it gives way to every event loop on the machine.
 */
import { move, transferableSymbol, valueSymbol } from 'piscina'
import { diffPages, type PageDiffResult, type PageDiffTask } from './page-diff.js'
import { runSpareFault, type SpareFaultTask } from './spare-buffers.js'
import { isMainThread } from 'node:worker_threads'
import { lowerWorkerPriority } from './worker-priority.js'
import { pageKernel } from './page-kernel.js'

// Not when a test imports this module on its main thread to run the worker's function directly.
if (!isMainThread) lowerWorkerPriority()

/** diffPages() with the task's kernel, its batch moved; or a spare buffer faulted in, moved (spare-buffers.ts). */
export default function runPageDiff(task: PageDiffTask | SpareFaultTask): unknown {
  if ('spare_bytes' in task) return runSpareFault(task)
  const result: PageDiffResult = diffPages(task, pageKernel(task.kernel))
  return move({ [transferableSymbol]: result.batch.buffer, [valueSymbol]: result })
}
