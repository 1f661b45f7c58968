/**
 * The data plane's workers run at nice 19 (agent/migration/worker-priority.ts) and the main
 * thread keeps its priority: read back from the kernel (/proc/self/task/TID/stat) after a
 * page diff and a page apply ran in their pools.
 */
import { readdirSync, readFileSync } from 'node:fs'
import { getPriority } from 'node:os'
import t from 'tap'
import { GuestMemory } from '../../agent/vm/guest-memory.js'
import { PageApplyPool } from '../../agent/migration/page-apply-pool.js'
import { PageBatchBuilder } from '../../agent/migration/page-batch.js'
import { PageDiffPool } from '../../agent/migration/page-diff-pool.js'
import { DATA_PLANE_WORKER_NICE, currentThreadId, lowerWorkerPriority } from '../../agent/migration/worker-priority.js'

const linux = process.platform === 'linux'

/** Each thread of this process: its id and nice (field 19 of /proc/self/task/TID/stat). */
function threadNices(): Map<number, number> {
  const nices = new Map<number, number>()
  for (const tid of readdirSync('/proc/self/task')) {
    const stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8')
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ') // after "pid (comm) ": field 3 onwards
    nices.set(Number(tid), Number(fields[16]))
  }
  return nices
}

t.test('on the main thread: its id is the process id, and lowering it is refused', async (t) => {
  if (linux) t.equal(currentThreadId(), process.pid, 'the main thread id is the pid')
  t.throws(() => lowerWorkerPriority(), { code: 'HVLAB_E_INTERNAL' }, 'the event loop is never lowered')
  t.equal(getPriority(process.pid), getPriority(), 'the main thread priority is untouched')
})

t.test('the page diff and page apply workers run at nice 19, the main thread does not', { skip: !linux && 'Linux only' }, async (t) => {
  const before = threadNices()
  const diff_pool = new PageDiffPool({ threads: 1 })
  const apply_pool = new PageApplyPool({ threads: 1, idle_timeout_ms: 5_000 })
  t.teardown(() => Promise.all([diff_pool.close(), apply_pool.close()]))
  const memory = GuestMemory.create(4)
  await diff_pool.diff(memory.buffers.memory, new SharedArrayBuffer(memory.byte_length), Uint32Array.from([0, 1, 2, 3]))
  await apply_pool.apply(GuestMemory.create(1).buffers, [new PageBatchBuilder(1).finish()])
  const after = threadNices()
  const lowered = [...after].filter(([tid, nice]) => !before.has(tid) && nice === DATA_PLANE_WORKER_NICE)
  t.ok(lowered.length >= 2, `a new thread at nice ${DATA_PLANE_WORKER_NICE} per pool (${lowered.length} found)`)
  t.equal(after.get(process.pid), before.get(process.pid), 'the main thread keeps its nice')
})
