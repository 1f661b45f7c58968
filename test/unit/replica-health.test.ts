/**
 * Replication health (agent/replica/replica-health.ts) on a manual clock: Normal, Warning
 * once a cycle is missed, Critical past the long window (the seed's 5 + 25 minutes at the
 * 5-minute frequency), Critical while resyncing; every interval scaled by timeScale.
 */
import t from 'tap'
import { ManualClock } from '../../shared/clock.js'
import { healthThresholds, nextHealthChangeMs, replicationHealth } from '../../agent/replica/replica-health.js'

const MIN = 60_000

t.test('5-minute frequency: Warning at a missed cycle, Critical at 30 minutes, Normal again once a cycle applies', async (t) => {
  const clock = new ManualClock(0)
  const th = healthThresholds(5 * MIN, 1)
  t.same(th, { frequency_ms: 5 * MIN, warning_after_ms: 10 * MIN, critical_after_ms: 30 * MIN })
  let progress = { last_applied_ms: 0, resyncing: false }
  const health = () => replicationHealth(progress, th, clock.now())
  clock.advance(10 * MIN - 1)
  t.equal(health(), 'Normal', 'the cycle due at 5 min may still be shipping')
  t.equal(nextHealthChangeMs(progress, th, clock.now()), 10 * MIN)
  clock.advance(1)
  t.equal(health(), 'Warning', 'a cycle missed')
  t.equal(nextHealthChangeMs(progress, th, clock.now()), 30 * MIN)
  clock.advance(20 * MIN - 1)
  t.equal(health(), 'Warning')
  clock.advance(1)
  t.equal(health(), 'Critical', 'not caught up within 5 + 25 minutes')
  t.equal(nextHealthChangeMs(progress, th, clock.now()), null)
  progress = { last_applied_ms: clock.now(), resyncing: false }
  t.equal(health(), 'Normal', 'a cycle applied')
  progress = { ...progress, resyncing: true }
  t.equal(health(), 'Critical', 'resyncing')
})

t.test('scaled by the lab’s timeScale; the 30-second frequency', async (t) => {
  t.same(healthThresholds(5 * MIN, 0.01), { frequency_ms: 3000, warning_after_ms: 6000, critical_after_ms: 3000 + 15_000 })
  const fast = healthThresholds(30_000, 1)
  t.same(fast, { frequency_ms: 30_000, warning_after_ms: 60_000, critical_after_ms: 30_000 + 25 * MIN })
  t.equal(replicationHealth({ last_applied_ms: 0, resyncing: false }, fast, 59_999), 'Normal')
  t.equal(replicationHealth({ last_applied_ms: 0, resyncing: false }, fast, 60_000), 'Warning')
})
