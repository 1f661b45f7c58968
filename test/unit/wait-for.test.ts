/**
 * The waiting logic every long command shares (scripts/cli/wait-for.ts) against a fake
 * clock, and the typed steps the commands wait on: a role starting, stopping or moving,
 * a drain followed on the timeline, a remote-copy verb reaching the state it promises.
 */
import t from 'tap'
import { HvlabError } from '../../shared/errors.js'
import type { VmRoleRecord } from '../../shared/protocol/cluster-messages.js'
import type { RcGroupStatus } from '../../shared/protocol/storage-messages.js'
import { drainOutcome } from '../../scripts/cli/node-commands.js'
import { verbDone, verbNoop, verbOutcome } from '../../scripts/cli/rcopy-wait.js'
import type { SeenEvent } from '../../scripts/cli/timeline-cursor.js'
import { moveStep } from '../../scripts/cli/vm-move-commands.js'
import { startStep, stopStep } from '../../scripts/cli/vm-start-stop-commands.js'
import { type WaitClock, type WaitStep, done, failed, waitFor, waiting } from '../../scripts/cli/wait-for.js'

/** A clock that moves only when the wait sleeps. */
function fakeClock(): WaitClock & { slept: number[] } {
  let now = 0
  const slept: number[] = []
  return {
    slept,
    now: () => now,
    sleep: async (ms) => {
      slept.push(ms)
      now += ms
    },
  }
}

/** A poll that answers `steps` in turn (the last one again once they run out). */
function scripted<T>(steps: (WaitStep<T> | Error)[]): { poll: () => Promise<WaitStep<T>>; calls: () => number } {
  let i = 0
  return {
    poll: async () => {
      const s = steps[Math.min(i++, steps.length - 1)]!
      if (s instanceof Error) throw s
      return s
    },
    calls: () => i,
  }
}

const spec = { what: 'vm web1 to run', watch: '`hvlab vm list`', timeout_ms: 10_000 }

t.test('waits until done and returns its value, polling every poll_ms', async (t) => {
  const clock = fakeClock()
  const s = scripted<string>([waiting('pending'), waiting('starting on host-a1'), done('host-a1')])
  t.equal(await waitFor({ ...spec, poll: s.poll }, clock, 250), 'host-a1')
  t.equal(s.calls(), 3)
  t.same(clock.slept, [250, 250])
})

t.test('a failed step throws its error at once', async (t) => {
  const clock = fakeClock()
  const s = scripted<string>([waiting('starting'), failed('HVLAB_E_STATE', 'vm web1 failed to start: no host has memory')])
  await t.rejects(waitFor({ ...spec, poll: s.poll }, clock), {
    code: 'HVLAB_E_STATE',
    message: 'vm web1 failed to start: no host has memory',
  })
  t.equal(s.calls(), 2)
})

t.test('the timeout says what it waited for, the last state, and how to watch it', async (t) => {
  const clock = fakeClock()
  const s = scripted<string>([waiting('pending (no node has 4096 MiB free)')])
  await t.rejects(waitFor({ ...spec, timeout_ms: 1000, poll: s.poll }, clock, 300), {
    code: 'HVLAB_E_TIMEOUT',
    message:
      /^gave up waiting for vm web1 to run after 1 s: pending \(no node has 4096 MiB free\); it may still happen — `hvlab vm list` shows it/,
  })
  t.equal(clock.now(), 1000, 'the last sleep ends at the deadline')
  t.same(clock.slept, [300, 300, 300, 100])
})

t.test('no answer for a while is still waiting; any other error ends the wait', async (t) => {
  const clock = fakeClock()
  const flaky = scripted<number>([
    new HvlabError('HVLAB_E_TIMEOUT', 'host-a1 did not answer'),
    new HvlabError('HVLAB_E_NO_QUORUM', 'no coordinator'),
    done(7),
  ])
  t.equal(await waitFor({ ...spec, poll: flaky.poll }, clock), 7)
  const silent = scripted<number>([new HvlabError('HVLAB_E_CLOSED', 'closed')])
  await t.rejects(waitFor({ ...spec, timeout_ms: 500, poll: silent.poll }, fakeClock()), {
    code: 'HVLAB_E_TIMEOUT',
    message: /after 1 s: no answer \(closed\)/,
  })
  const refused = scripted<number>([new HvlabError('HVLAB_E_NOT_FOUND', 'no vm named web1')])
  await t.rejects(waitFor({ ...spec, poll: refused.poll }, fakeClock()), { code: 'HVLAB_E_NOT_FOUND' })
  t.equal(refused.calls(), 1)
})

const role = (over: Partial<VmRoleRecord>): { role: VmRoleRecord; current: boolean } => ({
  role: {
    name: 'web1',
    memory_mib: 64,
    preferred_owners: [],
    possible_owners: null,
    failback: { enabled: false, window: null },
    state: 'stopped',
    owner: null,
    last_owner: null,
    reason: '',
    ...over,
  } as VmRoleRecord,
  current: true,
})

