/**
 * The in-doubt settlement machine (agent/migration/in-doubt-settlement.ts), case by case:
 * the destination's answer decides; no answer means ask again; an absent destination is
 * waited out for roles_free_after_ms within one view epoch while this host holds a lease;
 * stale answers and inputs after the end change nothing. Then the shell that drives it, on
 * a manual clock with a fake mesh.
 */
import t from 'tap'
import { InDoubtSettlement, type InDoubtEffect } from '../../agent/migration/in-doubt-settlement.js'
import { IN_DOUBT_ASK_INTERVAL_MS, settleInDoubt } from '../../agent/migration/in-doubt-shell.js'
import type { VmAgent } from '../../agent/cluster/vm-agent.js'
import type { VmInstance } from '../../agent/vm/vm-instance.js'
import { ManualClock } from '../../shared/clock.js'
import type { LabProcess } from '../../shared/lab-process.js'

const CONFIG = {
  host: 'host-a1',
  vm: 'web1',
  destination: 'host-b1',
  op: 7,
  ask_interval_ms: 1000,
  ask_timeout_ms: 2000,
  roles_free_after_ms: 5000,
}
const kinds = (effects: InDoubtEffect[]): string[] => effects.map((e) => e.kind)

t.test('the destination runs it as op 7: release here', async (t) => {
  const m = new InDoubtSettlement(CONFIG)
  t.same(m.step({ kind: 'start' }, 0), [{ kind: 'ask', ask: 1, timeout_ms: 2000 }])
  const out = m.step({ kind: 'inventory', ask: 1, vms: [{ role: 'web1', op: 7 }] }, 10)
  t.same(out, [
    { kind: 'release' },
    { kind: 'emit', event: { kind: 'vm.migration-settled', details: { vm: 'web1', to: 'host-b1', runs_on: 'host-b1' } } },
  ])
  t.equal(m.stage, 'released')
  t.same(m.step({ kind: 'timer' }, 20), [], 'settled: nothing more')
})

t.test('it does not run it (or runs another incarnation): resume here', async (t) => {
  for (const vms of [[], [{ role: 'web1', op: 6 }], [{ role: 'web2', op: 7 }]]) {
    const m = new InDoubtSettlement(CONFIG)
    m.step({ kind: 'start' }, 0)
    const out = m.step({ kind: 'inventory', ask: 1, vms }, 10)
    t.same(kinds(out), ['resume', 'emit'], JSON.stringify(vms))
    t.match(out[1], { event: { details: { runs_on: 'host-a1' } } })
    t.equal(m.stage, 'resumed')
  }
})

t.test('no answer: ask again an interval later; a late answer to an old question is ignored', async (t) => {
  const m = new InDoubtSettlement(CONFIG)
  m.step({ kind: 'start' }, 0)
  m.step({ kind: 'membership', member: true, epoch: 3, leased: true }, 2000)
  t.same(m.step({ kind: 'ask-failed', ask: 1 }, 2000), [{ kind: 'set-timer', at_ms: 3000 }])
  t.same(m.step({ kind: 'timer' }, 3000), [{ kind: 'ask', ask: 2, timeout_ms: 2000 }])
  t.same(m.step({ kind: 'inventory', ask: 1, vms: [] }, 3100), [], 'the answer to question 1 came after it failed')
  t.same(m.step({ kind: 'ask-failed', ask: 1 }, 3100), [], 'and so does a second failure of it')
  t.same(kinds(m.step({ kind: 'inventory', ask: 2, vms: [{ role: 'web1', op: 7 }] }, 3200)), ['release', 'emit'])
})

t.test('the destination out of the view for roles_free_after_ms: resume here, after a failed ask only', async (t) => {
  const m = new InDoubtSettlement(CONFIG)
  m.step({ kind: 'start' }, 0)
  m.step({ kind: 'membership', member: false, epoch: 3, leased: true }, 1000)
  t.same(m.step({ kind: 'ask-failed', ask: 1 }, 2000), [{ kind: 'set-timer', at_ms: 3000 }], 'out for 1 s only')
  m.step({ kind: 'timer' }, 3000)
  m.step({ kind: 'membership', member: false, epoch: 3, leased: true }, 6500)
  t.same(m.step({ kind: 'membership', member: false, epoch: 3, leased: true }, 6500), [], 'an observation alone decides nothing')
  const out = m.step({ kind: 'ask-failed', ask: 2 }, 6500)
  t.same(out, [
    { kind: 'resume' },
    {
      kind: 'emit',
      event: {
        kind: 'vm.migration-settled',
        details: { vm: 'web1', to: 'host-b1', runs_on: 'host-a1', reason: 'host-b1 left the cluster and has stopped its vms' },
      },
    },
  ])
})

