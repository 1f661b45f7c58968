/**
 * The piscina worker entry of the destination's page apply: runs applyPageTask() on
 * batches it was given by transfer, into guest memory it shares with the main thread, or
 * commits that memory before the first batch (commitMemoryTask()). The
 * thread runs at nice 19 (worker-priority.ts): it gives way to every event loop on the machine.
 */
import { applyPageTask, commitMemoryTask, type MemoryCommitTask, type PageApplyResult, type PageApplyTask } from './page-apply.js'
import { isMainThread } from 'node:worker_threads'
import { lowerWorkerPriority } from './worker-priority.js'

// Not when a test imports this module on its main thread to run the worker's function directly.
if (!isMainThread) lowerWorkerPriority()

export default function runPageApply(task: PageApplyTask | MemoryCommitTask): PageApplyResult {
  return 'commit' in task ? commitMemoryTask(task) : applyPageTask(task)
}
