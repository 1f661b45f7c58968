/**
 * The piscina worker entry of the destination's page apply: runs applyPageTask() on a
 * batch it was given by transfer, into guest memory it shares with the main thread.
 */
import { applyPageTask, type PageApplyResult, type PageApplyTask } from './page-apply.js'

export default function runPageApply(task: PageApplyTask): PageApplyResult {
  return applyPageTask(task)
}
