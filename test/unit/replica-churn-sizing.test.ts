/**
 * Bandwidth sizing from measured churn (agent/replica/churn-sizing.ts): a cycle costs its
 * distinct blocks, so a hot block rewritten all the time costs once per cycle and longer
 * frequencies need less; the peak is the busiest full cycle over the frequency; bad input
 * is refused.
 */
import t from 'tap'
import { sizeBandwidth, type MeasuredWrite } from '../../agent/replica/churn-sizing.js'

const BS = 4096

t.test('a hot block costs once per cycle; cold churn costs every block', async (t) => {
  // 60 s: block 0 written every 100 ms (hot), and a new block every second (cold churn).
  const writes: MeasuredWrite[] = []
  for (let ms = 0; ms < 60_000; ms += 100) writes.push({ at_ms: ms, block: 0 })
  for (let s = 0; s < 60; s++) writes.push({ at_ms: s * 1000 + 50, block: 1 + s })
  const [f30, f5] = sizeBandwidth({ writes, block_size_bytes: BS, measured_ms: 60_000, frequencies_ms: [30_000, 5_000] })
  t.match(f30, { frequency_ms: 30_000, cycles: 2, peak_cycle_bytes: 31 * BS })
  t.equal(f30!.peak_bytes_per_s, (31 * BS) / 30)
  t.equal(f30!.mean_bytes_per_s, (62 * BS) / 60, 'the hot block once in each of 2 cycles, 60 cold blocks')
  t.match(f5, { cycles: 12, peak_cycle_bytes: 6 * BS })
  t.equal(f5!.mean_bytes_per_s, (72 * BS) / 60, 'the hot block in each of 12 cycles')
  t.ok(f5!.mean_bytes_per_s > f30!.mean_bytes_per_s, 'a shorter frequency ships the hot block more often')
})

t.test('the peak is the busiest full cycle; a partial last cycle counts only in the mean', async (t) => {
  const writes: MeasuredWrite[] = [
    { at_ms: 0, block: 1 },
    { at_ms: 1_000, block: 2 },
    { at_ms: 12_000, block: 3 },
    // the partial third cycle (20–25 s) is busier than either full one
    ...Array.from({ length: 5 }, (_, k) => ({ at_ms: 21_000 + k, block: 10 + k })),
  ]
  const [f] = sizeBandwidth({ writes, block_size_bytes: BS, measured_ms: 25_000, frequencies_ms: [10_000] })
  t.match(f, { cycles: 3, peak_cycle_bytes: 2 * BS })
  t.equal(f!.mean_bytes_per_s, (8 * BS) / 25)
})

t.test('no writes need nothing; bad durations are refused', async (t) => {
  t.match(sizeBandwidth({ writes: [], block_size_bytes: BS, measured_ms: 1000, frequencies_ms: [300_000] }), [
    { cycles: 1, peak_cycle_bytes: 0, peak_bytes_per_s: 0, mean_bytes_per_s: 0 },
  ])
  t.throws(() => sizeBandwidth({ writes: [], block_size_bytes: BS, measured_ms: 0, frequencies_ms: [1] }), { code: 'HVLAB_E_USAGE' })
  t.throws(() => sizeBandwidth({ writes: [], block_size_bytes: BS, measured_ms: 10, frequencies_ms: [-5] }), { code: 'HVLAB_E_USAGE' })
})
