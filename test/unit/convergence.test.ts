import t from 'tap'
import {
  DEFAULT_THROTTLE_POLICY,
  DOWNTIME_BUDGET_MS_DEFAULT,
  ROUND_CAP_DEFAULT,
  decideConvergence,
  expectedBlackoutMs,
  settled,
  nextThrottlePct,
  type ConvergenceInput,
} from '../../agent/migration/convergence.js'
import { modelPrecopy, precopyRoundsToFit, precopyVolumeBytes } from '../../agent/migration/precopy-model.js'

const PAGE = 4096
const MiB = 1024 * 1024
const GiB = 1024 * MiB

const base: ConvergenceInput = {
  round: 3,
  remaining_dirty_pages: 0,
  bandwidth_bytes_per_s: 1000 * PAGE, // 1000 pages/s: 1 page = 1 ms
  dirty_rate_bytes_per_s: 0,
  downtime_budget_ms: DOWNTIME_BUDGET_MS_DEFAULT,
  round_cap: ROUND_CAP_DEFAULT,
  throttle_pct: 0,
}

t.test('defaults follow the design numbers', async (t) => {
  t.equal(DOWNTIME_BUDGET_MS_DEFAULT, 100)
  t.equal(ROUND_CAP_DEFAULT, 10)
  t.same(
    [DEFAULT_THROTTLE_POLICY.throttle_initial_pct, DEFAULT_THROTTLE_POLICY.throttle_step_pct, DEFAULT_THROTTLE_POLICY.throttle_max_pct],
    [20, 10, 99],
  )
})

t.test('switches over when the remaining set fits the budget (boundary inclusive)', async (t) => {
  // dirtying more than half as fast as the link: another round would not halve the blackout
  const hot = { ...base, round: 1, dirty_rate_bytes_per_s: 600 * PAGE } // round 1: no throttle yet
  t.same(decideConvergence({ ...hot, remaining_dirty_pages: 100 }), {
    action: 'switch_over',
    reason: 'fits_budget',
    expected_blackout_ms: 100,
  })
  t.same(decideConvergence({ ...base, remaining_dirty_pages: 0 }), {
    action: 'switch_over',
    reason: 'fits_budget',
    expected_blackout_ms: 0,
  })
  t.same(decideConvergence({ ...hot, remaining_dirty_pages: 101 }), { action: 'next_round', throttle_pct: 0, expected_blackout_ms: 101 })
  t.same(
    decideConvergence({ ...hot, remaining_dirty_pages: 50 }, { ...DEFAULT_THROTTLE_POLICY, switchover_overhead_ms: 60 }),
    {
      action: 'next_round',
      throttle_pct: 0,
      expected_blackout_ms: 110,
    },
    'the fixed switch-over cost counts against the budget',
  )
})

t.test('a blackout that fits waits for another round while that round halves it (Xen)', async (t) => {
  const half = { ...base, dirty_rate_bytes_per_s: 500 * PAGE } // exactly half the link
  t.same(
    decideConvergence({ ...half, remaining_dirty_pages: 11 }),
    { action: 'next_round', throttle_pct: 0, expected_blackout_ms: 11 },
    '11 ms, above a tenth of the budget, halved by one more round: go on',
  )
  t.equal(decideConvergence({ ...half, remaining_dirty_pages: 10 }).action, 'switch_over', 'within a tenth of the budget: take it')
  t.equal(
    decideConvergence({ ...half, remaining_dirty_pages: 99, dirty_rate_bytes_per_s: 501 * PAGE }).action,
    'switch_over',
    'a round would leave more than half: take it',
  )
  t.same(
    decideConvergence({ ...half, remaining_dirty_pages: 90, round: 10 }),
    { action: 'switch_over', reason: 'fits_budget', expected_blackout_ms: 90 },
    'the round cap ends it, within the budget',
  )
  t.equal(
    decideConvergence({ ...half, remaining_dirty_pages: 15 }, { ...DEFAULT_THROTTLE_POLICY, switchover_overhead_ms: 10 }).action,
    'next_round',
    'the tenth counts the copy alone: a 15 ms copy (25 ms with the fixed 10) goes on',
  )
  t.equal(
    decideConvergence({ ...half, remaining_dirty_pages: 10 }, { ...DEFAULT_THROTTLE_POLICY, switchover_overhead_ms: 50 }).action,
    'switch_over',
    'a 10 ms copy (60 ms with the fixed 50) is taken',
  )
  t.equal(settled({ copy_ms: 50, dirty_rate_bytes_per_s: 0, bandwidth_bytes_per_s: 0, downtime_budget_ms: 100 }), true, 'no rate known')
})

t.test('switches over at the round cap, saying how long the blackout will be', async (t) => {
  t.same(decideConvergence({ ...base, round: 10, remaining_dirty_pages: 500, dirty_rate_bytes_per_s: 900 * PAGE }), {
    action: 'switch_over',
    reason: 'round_cap',
    expected_blackout_ms: 500,
  })
  t.equal(decideConvergence({ ...base, round: 9, remaining_dirty_pages: 500 }).action, 'next_round')
})