t.test('a start is done when the role runs (its owner), fails when it is failed or stopped', async (t) => {
  t.same(startStep('web1', role({ state: 'running', owner: 'host-b1' })), done('host-b1'))
  t.match(startStep('web1', role({ state: 'starting', owner: 'host-b1', reason: 'started by operator' })), {
    kind: 'waiting',
    state: 'starting on host-b1 (started by operator)',
  })
  t.match(startStep('web1', role({ state: 'failed', reason: 'storage refused: group rc-web1 is syncing' })), {
    kind: 'failed',
    error: { code: 'HVLAB_E_STATE', message: /^vm web1 failed to start: storage refused: group rc-web1 is syncing/ },
  })
  t.match(startStep('web1', role({ state: 'stopped', reason: 'stopped by operator' })), { kind: 'failed' })
  t.match(startStep('web1', { ...role({ state: 'stopped' }), current: false }), { kind: 'waiting' }, 'a stale record decides nothing')
  t.same(stopStep(role({ state: 'stopped' })), done(true))
  t.match(stopStep(role({ state: 'stopping', owner: 'host-a1' })), { kind: 'waiting' })
})

t.test('a move is done on the destination; back on the source with no migration under way, it failed', async (t) => {
  t.same(moveStep('web1', 'host-a1', 'host-b1', role({ state: 'running', owner: 'host-b1' })), done(true))
  t.match(moveStep('web1', 'host-a1', 'host-b1', role({ state: 'running', owner: 'host-a1', migration: { to: 'host-b1', op: 3 } })), {
    kind: 'waiting',
  })
  t.match(
    moveStep(
      'web1',
      'host-a1',
      'host-b1',
      role({ state: 'running', owner: 'host-a1', reason: 'running on host-a1; migration to host-b1 failed: x' }),
    ),
    {
      kind: 'failed',
      error: { code: 'HVLAB_E_REFUSED', message: 'vm web1 stays on host-a1: running on host-a1; migration to host-b1 failed: x' },
    },
  )
})

const event = (seq: number, kind: string, details: Record<string, unknown>): SeenEvent =>
  ({ seq, kind, source: 'host-a1', details }) as SeenEvent

t.test('a drain ends with node.drained for that node, or fails with a role stuck on it', async (t) => {
  t.equal(drainOutcome('host-a1', [event(1, 'node.drained', { node: 'host-a2' })]), null, 'another node')
  t.same(
    drainOutcome('host-a1', [
      event(1, 'role.migrated', { role: 'web1', from: 'host-a1', to: 'host-a2' }),
      event(2, 'node.drained', { node: 'host-a1' }),
    ]),
    done(true),
  )
  t.match(
    drainOutcome('host-a1', [
      event(3, 'role.drain-stuck', { role: 'db1', node: 'host-a1', reason: 'cannot drain vm db1 off host-a1: no node has room' }),
    ]),
    {
      kind: 'failed',
      error: { message: /^the drain of host-a1 failed: cannot drain vm db1 off host-a1: no node has room; `hvlab node resume host-a1`/ },
    },
  )
})

const side = (over: Partial<RcGroupStatus>): RcGroupStatus =>
  ({
    group: 'rc1',
    partner: 'array-b',
    role: 'primary',
    mode: 'sync',
    started: true,
    link_up: true,
    bytes_behind: 0,
    bytes_resynced_total: 0,
    generation: 0,
    volumes: [{ volume: 'vol1', remote_volume: 'vol1', state: 'Synced', bytes_behind: 0 }],
    ...over,
  }) as RcGroupStatus

/** What the verb's reply showed on `array`. */
const at = (array: string, over: Partial<RcGroupStatus> = {}) => ({ array, status: side(over) })

t.test('a remote-copy verb waits for the state it promises', async (t) => {
  const views = (a: Partial<RcGroupStatus>, b: Partial<RcGroupStatus>) => [
    { array: 'array-a', groups: [side(a)] },
    { array: 'array-b', groups: [side({ partner: 'array-a', role: 'secondary', ...b })] },
  ]
  const syncing = { volumes: [{ volume: 'vol1', remote_volume: 'vol1', state: 'Syncing' as const, bytes_behind: 4096 }] }
  t.match(verbOutcome('start', 'rc1', at('array-a'), views(syncing, {})), {
    kind: 'waiting',
    state: /array-a primary, started, link up, volumes vol1 Syncing/,
  })
  t.match(verbOutcome('start', 'rc1', at('array-a'), views({}, {})), { kind: 'done' })
  t.match(verbOutcome('stop', 'rc1', at('array-a'), views({}, {})), { kind: 'waiting' })
  t.match(verbOutcome('stop', 'rc1', at('array-a'), views({ started: false }, {})), { kind: 'done' })
  t.match(verbOutcome('switchover', 'rc1', at('array-a'), views({}, {})), { kind: 'waiting' })
  t.match(verbOutcome('switchover', 'rc1', at('array-a'), views({ role: 'secondary-rev' }, { role: 'primary-rev' })), { kind: 'done' })
  t.match(verbOutcome('recover', 'rc1', at('array-a'), views({ role: 'primary-rev' }, { role: 'primary' })), { kind: 'waiting' })
  t.match(verbOutcome('recover', 'rc1', at('array-a'), views({ role: 'primary-rev' }, { role: 'secondary-rev' })), { kind: 'done' })
  t.match(
    verbOutcome('failover', 'rc1', at('array-b'), [{ array: 'array-b', groups: [side({ partner: 'array-a', role: 'primary-rev' })] }]),
    {
      kind: 'done',
    },
  )
  t.match(verbOutcome('start', 'rc1', at('array-a'), [{ array: 'array-a', groups: [] }]), { kind: 'waiting', state: /array-a: no answer/ })
})

