/**
 * The operator-wait loop (agent/cluster/operator-wait.ts) on a ManualClock: an operator
 * request runs here when this host runs the roles, else on the coordinator, and through
 * a view change it tries again every OPERATOR_RETRY_MS until OPERATOR_WAIT_MS have
 * passed; a forwarded request is tried once; a coordinator's refusal comes back as this
 * host's own.
 */
import t from 'tap'
import { ManualClock } from '../../shared/clock.js'
import { HvlabError } from '../../shared/errors.js'
import { OPERATOR_RETRY_MS, onCoordinator, type OperatorWaitDeps } from '../../agent/cluster/operator-wait.js'
import { OPERATOR_WAIT_MS } from '../../agent/cluster/role-request-timeouts.js'

/** A host `host-a1` whose view and role state the test sets. */
function host(clock: ManualClock) {
  const state = { coordinator: 'host-b1', epoch: 3, runsRoles: false }
  const deps: OperatorWaitDeps = {
    name: 'host-a1',
    clock,
    view: () => ({ coordinator: state.coordinator, epoch: state.epoch }),
    runsRoles: () => state.runsRoles,
  }
  return { state, deps }
}

/** Lets every promise that can settle now settle. */
const settle = (): Promise<void> => new Promise((r) => setImmediate(r))

/** Watches a promise without awaiting it. */
function watch<T>(p: Promise<T>) {
  const out: { value?: T; error?: unknown; done: boolean } = { done: false }
  p.then(
    (v) => Object.assign(out, { value: v, done: true }),
    (e: unknown) => Object.assign(out, { error: e, done: true }),
  )
  return out
}

const closed = () => new HvlabError('HVLAB_E_CLOSED', 'host-a1 has no connection to host-b1 now')

t.test('runs here when this host runs the roles, with no timer', async (t) => {
  const clock = new ManualClock(1000)
  const { state, deps } = host(clock)
  state.runsRoles = true
  const asked: string[] = []
  const r = await onCoordinator(
    deps,
    () => 'here',
    async (c) => (asked.push(c), 'there'),
    false,
  )
  t.equal(r, 'here')
  t.same(asked, [])
  t.equal(clock.pendingTimers(), 0)
})

t.test('forwards to the coordinator and tries again on the clock through a lost connection', async (t) => {
  const clock = new ManualClock(1000)
  const { deps } = host(clock)
  const asked: number[] = []
  const there = async (c: string): Promise<string> => {
    asked.push(clock.now())
    if (asked.length < 3) throw closed()
    return `answered by ${c}`
  }
  const out = watch(onCoordinator(deps, () => 'here', there, false))
  await settle()
  t.same(asked, [1000], 'asked once at once')
  t.equal(clock.pendingTimers(), 1, 'then waits on the clock')
  clock.advance(OPERATOR_RETRY_MS - 1)
  await settle()
  t.same(asked, [1000], 'not before the retry interval')
  clock.advance(1)
  await settle()
  t.same(asked, [1000, 1000 + OPERATOR_RETRY_MS])
  clock.advance(OPERATOR_RETRY_MS)
  await settle()
  t.same(out, { value: 'answered by host-b1', done: true })
  t.same(asked, [1000, 1000 + OPERATOR_RETRY_MS, 1000 + 2 * OPERATOR_RETRY_MS])
  t.equal(clock.pendingTimers(), 0)
})

t.test('waits through a view change without a coordinator, then runs here once this host runs the roles', async (t) => {
  const clock = new ManualClock(0)
  const { state, deps } = host(clock)
  state.coordinator = 'host-a1' // this host is the coordinator but its RoleService does not run yet
  const out = watch(
    onCoordinator(
      deps,
      () => 'here',
      async () => 'there',
      false,
    ),
  )
  await settle()
  clock.advance(OPERATOR_RETRY_MS * 4)
  await settle()
  t.equal(out.done, false, 'still waiting')
  state.runsRoles = true
  clock.advance(OPERATOR_RETRY_MS)
  await settle()
  t.same(out, { value: 'here', done: true })
})

t.test('gives up after OPERATOR_WAIT_MS with the no-quorum refusal', async (t) => {
  const clock = new ManualClock(0)
  const { state, deps } = host(clock)
  state.epoch = 0 // never had a view: no coordinator to ask
  const out = watch(
    onCoordinator(
      deps,
      () => 'here',
      async () => 'there',
      false,
    ),
  )
  for (let waited = 0; waited < OPERATOR_WAIT_MS; waited += OPERATOR_RETRY_MS) {
    await settle()
    t.equal(out.done, false)
    clock.advance(OPERATOR_RETRY_MS)
  }
  await settle()
  t.equal(out.done, true, `done once ${OPERATOR_WAIT_MS} ms have passed`)
  t.ok(HvlabError.has(out.error, 'HVLAB_E_NO_QUORUM'))
  t.match((out.error as Error).message, /no coordinator with quorum right now \(host-a1 sees epoch 0\)/)
  t.equal(clock.pendingTimers(), 0)
})

t.test('a forwarded request is tried once: no quorum here is refused at once', async (t) => {
  const clock = new ManualClock(0)
  const { deps } = host(clock)
  const asked: string[] = []
  const err = await onCoordinator(
    deps,
    () => 'here',
    async (c) => (asked.push(c), 'there'),
    true,
  ).catch((e: unknown) => e)
  t.ok(HvlabError.has(err, 'HVLAB_E_NO_QUORUM'))
  t.same(asked, [], 'a forwarded request is never forwarded again')
  t.equal(clock.pendingTimers(), 0)
})

t.test("a coordinator's refusal comes back at once as this host's own", async (t) => {
  const clock = new ManualClock(0)
  const { deps } = host(clock)
  const refusal = new HvlabError('HVLAB_E_STATE', 'cannot create vm web1: a vm with that name exists', { origin: 'host-b1' })
  const err = await onCoordinator(
    deps,
    () => 'here',
    () => Promise.reject(refusal),
    false,
  ).catch((e: unknown) => e)
  t.ok(HvlabError.has(err, 'HVLAB_E_STATE'))
  t.equal((err as HvlabError).origin, undefined, 'no origin: the operator asked this host')
  t.equal((err as HvlabError).message, refusal.message)
  t.equal(clock.pendingTimers(), 0, 'not retried')
})
