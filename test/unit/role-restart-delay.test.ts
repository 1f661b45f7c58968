/**
 * WSFC's RestartDelay and RetryPeriodOnFailure in the role controller: a restart or
 * failover after a failure on a live node waits the restart delay (a start refused at
 * once cannot spend the failover budget in one step: the 30-minute soak saw 1000
 * failovers in 40 ms), a node that is down is failed over at once, and a role the policy
 * failed is placed again after the retry period.
 */
import t from 'tap'
import { DEFAULT_FAILOVER_POLICY, type FailoverPolicy } from '../../agent/cluster/failover-policy.js'
import { RoleController, type RoleEffect, type RoleInput } from '../../agent/cluster/role-controller.js'
import type { NodeView } from '../../agent/cluster/placement.js'
import { createVmRole } from '../../agent/cluster/vm-role.js'

type Start = Extract<RoleEffect, { kind: 'start-vm' }>
type Stop = Extract<RoleEffect, { kind: 'stop-vm' }>
const starts = (fx: RoleEffect[]) => fx.filter((f): f is Start => f.kind === 'start-vm')
const stops = (fx: RoleEffect[]) => fx.filter((f): f is Stop => f.kind === 'stop-vm')
const kinds = (fx: RoleEffect[]) => fx.flatMap((f) => (f.kind === 'emit' ? [f.event.kind] : []))

const DELAY_MS = DEFAULT_FAILOVER_POLICY.restart_delay_ms
const RETRY_MS = DEFAULT_FAILOVER_POLICY.retry_period_on_failure_ms
const NODES = ['host-a1', 'host-a2', 'host-b1', 'host-b2']

/** A controller on four Up nodes whose clock moves only when told (`at`). */
function lab(policy: Partial<FailoverPolicy> = {}) {
  const c = new RoleController({ policy: { ...DEFAULT_FAILOVER_POLICY, ...policy } })
  let now = 1_000
  const step = (input: RoleInput) => c.step(input, now)
  const statuses: Record<string, NodeView['status']> = Object.fromEntries(NODES.map((n) => [n, 'up']))
  let epoch = 1
  const membership = () =>
    step({ kind: 'membership', epoch: epoch++, nodes: NODES.map((name) => ({ name, memory_mib: 8192, status: statuses[name]! })) })
  membership()
  return {
    c,
    step,
    at: (ms: number) => (now = ms),
    now: () => now,
    setNode: (name: string, status: NodeView['status']) => {
      statuses[name] = status
      return membership()
    },
    running: (name: string, preferred_owners: string[]) => {
      step({ kind: 'command', command: { op: 'create', spec: { name, memory_mib: 64, preferred_owners } } })
      const [s] = starts(step({ kind: 'command', command: { op: 'start', name } }))
      step({ kind: 'vm-started', role: name, node: s!.node, op: s!.op })
      return s!
    },
  }
}

t.test('a start refused at once on every node is retried once per restart delay, not in a tight loop', async (t) => {
  const l = lab({ failovers_max: 1000 })
  l.step({ kind: 'command', command: { op: 'create', spec: { name: 'web1', memory_mib: 64, preferred_owners: ['host-b1', 'host-b2'] } } })
  let [s] = starts(l.step({ kind: 'command', command: { op: 'start', name: 'web1' } }))
  const sent: number[] = []
  // The role service feeds a timer input on its tick (250 ms here) once a held start is due.
  for (let now = 1_000; now <= 11_000 && s !== undefined; now += 250) {
    l.at(now)
    if (s.op !== (sent.at(-1) ?? -1)) {
      sent.push(s.op)
      const fx = l.step({
        kind: 'vm-start-failed',
        role: 'web1',
        node: s.node,
        op: s.op,
        reason: 'storage not writable here',
        storage_refused: true,
      })
      t.same(starts(fx), [], 'not started again in the step that refused it')
    }
    const due = l.c.nextHeldStartMs()
    if (due !== null && due <= now) s = starts(l.step({ kind: 'timer' }))[0] ?? s
  }
  t.ok(sent.length >= 10 && sent.length <= 10_000 / DELAY_MS + 1, `${sent.length} starts in 10 s: one per ${DELAY_MS} ms at most`)
  t.match(l.c.role('web1'), { state: 'pending' }, 'still being retried, not failed: 1000 failovers are far off')
  t.ok((l.c.role('web1')?.failures?.failovers_ms.length ?? 0) < 20, 'the failover budget is spent slowly')
})

