/**
 * The data plane's worker threads (page diff on the source, page apply on the destination)
 * run at the lowest CPU priority, nice 19. They are CPU-bound for a whole migration; at the
 * main threads' priority they take an equal share of a core from every event loop on the
 * machine, this host's heartbeats and lease renewals and those of every other host and lab.
 * On a loaded 2-core machine a main thread then waited on the run queue, runnable, for
 * 1-2 s at a time (issue 12): long enough to lose its lease. At nice 19 a waking main
 * thread preempts a worker at once; the workers use what CPU is left, so a migration slows
 * down under contention instead of the cluster losing a member.
 *
 * Linux: setpriority() on a thread id changes that thread alone (/proc/thread-self names
 * it). Elsewhere, or if the kernel refuses, the worker keeps its priority (reported, not
 * thrown: the migration still works, only less politely).
 */
import { readlinkSync } from 'node:fs'
import { getPriority, setPriority } from 'node:os'
import { isMainThread } from 'node:worker_threads'
import { HvlabError } from '../../shared/errors.js'

/** The nice value of the data plane's workers: the lowest priority there is. */
export const DATA_PLANE_WORKER_NICE = 19

/** This thread's kernel id (Linux), or null where /proc/thread-self does not exist. */
export function currentThreadId(): number | null {
  try {
    const tid = Number(readlinkSync('/proc/thread-self').split('/').pop())
    return Number.isInteger(tid) && tid > 0 ? tid : null
  } catch {
    return null
  }
}

/**
 * Lowers the calling worker thread to `nice`. Returns the nice it runs at afterwards, or
 * null when it could not be changed. Never on the main thread: on Linux the main thread's
 * id is the process id, and lowering it would lower the event loop itself.
 */
export function lowerWorkerPriority(nice: number = DATA_PLANE_WORKER_NICE): number | null {
  if (isMainThread) throw new HvlabError('HVLAB_E_INTERNAL', 'lowerWorkerPriority() is for worker threads, not the main thread')
  const tid = currentThreadId()
  if (tid === null) return null
  try {
    setPriority(tid, nice)
    return getPriority(tid)
  } catch {
    return null
  }
}
