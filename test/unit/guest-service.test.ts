import t from 'tap'
import { ManualClock } from '../../shared/clock.js'
import { GuestMemory } from '../../agent/vm/guest-memory.js'
import { PAGE_SIZE_BYTES } from '../../shared/protocol/page-size.js'
import { GuestService, bumpGuestCounter, readGuestCounter, type GuestVmView } from '../../agent/vm/guest-service.js'
import type { GuestReply } from '../../shared/protocol/guest-messages.js'

interface FakeVm extends GuestVmView {
  state: 'running' | 'stopped'
  paused: boolean
}

const setup = (hold_ms = 1000, held_max = 100) => {
  const clock = new ManualClock(0)
  const vms = new Map<string, FakeVm>()
  vms.set('web1', { state: 'running', paused: false, memory: GuestMemory.create(16) })
  const svc = new GuestService({ host: 'host-a1', clock, find: (n) => vms.get(n), hold_ms, held_max })
  return { clock, vms, svc, vm: vms.get('web1')! }
}
const ping = (seq: number, vm = 'web1') => ({ t: 'guest-ping' as const, vm, seq, client: 'c1' })

t.test('a running guest answers with seq and a value that rises by one per reply, kept in its memory', async (t) => {
  const { svc, vm } = setup()
  const a = await svc.ping(ping(0))
  const b = await svc.ping(ping(1))
  t.same(a, { t: 'guest-pong', vm: 'web1', seq: 0, value: 1, host: 'host-a1' })
  t.same(b, { t: 'guest-pong', vm: 'web1', seq: 1, value: 2, host: 'host-a1' })
  t.equal(readGuestCounter(vm.memory), 2, 'the counter is in guest memory')
  t.ok(vm.memory.isDirty(vm.memory.page_count - 1), 'the reply dirtied the last page (so a migration carries it)')
  // memory copied elsewhere (what a migration does) continues the count
  const copy = GuestMemory.create(16)
  copy.write(0, vm.memory.read(0, 16 * PAGE_SIZE_BYTES))
  t.equal(bumpGuestCounter(copy), 3, 'the count continues on a copy of the memory')
})

t.test('the counter survives a workload write over one of its copies', async (t) => {
  const mem = GuestMemory.create(4)
  for (let i = 0; i < 41; i++) bumpGuestCounter(mem)
  const last = (mem.page_count - 1) * PAGE_SIZE_BYTES
  for (const off of [0, 1024, 2048]) {
    const m2 = GuestMemory.create(4)
    m2.write(0, mem.read(0, 4 * PAGE_SIZE_BYTES))
    m2.write(last + Math.max(0, off - 30), new Uint8Array(64).fill(0xab)) // a 64-byte write across one copy
    t.equal(readGuestCounter(m2), 41, `a write over the copy at ${off} does not change the value`)
    t.equal(bumpGuestCounter(m2), 42, 'and the next reply repairs it')
  }
})

t.test('a VM that is not here is answered not-here at once', async (t) => {
  const { svc, vms } = setup()
  t.same(await svc.ping(ping(5, 'nosuch')), { t: 'guest-unavailable', vm: 'nosuch', seq: 5, host: 'host-a1', reason: 'not-here' })
  vms.get('web1')!.state = 'stopped'
  t.equal(((await svc.ping(ping(6))) as { reason: string }).reason, 'not-here', 'a stopped VM does not answer')
})

t.test('a paused guest holds pings and answers them in order when it resumes', async (t) => {
  const { svc, vm, clock } = setup()
  vm.paused = true
  const got: GuestReply[] = []
  const ps = [0, 1, 2].map((s) => svc.ping(ping(s)).then((r) => got.push(r)))
  clock.advance(50)
  await Promise.resolve()
  t.equal(got.length, 0, 'nothing answered while paused')
  t.equal(svc.heldCount, 3)
  vm.paused = false
  clock.advance(5)
  await Promise.all(ps)
  t.same(
    got.map((r) => [r.seq, (r as { value: number }).value]),
    [
      [0, 1],
      [1, 2],
      [2, 3],
    ],
    'answered in order once resumed',
  )
  t.equal(svc.heldCount, 0)
})

t.test('held pings of a guest that leaves are answered not-here (the switch forwards them)', async (t) => {
  const { svc, vm, clock, vms } = setup()
  vm.paused = true
  const p = svc.ping(ping(9))
  clock.advance(20)
  vms.delete('web1')
  clock.advance(5)
  t.equal(((await p) as { reason: string }).reason, 'not-here')
})

t.test('the hold is bounded in time and in number', async (t) => {
  const { svc, vm, clock } = setup(100, 2)
  vm.paused = true
  const a = svc.ping(ping(0))
  const b = svc.ping(ping(1))
  t.equal(((await svc.ping(ping(2))) as { reason: string }).reason, 'paused-too-long', 'beyond held_max: answered at once')
  clock.advance(99)
  t.equal(svc.heldCount, 2, 'still held just before the hold runs out')
  clock.advance(5)
  t.equal(((await a) as { reason: string }).reason, 'paused-too-long')
  t.equal(((await b) as { reason: string }).reason, 'paused-too-long')
  t.equal(readGuestCounter(vm.memory), 0, 'a paused guest never touched its memory')
})