t.test('auto-converge: 20%, +10% per step, at most 99%, from round 2 on', async (t) => {
  const hot = { ...base, remaining_dirty_pages: 1000, dirty_rate_bytes_per_s: 500 * PAGE } // exactly 50% of the link
  t.same(decideConvergence({ ...hot, round: 1 }), { action: 'next_round', throttle_pct: 0, expected_blackout_ms: 1000 }, 'not in round 1')
  t.same(decideConvergence({ ...hot, round: 2 }), { action: 'throttle', throttle_pct: 20, expected_blackout_ms: 1000 })
  t.equal((decideConvergence({ ...hot, throttle_pct: 20 }) as { throttle_pct: number }).throttle_pct, 30)
  t.equal((decideConvergence({ ...hot, throttle_pct: 95 }) as { throttle_pct: number }).throttle_pct, 99)
  t.same(
    decideConvergence({ ...hot, throttle_pct: 99 }),
    { action: 'next_round', throttle_pct: 99, expected_blackout_ms: 1000 },
    'at the maximum',
  )
  t.same(
    decideConvergence({ ...hot, dirty_rate_bytes_per_s: 499 * PAGE, throttle_pct: 30 }),
    {
      action: 'next_round',
      throttle_pct: 30,
      expected_blackout_ms: 1000,
    },
    'below the trigger the throttle stays where it is',
  )
  t.same([nextThrottlePct(0), nextThrottlePct(20), nextThrottlePct(90), nextThrottlePct(99)], [20, 30, 99, 99])
})

t.test('no bandwidth measured: the blackout is unbounded, only the round cap ends it', async (t) => {
  t.equal(expectedBlackoutMs(1, 0), Number.POSITIVE_INFINITY)
  t.same(decideConvergence({ ...base, remaining_dirty_pages: 1, bandwidth_bytes_per_s: 0 }), {
    action: 'next_round',
    throttle_pct: 0,
    expected_blackout_ms: Number.POSITIVE_INFINITY,
  })
  t.equal(decideConvergence({ ...base, remaining_dirty_pages: 1, bandwidth_bytes_per_s: 0, round: 10 }).action, 'switch_over')
})

t.test('invalid inputs are refused', async (t) => {
  const bad: Array<Partial<ConvergenceInput>> = [
    { round: 0 },
    { round: 1.5 },
    { remaining_dirty_pages: -1 },
    { bandwidth_bytes_per_s: Number.NaN },
    { dirty_rate_bytes_per_s: -1 },
    { downtime_budget_ms: 0 },
    { round_cap: 0 },
    { throttle_pct: 100 },
  ]
  for (const b of bad) t.throws(() => decideConvergence({ ...base, ...b }), { code: 'HVLAB_E_INTERNAL' }, JSON.stringify(b))
})

/**
 * A guest that dirties `dirty_pages_per_s` distinct pages per second (throttle slows it
 * proportionally) over a link of `link_pages_per_s`: drive the policy round by round.
 */
function simulate(
  total_pages: number,
  dirty_pages_per_s: number,
  link_pages_per_s: number,
  round_cap = ROUND_CAP_DEFAULT,
  policy = DEFAULT_THROTTLE_POLICY,
) {
  let remaining = total_pages
  let throttle = 0
  const throttles: number[] = []
  for (let round = 1; round <= 100; round++) {
    const round_s = remaining / link_pages_per_s
    const rate = dirty_pages_per_s * (1 - throttle / 100)
    remaining = Math.min(total_pages, Math.round(rate * round_s))
    const d = decideConvergence(
      {
        round,
        remaining_dirty_pages: remaining,
        bandwidth_bytes_per_s: link_pages_per_s * PAGE,
        dirty_rate_bytes_per_s: rate * PAGE,
        downtime_budget_ms: 100,
        round_cap,
        throttle_pct: throttle,
      },
      policy,
    )
    if (d.action === 'switch_over') return { round, decision: d, throttles }
    if (d.action === 'throttle') {
      t.ok(d.throttle_pct > throttle, 'the throttle only goes up')
      throttle = d.throttle_pct
      throttles.push(throttle)
    }
  }
  throw new Error('the policy never switched over')
}

t.test('a guest dirtying faster than the link is throttled and the migration ends', async (t) => {
  // 1 GiB, 156 MiB/s dirty over a 117 MiB/s link
  const capped = simulate(262_144, 40_000, 30_000)
  t.equal(capped.round, ROUND_CAP_DEFAULT, 'the round cap ends it')
  t.same(capped.throttles, [20, 30, 40, 50, 60, 70], 'throttled in steps until the rate fell under half the link')
  const longer = simulate(262_144, 40_000, 30_000, 20)
  t.equal(longer.decision.reason, 'fits_budget', `throttled, the set fits the budget in round ${longer.round}`)
  const never = simulate(262_144, 40_000, 30_000, 20, { ...DEFAULT_THROTTLE_POLICY, throttle_trigger_ratio: Number.POSITIVE_INFINITY })
  t.same(
    [never.throttles, never.decision.reason, never.decision.expected_blackout_ms],
    [[], 'round_cap', (262_144 / 30_000) * 1000],
    'without auto-converge the whole memory is sent paused',
  )
})

