/**
 * Faults in a guest's memory on a worker thread at nice 19, before the guest workload
 * writes it from the host's main thread.
 *
 * Guest memory is allocated lazily (zero pages cost nothing until written). The first
 * write to each page then costs a page fault: measured on the project's 2-core machine,
 * one second of a 100 MiB/s workload on a fresh 256 MiB guest took about 700 ms of CPU
 * (user 367 ms, system 351 ms), the same writes on touched memory 20 ms. On the main thread,
 * next to the heartbeats and lease renewals, that is what made a host that had just
 * started to load a VM miss its lease under contention (issue 12). So once a VM gets a
 * load, a worker touches every page first: an atomic add of 0 to one word per page, which
 * faults the page in for writing and changes no byte, even while the guest writes it.
 *
 * The worker is an inline script (no bundle of its own); it lowers its own priority to
 * nice 19 (Linux, as agent/migration/worker-priority.ts does) and ends when done (a
 * second or two for 1 GiB on a loaded machine). Memory a
 * worker already faulted in is remembered, so a guest is faulted in once; so is a VM that
 * arrived by live migration, whose memory the destination committed in the setup
 * (GuestMemory.commitPages, the same touch, in its apply worker: `notePrefaulted`).
 */
import { Worker } from 'node:worker_threads'
import type { GuestMemory } from './guest-memory.js'
import { PAGE_SIZE_BYTES } from '../../shared/protocol/page-size.js'

const PREFAULT_WORKER_SOURCE = `
const { workerData } = require('node:worker_threads')
try {
  const tid = Number(require('node:fs').readlinkSync('/proc/thread-self').split('/').pop())
  if (Number.isInteger(tid) && tid > 0) require('node:os').setPriority(tid, 19)
} catch {}
const words = new Int32Array(workerData.memory)
for (let w = 0; w < words.length; w += workerData.page_words) Atomics.add(words, w, 0)
`

const prefaulted = new WeakSet<SharedArrayBuffer>()

/** `memory` is faulted in already (committed by a migration's destination): prefaultGuestMemory skips it. */
export function notePrefaulted(memory: GuestMemory): void {
  prefaulted.add(memory.buffers.memory)
}

/**
 * Starts faulting in `memory` on a worker thread (once per guest memory). Resolves when it is
 * done (true) or could not run (false); a failure only means the guest's first writes are slower.
 */
export function prefaultGuestMemory(memory: GuestMemory): Promise<boolean> {
  const shared = memory.buffers.memory
  if (prefaulted.has(shared)) return Promise.resolve(true)
  prefaulted.add(shared)
  return new Promise((resolve) => {
    try {
      const worker = new Worker(PREFAULT_WORKER_SOURCE, {
        eval: true,
        workerData: { memory: shared, page_words: PAGE_SIZE_BYTES / 4 },
      })
      worker.once('error', () => resolve(false))
      worker.once('exit', (code) => resolve(code === 0))
    } catch {
      resolve(false)
    }
  })
}