t.test('back in the view resets the count', async (t) => {
  const m = new InDoubtSettlement(CONFIG)
  m.step({ kind: 'start' }, 0)
  m.step({ kind: 'membership', member: false, epoch: 3, leased: true }, 0)
  m.step({ kind: 'membership', member: true, epoch: 3, leased: true }, 4000)
  m.step({ kind: 'membership', member: false, epoch: 3, leased: true }, 4500)
  t.same(kinds(m.step({ kind: 'ask-failed', ask: 1 }, 6000)), ['set-timer'], 'out since 4.5 s only')
  m.step({ kind: 'timer' }, 7000)
  t.same(kinds(m.step({ kind: 'ask-failed', ask: 2 }, 9500)), ['resume', 'emit'])
})

t.test('a timer while asking, or a second start, does not ask twice', async (t) => {
  const m = new InDoubtSettlement(CONFIG)
  m.step({ kind: 'start' }, 0)
  t.same(m.step({ kind: 'start' }, 1), [])
  t.same(m.step({ kind: 'timer' }, 2), [])
  t.equal(m.stage, 'asking')
})

t.test('the absence counts within one view epoch, with a lease: a view change or no lease starts it again', async (t) => {
  const out = (epoch: number, leased = true) => ({ kind: 'membership', member: false, epoch, leased }) as const
  const m = new InDoubtSettlement(CONFIG)
  m.step({ kind: 'start' }, 0)
  m.step(out(3), 0)
  m.step(out(5), 2000) // a view this host may not have seen came between: count from here
  t.same(kinds(m.step({ kind: 'ask-failed', ask: 1 }, 6000)), ['set-timer'], 'out of epoch 5 for 4 s, of epoch 3 for 6 s')
  m.step({ kind: 'timer' }, 7000)
  m.step(out(5, false), 7000) // cut off: its view may be stale
  m.step(out(5), 7500)
  t.same(kinds(m.step({ kind: 'ask-failed', ask: 2 }, 9500)), ['set-timer'], 'counting again since the lease came back')
  m.step({ kind: 'timer' }, 10_500)
  m.step(out(5), 12_500)
  t.same(kinds(m.step({ kind: 'ask-failed', ask: 3 }, 12_500)), ['resume', 'emit'], '5 s out of epoch 5 with a lease')
})

// ---- the shell (in-doubt-shell.ts) on a manual clock, with a fake mesh ---------------------

interface FakeConnection {
  isOpen: boolean
  request(m: unknown, o: { timeout_ms: number }): Promise<{ message: unknown }>
}

function fakeHost(conn: FakeConnection | undefined, member: () => boolean) {
  const clock = new ManualClock(0)
  const events: [string, unknown][] = []
  const done: string[] = []
  const p = {
    name: 'host-a1',
    clock,
    log: { child: () => ({ warn: () => undefined }) },
    mesh: { connection: () => conn },
    emitEvent: (kind: string, details: unknown) => events.push([kind, details]),
  } as unknown as LabProcess
  const deps = {
    agent: { releaseVm: (role: string, to: string) => done.push(`release ${role} to ${to}`) } as unknown as VmAgent,
    isMember: () => member(),
    viewEpoch: () => 4,
    holdsLease: () => true,
    roles_free_after_ms: 5000,
  }
  const vm = { resume: () => done.push('resume') } as unknown as VmInstance
  return { clock, events, done, settle: () => settleInDoubt(p, deps, { vm, role: 'web1', to: 'host-b1', op: 7 }) }
}

const flush = () => new Promise((r) => setImmediate(r))

t.test('shell: asks over the mesh and releases when the destination runs it', async (t) => {
  const asked: unknown[] = []
  const conn = {
    isOpen: true,
    request: async (m: unknown) => (
      asked.push(m),
      { message: { t: 'vm-inventory-reply', from: 'host-b1', vms: [{ role: 'web1', op: 7 }] } }
    ),
  }
  const h = fakeHost(conn, () => true)
  t.equal(await h.settle(), true)
  t.same(asked, [{ t: 'vm-inventory-request', from: 'host-a1' }])
  t.same(h.done, ['release web1 to host-b1'])
  t.same(h.events, [['vm.migration-settled', { vm: 'web1', to: 'host-b1', runs_on: 'host-b1' }]])
})

t.test(
  'shell: no connection, destination out of the view: asks every interval on the clock, resumes after roles_free_after_ms',
  async (t) => {
    const h = fakeHost(undefined, () => false)
    let result: boolean | undefined
    void h.settle().then((r) => (result = r))
    for (let i = 0; i < 10 && result === undefined; i++) {
      await flush()
      h.clock.advance(IN_DOUBT_ASK_INTERVAL_MS)
    }
    await flush()
    t.equal(result, false)
    t.same(h.done, ['resume'])
    t.match(h.events, [['vm.migration-settled', { runs_on: 'host-a1', reason: 'host-b1 left the cluster and has stopped its vms' }]])
    t.ok(h.clock.now() >= 5000 && h.clock.now() <= 7000, `settled at ${h.clock.now()} ms`)
  },
)