t.test('rcopy sync waits for a cycle completed after the request; nothing to send is a no-op', async (t) => {
  const periodic = { mode: 'periodic' as const, last_sync_ms: 1000 }
  const syncing = { volumes: [{ volume: 'vol1', remote_volume: 'vol1', state: 'Syncing' as const, bytes_behind: 4096 }] }
  const accepted = at('array-a', { ...periodic, ...syncing, bytes_behind: 4096 })
  const views = (a: Partial<RcGroupStatus>) => [{ array: 'array-a', groups: [side({ ...periodic, ...a })] }]
  t.equal(verbNoop('sync', 'rc1', accepted), undefined, 'a cycle is running: wait')
  t.equal(verbNoop('sync', 'rc1', at('array-a', { ...periodic, bytes_behind: 4096 })), undefined, 'blocks behind: wait')
  t.equal(verbNoop('sync', 'rc1', at('array-a', periodic)), 'group rc1 is already Synced on array-a: nothing to send to array-b')
  t.equal(verbNoop('reverse', 'rc1', at('array-a', periodic)), undefined, 'reverse always swaps')
  t.match(verbOutcome('sync', 'rc1', accepted, views(syncing)), { kind: 'waiting', state: /vol1 Syncing/ })
  t.match(verbOutcome('sync', 'rc1', accepted, views({})), { kind: 'waiting' }, 'the last sync has not moved')
  t.match(verbOutcome('sync', 'rc1', accepted, views({ ...syncing, last_sync_ms: 2000 })), { kind: 'waiting' }, 'a next cycle runs')
  t.match(verbOutcome('sync', 'rc1', accepted, views({ last_sync_ms: 2000 })), { kind: 'done', value: { last_sync_ms: 2000 } })
  t.match(
    verbOutcome('sync', 'rc1', at('array-a', { ...syncing, mode: 'periodic' }), views({ last_sync_ms: 5 })),
    { kind: 'done' },
    'first sync ever',
  )
  t.match(verbOutcome('sync', 'rc1', accepted, views({ started: false })), {
    kind: 'failed',
    error: { code: 'HVLAB_E_STATE', message: /^the sync of group rc1 cannot complete: array-a is primary, stopped/ },
  })
  t.match(verbDone('sync', 'rc1', 'array-a', side({ bytes_behind: 8192 })), /^group rc1 synced: .*; 8192 bytes written since are behind$/)
})

t.test('rcopy reverse waits until both sides have swapped and this side has heard so', async (t) => {
  const accepted = at('array-a', { role: 'primary-rev', partner_role: 'secondary' })
  const views = (a: Partial<RcGroupStatus>, b: Partial<RcGroupStatus>) => [
    { array: 'array-a', groups: [side({ role: 'primary-rev', ...a })] },
    { array: 'array-b', groups: [side({ partner: 'array-a', role: 'secondary', ...b })] },
  ]
  t.match(verbOutcome('reverse', 'rc1', accepted, views({ partner_role: 'secondary' }, {})), {
    kind: 'waiting',
    state: /array-b secondary/,
  })
  t.match(verbOutcome('reverse', 'rc1', accepted, views({ partner_role: 'secondary' }, { role: 'secondary-rev' })), { kind: 'waiting' })
  t.match(verbOutcome('reverse', 'rc1', accepted, views({ partner_role: 'secondary-rev' }, { role: 'secondary-rev' })), { kind: 'done' })
  const back = at('array-a', { role: 'primary', partner_role: 'secondary-rev' })
  t.match(verbOutcome('reverse', 'rc1', back, views({ role: 'primary', partner_role: 'secondary' }, {})), { kind: 'done' }, 'reversed back')
  t.match(verbOutcome('reverse', 'rc1', accepted, views({ role: 'primary' }, {})), {
    kind: 'failed',
    error: { code: 'HVLAB_E_STATE', message: /^group rc1 changed roles again while reversing: array-a is primary/ },
  })
  t.equal(
    verbDone('reverse', 'rc1', 'array-a', side({ role: 'primary-rev' })),
    'group rc1 reversed: array-a is Primary-Rev, array-b Secondary-Rev',
  )
})
