/**
 * Faulting in guest memory on a worker (agent/vm/guest-memory-prefault.ts) changes no byte
 * and marks no page dirty, also for pages the guest wrote before; a guest is faulted in once.
 */
import { randomFillSync } from 'node:crypto'
import t from 'tap'
import { GuestMemory } from '../../agent/vm/guest-memory.js'
import { prefaultGuestMemory } from '../../agent/vm/guest-memory-prefault.js'

t.test('faults memory in without changing it or its dirty pages', async (t) => {
  const memory = GuestMemory.create(512)
  const data = randomFillSync(new Uint8Array(3 * 4096 + 100))
  memory.write(4096 * 7 + 10, data)
  const sha_before = memory.sha256()
  const dirty_before = [...memory.takeDirty()]
  memory.write(4096 * 100, data.subarray(0, 64)) // dirty again: the worker must leave the bitmap alone
  const dirty_now = memory.dirtyCount()
  const sha_now = memory.sha256()
  t.equal(await prefaultGuestMemory(memory), true, 'the worker ran to the end')
  t.equal(memory.sha256(), sha_now, 'no byte changed')
  t.not(sha_now, sha_before, '(the second write did change memory)')
  t.equal(memory.dirtyCount(), dirty_now, 'no page was marked dirty')
  t.same(dirty_before, [7, 8, 9, 10], 'the first write dirtied the pages it spans')
  t.equal(await prefaultGuestMemory(memory), true, 'a second call for the same memory is a no-op')
})
