/**
 * The destination's page apply as a worker task: page batches decoded into the arriving
 * VM's memory (zero pages cleared, full pages copied, deltas decoded against the page as
 * it is), by a piscina worker, not the host's event loop. The memory is the arriving VM's
 * SharedArrayBuffer, written in place; the batches are the worker's own (moved, not
 * shared) and applied in their order: one hand-over between threads for all the batches
 * that waited, which a busy machine makes costly.
 *
 * A malformed batch comes back as a value (its error code and message, and how many
 * batches before it went in), not a throw: an error thrown across threads arrives without
 * its code. applyBatch() validates a whole batch before it writes a byte, so a bad batch
 * changes no memory, and the batches after it are not applied.
 */
import { HvlabError, type HvlabCode } from '../../shared/errors.js'
import { GuestMemory, type GuestMemoryBuffers } from '../vm/guest-memory.js'
import { applyBatch, type ApplyCounts } from './page-batch.js'

export interface PageApplyTask {
  /** The arriving VM's memory (GuestMemory.buffers): shared with the main thread. */
  readonly memory: GuestMemoryBuffers
  /** Batches as they came in `migration-pages` frames, in arrival order. */
  readonly batches: readonly Uint8Array[]
}

/** Commits the arriving VM's memory (GuestMemory.commitPages) before its first batch comes. */
export interface MemoryCommitTask {
  readonly memory: GuestMemoryBuffers
  readonly commit: true
}

/** `worker_ms`: the task's own time in the worker, for the bench's stage times. */
export type PageApplyResult =
  | { readonly ok: true; readonly batches: number; readonly counts: ApplyCounts; readonly worker_ms: number }
  /** `batches` went in before the one refused. */
  | { readonly ok: false; readonly batches: number; readonly code: HvlabCode; readonly message: string; readonly worker_ms: number }

const noCounts = (): ApplyCounts => ({ pages: 0, zero: 0, delta: 0, full: 0 })

function addCounts(a: ApplyCounts, b: ApplyCounts): void {
  a.pages += b.pages
  a.zero += b.zero
  a.delta += b.delta
  a.full += b.full
}

/** Applies the task's batches in order, up to the first refused one (returned, not thrown). */
export function applyPageTask(task: PageApplyTask): PageApplyResult {
  const started_ms = performance.now()
  const memory = GuestMemory.fromShared(task.memory)
  const counts = noCounts()
  for (let i = 0; i < task.batches.length; i++) {
    try {
      addCounts(counts, applyBatch(memory, task.batches[i] as Uint8Array))
    } catch (e) {
      if (e instanceof HvlabError)
        return { ok: false, batches: i, code: e.detail ?? e.code, message: e.message, worker_ms: performance.now() - started_ms }
      throw e
    }
  }
  return { ok: true, batches: task.batches.length, counts, worker_ms: performance.now() - started_ms }
}

/** Commits the task's memory; the result counts no pages. */
export function commitMemoryTask(task: MemoryCommitTask): PageApplyResult {
  const started_ms = performance.now()
  GuestMemory.fromShared(task.memory).commitPages()
  return { ok: true, batches: 0, counts: noCounts(), worker_ms: performance.now() - started_ms }
}

/** The main thread's side: the counts, or the refusal as the HvlabError it was. */
export function appliedCounts(result: PageApplyResult): ApplyCounts {
  if (!result.ok) throw new HvlabError(result.code, result.message)
  return result.counts
}