t.test('an unthrottled slow guest converges without throttling', async (t) => {
  const r = simulate(262_144, 1_000, 30_000)
  t.same(r.throttles, [])
  t.equal(r.decision.reason, 'fits_budget')
})

t.test('pre-copy model: V_i = V_0·(D/R)^i', async (t) => {
  t.ok(Math.abs(precopyVolumeBytes(GiB, 100 * MiB, 1000 * MiB, 2) - GiB / 100) < 1e-3, 'V_2 = V_0/100 at D/R = 0.1')
  t.equal(precopyVolumeBytes(GiB, 2000 * MiB, 1000 * MiB, 3), GiB, 'never more than all of memory')
  const m = modelPrecopy({
    memory_bytes: GiB,
    bandwidth_bytes_per_s: 1000 * MiB,
    dirty_rate_bytes_per_s: 200 * MiB,
    downtime_budget_ms: 100,
    round_cap: 10,
  })
  t.equal(m.converges, true)
  // V_n/R ≤ 0.1 s ⇔ 1024·0.2^n ≤ 100 ⇔ n ≥ 1.45 → fits after 2 rounds (41 ms); D/R = 0.2 and
  // 41 ms is above a tenth of the budget, so one more: V_3/R = 8.2 ms
  t.equal(m.precopy_rounds, 3)
  t.same(
    m.rounds.map((r) => r.round),
    [0, 1, 2],
  )
  t.ok(Math.abs(m.blackout_bytes - GiB * 0.008) < 1e-3, `blackout ${m.blackout_bytes} bytes`)
  t.ok(Math.abs(m.total_ms - (1024 + 204.8 + 40.96 + 8.192)) < 1e-6, `total ${m.total_ms} ms`)
  t.equal(
    precopyRoundsToFit({
      memory_bytes: GiB,
      bandwidth_bytes_per_s: 1000 * MiB,
      dirty_rate_bytes_per_s: 200 * MiB,
      downtime_budget_ms: 100,
    }),
    2,
  )
})

t.test('pre-copy model: a guest as fast as the link never converges and stops at the cap', async (t) => {
  const m = modelPrecopy({
    memory_bytes: GiB,
    bandwidth_bytes_per_s: 100 * MiB,
    dirty_rate_bytes_per_s: 150 * MiB,
    downtime_budget_ms: 100,
    round_cap: 10,
  })
  t.equal(m.converges, false)
  t.equal(m.precopy_rounds, 10)
  t.equal(m.blackout_bytes, GiB)
  t.equal(
    precopyRoundsToFit({ memory_bytes: GiB, bandwidth_bytes_per_s: 100 * MiB, dirty_rate_bytes_per_s: 150 * MiB, downtime_budget_ms: 100 }),
    Number.POSITIVE_INFINITY,
  )
  const idle = modelPrecopy({
    memory_bytes: GiB,
    bandwidth_bytes_per_s: 100 * MiB,
    dirty_rate_bytes_per_s: 0,
    downtime_budget_ms: 100,
    round_cap: 10,
  })
  t.same([idle.precopy_rounds, idle.blackout_bytes, idle.converges], [1, 0, true])
  t.throws(
    () =>
      modelPrecopy({ ...idle, memory_bytes: 0, bandwidth_bytes_per_s: 1, dirty_rate_bytes_per_s: 0, downtime_budget_ms: 1, round_cap: 1 }),
    { code: 'HVLAB_E_USAGE' },
  )
})

t.test('model and policy agree on the number of rounds (no throttling)', async (t) => {
  for (const dirty_mib of [10, 50, 100, 200, 300, 400]) {
    const R = 1250 * MiB
    const D = dirty_mib * MiB
    const model = modelPrecopy({
      memory_bytes: GiB,
      bandwidth_bytes_per_s: R,
      dirty_rate_bytes_per_s: D,
      downtime_budget_ms: 100,
      round_cap: 10,
    })
    let rounds = 0
    for (let i = 1; i <= 10; i++) {
      const d = decideConvergence(
        {
          round: i,
          remaining_dirty_pages: Math.ceil(precopyVolumeBytes(GiB, D, R, i) / PAGE),
          bandwidth_bytes_per_s: R,
          dirty_rate_bytes_per_s: D,
          downtime_budget_ms: 100,
          round_cap: 10,
          throttle_pct: 0,
        },
        { ...DEFAULT_THROTTLE_POLICY, throttle_trigger_ratio: 1 },
      )
      rounds = i
      if (d.action === 'switch_over') break
    }
    t.equal(rounds, model.precopy_rounds, `${dirty_mib} MiB/s: ${model.precopy_rounds} rounds`)
  }
})