t.test('a vm stopped for a failed health check is restarted no sooner than the delay after the failure', async (t) => {
  const l = lab()
  const s = l.running('web1', ['host-a1'])
  const [stop] = stops(l.step({ kind: 'vm-failed', role: 'web1', node: 'host-a1', op: s.op, gone: false, reason: 'IsAlive failed' }))
  t.match(stop, { node: 'host-a1' }, 'stopped first')
  l.at(l.now() + 100)
  const stopped = l.step({ kind: 'vm-stopped', role: 'web1', node: 'host-a1', op: stop!.op })
  t.same(starts(stopped), [], 'the stop came back within the delay: no start yet')
  t.match(l.c.role('web1'), { state: 'pending', owner: null })
  t.equal(l.c.nextHeldStartMs(), l.now() - 100 + DELAY_MS, 'held until the delay after the failure')
  l.at(l.now() + DELAY_MS)
  t.match(starts(l.step({ kind: 'timer' })), [{ node: 'host-a1' }], 'then restarted in place')
})

t.test('a role whose node is down fails over at once: no restart delay', async (t) => {
  const l = lab()
  l.running('web1', ['host-a1', 'host-a2'])
  const fx = l.setNode('host-a1', 'down')
  t.match(starts(fx), [{ role: 'web1', node: 'host-a2' }])
  t.ok(kinds(fx).includes('role.failed-over'))
  t.equal(l.c.nextHeldStartMs(), null)
})

t.test('a role held for its restart delay: a timer before it is due and an operator start change nothing', async (t) => {
  const l = lab()
  const s = l.running('web1', ['host-a1'])
  l.step({ kind: 'vm-failed', role: 'web1', node: 'host-a1', op: s.op, gone: true, reason: 'crashed' })
  t.same(starts(l.step({ kind: 'timer' })), [], 'not due yet')
  t.same(starts(l.step({ kind: 'command', command: { op: 'start', name: 'web1' } })), [], 'a pending role is already on its way to running')
  l.at(l.now() + DELAY_MS)
  t.equal(starts(l.step({ kind: 'timer' })).length, 1, 'started once the delay is over')
  t.equal(l.c.nextHeldStartMs(), null, 'nothing held any more')
})

t.test('a role the policy failed is placed again after its retry period (WSFC RetryPeriodOnFailure)', async (t) => {
  const l = lab({ failovers_max: 0 })
  l.running('web1', ['host-a1'])
  l.setNode('host-a1', 'down')
  t.match(l.c.role('web1'), { state: 'failed', owner: null })
  const retry_at = l.c.nextHeldStartMs()
  t.equal(retry_at, l.now() + RETRY_MS)
  l.at(retry_at! - 1)
  t.same(starts(l.step({ kind: 'timer' })), [], 'not before the period is over')
  l.at(retry_at!)
  const fx = l.step({ kind: 'timer' })
  t.match(starts(fx), [{ role: 'web1', node: 'host-a2' }], 'tried again where it may run')
  t.ok(kinds(fx).includes('role.starting'))
})

t.test('an operator stop of a failed role drops its retry', async (t) => {
  const l = lab({ failovers_max: 0 })
  l.running('web1', ['host-a1'])
  l.setNode('host-a1', 'down')
  l.step({ kind: 'command', command: { op: 'stop', name: 'web1' } })
  t.equal(l.c.role('web1')?.state, 'stopped')
  t.equal(l.c.nextHeldStartMs(), null)
  l.at(l.now() + RETRY_MS)
  t.same(starts(l.step({ kind: 'timer' })), [], 'stays stopped')
})

t.test('a restored failed role is tried again a retry period after the takeover', async (t) => {
  const c = new RoleController()
  const failed = {
    ...createVmRole({ name: 'web1', memory_mib: 64 }),
    state: 'failed' as const,
    owner: null,
    last_owner: 'host-a1',
    reason: 'x',
  }
  c.restore([failed], [], 3, {}, 50_000)
  t.equal(c.nextHeldStartMs(), 50_000 + RETRY_MS)
  const nodes = NODES.map((name) => ({ name, memory_mib: 8192, status: 'up' as const }))
  c.step({ kind: 'membership', epoch: 3, nodes }, 50_000)
  for (const node of NODES) c.step({ kind: 'inventory', node, vms: [], ops_at_request: c.opSnapshot() }, 50_000)
  c.step({ kind: 'sync-done' }, 50_000)
  t.same(starts(c.step({ kind: 'timer' }, 50_001)), [], 'not at once')
  t.equal(starts(c.step({ kind: 'timer' }, 50_000 + RETRY_MS)).length, 1, 'after the period')
})
