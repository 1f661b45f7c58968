import t from 'tap'
import {
  DEFAULT_FAILOVER_POLICY,
  EMPTY_HISTORY,
  checkFailoverPolicy,
  decideOnFailure,
  failoversAllowed,
  inFailbackWindow,
  recordDecision,
  rolePolicy,
  scaledFailoverPolicy,
  type FailureHistory,
} from '../../agent/cluster/failover-policy.js'

const policy = DEFAULT_FAILOVER_POLICY
const MIN = 60_000
const HOUR = 60 * MIN

/** Fails the role on `node` at each time and applies the decisions; returns their actions. */
function failAt(times: number[], node: string, node_count: number, history: FailureHistory = EMPTY_HISTORY) {
  const actions: string[] = []
  for (const at of times) {
    const d = decideOnFailure(history, policy, { node, node_count, node_lost: false }, at)
    history = recordDecision(history, policy, d, at)
    actions.push(d.action)
  }
  return { actions, history }
}

t.test('3 restarts on the same node within 15 min, then failover', async (t) => {
  const { actions } = failAt([0, 1000, 2000, 3000], 'h1', 4)
  t.same(actions, ['restart', 'restart', 'restart', 'failover'])
})

t.test('restart window slides: a restart exactly 15 min old no longer counts', async (t) => {
  const { actions, history } = failAt([0, 1000, 2000], 'h1', 4)
  t.same(actions, ['restart', 'restart', 'restart'])
  const justInside = decideOnFailure(history, policy, { node: 'h1', node_count: 4, node_lost: false }, 15 * MIN - 1)
  t.equal(justInside.action, 'failover', 'all three still inside the window 1 ms before the first expires')
  const atEdge = decideOnFailure(history, policy, { node: 'h1', node_count: 4, node_lost: false }, 15 * MIN)
  t.equal(atEdge.action, 'restart', 'the first restart left the window')
  t.match(atEdge, { node: 'h1', reason: /restart 3 of 3 on h1/ })
})

t.test('restarts are counted per node', async (t) => {
  const { history } = failAt([0, 1, 2], 'h1', 4)
  t.equal(decideOnFailure(history, policy, { node: 'h2', node_count: 4, node_lost: false }, 3).action, 'restart')
})

t.test('at most nodes−1 failovers in 6 h, then the role stays failed', async (t) => {
  let history: FailureHistory = EMPTY_HISTORY
  const actions: string[] = []
  for (let i = 0; i < 4; i++) {
    const d = decideOnFailure(history, policy, { node: `h${i}`, node_count: 4, node_lost: true }, i * HOUR)
    history = recordDecision(history, policy, d, i * HOUR)
    actions.push(d.action)
  }
  t.same(actions, ['failover', 'failover', 'failover', 'fail'])
  const last = decideOnFailure(history, policy, { node: 'h0', node_count: 4, node_lost: true }, 6 * HOUR - 1)
  t.equal(last.action, 'fail')
  t.match(last.reason, /already failed over 3 times within 6 h \(limit 3\); start it again by hand/)
  t.equal(
    decideOnFailure(history, policy, { node: 'h0', node_count: 4, node_lost: true }, 6 * HOUR).action,
    'failover',
    'the first failover left the window',
  )
})

t.test('a lost node is never restarted in place; one-node cluster cannot fail over', async (t) => {
  t.equal(decideOnFailure(EMPTY_HISTORY, policy, { node: 'h1', node_count: 2, node_lost: true }, 0).action, 'failover')
  t.equal(decideOnFailure(EMPTY_HISTORY, policy, { node: 'h1', node_count: 1, node_lost: true }, 0).action, 'fail')
  t.equal(failoversAllowed(policy, 5), 4)
  t.equal(failoversAllowed({ ...policy, failovers_max: 10 }, 5), 10)
})

t.test('recordDecision prunes entries that left their windows', async (t) => {
  const { history } = failAt([0, 1000], 'h1', 4)
  const later = recordDecision(history, policy, { action: 'restart', node: 'h2', reason: '' }, 20 * MIN)
  t.same(later.restarts, [{ node: 'h2', at_ms: 20 * MIN }])
})

t.test('failback window: plain, wrapping midnight, any hour', async (t) => {
  const day = { start_hour: 9, end_hour: 17 }
  t.same(
    [8, 9, 16, 17].map((h) => inFailbackWindow(day, h)),
    [false, true, true, false],
  )
  const night = { start_hour: 22, end_hour: 6 }
  t.same(
    [21, 22, 23, 0, 5, 6].map((h) => inFailbackWindow(night, h)),
    [false, true, true, true, true, false],
  )
  t.equal(inFailbackWindow(null, 13), true)
  t.throws(() => inFailbackWindow(day, 24), { code: 'HVLAB_E_INTERNAL' })
})

t.test('scaled policy shrinks only the periods; bad settings are refused', async (t) => {
  const s = scaledFailoverPolicy(policy, 0.001)
  t.same(
    s,
    { ...policy, restart_period_ms: 900, failover_period_ms: 21_600, retry_period_on_failure_ms: 3600 },
    'the restart delay is not a long period',
  )
  t.throws(() => checkFailoverPolicy({ ...policy, restart_delay_ms: -1 }), { code: 'HVLAB_E_USAGE', message: /restart_delay_ms/ })
  t.throws(() => checkFailoverPolicy({ ...policy, retry_period_on_failure_ms: 0 }), {
    code: 'HVLAB_E_USAGE',
    message: /retry_period_on_failure_ms/,
  })
  t.equal(checkFailoverPolicy({ ...policy, restart_delay_ms: 0 }).restart_delay_ms, 0, 'no restart delay is allowed')
  t.throws(() => checkFailoverPolicy({ ...policy, restarts_max: -1 }), { code: 'HVLAB_E_USAGE', message: /restarts_max/ })
  t.throws(() => checkFailoverPolicy({ ...policy, failover_period_ms: 0 }), { code: 'HVLAB_E_USAGE', message: /failover_period_ms/ })
  t.equal(checkFailoverPolicy(policy), policy)
})

t.test("a role's own failover period is scaled by the lab's timeScale like the cluster's", async (t) => {
  t.equal(rolePolicy(DEFAULT_FAILOVER_POLICY, { failover_period_h: 1 }).failover_period_ms, 3_600_000)
  t.equal(rolePolicy(DEFAULT_FAILOVER_POLICY, { failover_period_h: 1 }, 0.001).failover_period_ms, 3600)
  t.equal(
    rolePolicy(DEFAULT_FAILOVER_POLICY, {}, 0.001).failover_period_ms,
    DEFAULT_FAILOVER_POLICY.failover_period_ms,
    'no period of its own: the policy as given',
  )
})
