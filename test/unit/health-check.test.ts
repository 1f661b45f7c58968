import t from 'tap'
import {
  DEFAULT_HEALTH_CHECK,
  checkHealthCheckConfig,
  healthAction,
  nextCheckAt,
  runHealthCheck,
  scaledHealthCheck,
  startHealthCheck,
  type HealthCheckState,
  type HealthVerdict,
} from '../../agent/cluster/health-check.js'
import { DEFAULT_FAILOVER_POLICY, EMPTY_HISTORY } from '../../agent/cluster/failover-policy.js'

const config = DEFAULT_HEALTH_CHECK

/** Runs every check due up to end_ms; heartbeat(at) gives the last heartbeat seen at that time. */
function run(end_ms: number, heartbeat: (now: number) => number | null, state: HealthCheckState = startHealthCheck(config, 0)) {
  const log: Array<{ at: number; check: string | null; verdict: HealthVerdict }> = []
  for (let guard = 0; guard < 10_000 && nextCheckAt(state) <= end_ms; guard++) {
    const at = nextCheckAt(state)
    const r = runHealthCheck(state, config, heartbeat(at), at)
    state = r.state
    log.push({ at, check: r.check, verdict: r.verdict })
  }
  return { log, state }
}

t.test('a guest that keeps sending heartbeats: LooksAlive every 5 s, IsAlive every 60 s, all healthy', async (t) => {
  const { log } = run(120_000, (now) => now - 1000)
  t.ok(log.every((l) => l.verdict === 'healthy'))
  t.same(
    log.filter((l) => l.check === 'is_alive').map((l) => l.at),
    [60_000, 120_000],
  )
  t.equal(log.filter((l) => l.check === 'looks_alive').length, 22, 'every 5 s except where IsAlive ran')
})

t.test('a silent guest: suspect at the first failed LooksAlive, unresponsive once silent for 30 s', async (t) => {
  const state = startHealthCheck(config, 0)
  const lastBeat = 200_000 // heartbeats until here, then silence
  let s = state
  for (let now = 5000; now <= lastBeat; now += 5000) s = runHealthCheck(s, config, now, now).state
  const { log } = run(400_000, () => lastBeat, s)
  const first = log.find((l) => l.verdict !== 'healthy')
  t.same(first, { at: 215_000, check: 'looks_alive', verdict: 'suspect' }, '15 s of silence > 10 s timeout')
  t.same(log[log.indexOf(first!) + 1], { at: 215_000, check: 'is_alive', verdict: 'suspect' }, 'IsAlive runs at once')
  const last = log.at(-1)
  t.same(last, { at: 230_000, check: 'is_alive', verdict: 'unresponsive' })
  t.equal(log.filter((l) => l.verdict === 'unresponsive').length, 1, 'the checks stop after the verdict')
})

t.test('silence just under the limits is tolerated; a heartbeat clears suspicion', async (t) => {
  let s = startHealthCheck(config, 0)
  s = runHealthCheck(s, config, 0, 5000).state // heartbeat at 0 (just after start)
  const at10 = runHealthCheck(s, config, 0, 10_000)
  t.equal(at10.verdict, 'healthy', 'exactly 10 s of silence still passes LooksAlive')
  const at15 = runHealthCheck(at10.state, config, 0, 15_000)
  t.equal(at15.verdict, 'suspect')
  const again = runHealthCheck(at15.state, config, 14_000, 15_000)
  t.equal(again.verdict, 'healthy', 'IsAlive passes: a heartbeat came in')
  t.equal(again.state.suspect, false)
  t.equal(nextCheckAt(again.state), 20_000)
})

t.test('boot grace: no heartbeat needed until boot_grace_ms after the start', async (t) => {
  const { log } = run(119_999 + 10_000, () => null)
  t.ok(
    log.every((l) => l.verdict === 'healthy'),
    'silent but within grace + timeout',
  )
  const { log: later } = run(200_000, () => null)
  t.same(later.find((l) => l.verdict === 'suspect')?.at, 135_000)
  t.same(later.at(-1), { at: 150_000, check: 'is_alive', verdict: 'unresponsive' })
})

t.test('not due before its time; once unresponsive the checks stop', async (t) => {
  const s = startHealthCheck(config, 1000)
  t.equal(runHealthCheck(s, config, null, 5999).verdict, 'not_due')
  const dead = { ...s, unresponsive: true }
  t.equal(nextCheckAt(dead), Infinity)
  t.equal(runHealthCheck(dead, config, 0, 1e9).verdict, 'unresponsive')
})

t.test('healthAction: nothing unless unresponsive; then the failover policy decides', async (t) => {
  const vm = { node: 'h1', node_count: 3 }
  t.same(healthAction('suspect', EMPTY_HISTORY, DEFAULT_FAILOVER_POLICY, vm, 0), { action: 'none', reason: 'suspect' })
  t.match(healthAction('unresponsive', EMPTY_HISTORY, DEFAULT_FAILOVER_POLICY, vm, 0), { action: 'restart', node: 'h1' })
  const history = { restarts: [0, 1, 2].map((at_ms) => ({ node: 'h1', at_ms })), failovers_ms: [] }
  t.match(healthAction('unresponsive', history, DEFAULT_FAILOVER_POLICY, vm, 3), { action: 'failover' })
})

t.test('config: scaled IsAlive interval never below LooksAlive; bad settings refused', async (t) => {
  const s = scaledHealthCheck(config, 0.01)
  t.equal(s.is_alive_interval_ms, 5000)
  t.equal(s.looks_alive_interval_ms, 5000)
  t.equal(s.boot_grace_ms, 1200)
  t.equal(scaledHealthCheck(config, 0.5).is_alive_interval_ms, 30_000)
  t.throws(() => checkHealthCheckConfig({ ...config, unresponsive_after_ms: 5000 }), {
    code: 'HVLAB_E_USAGE',
    message: /unresponsive_after_ms/,
  })
  t.throws(() => checkHealthCheckConfig({ ...config, looks_alive_interval_ms: 0 }), { code: 'HVLAB_E_USAGE' })
  t.throws(() => checkHealthCheckConfig({ ...config, is_alive_interval_ms: 1000 }), {
    code: 'HVLAB_E_USAGE',
    message: /is_alive_interval_ms/,
  })
  t.equal(checkHealthCheckConfig(config), config)
})
