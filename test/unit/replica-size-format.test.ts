/**
 * What `hvlab replica size` prints (scripts/cli/replica-size-command.ts formatSizing): a
 * row per frequency with its cycle as the lab runs it, the busiest cycle and the mean in
 * bytes per cycle and Mbit/s, and a word when a frequency had no full cycle.
 */
import t from 'tap'
import { formatSizing, type ReplicaSizeView } from '../../scripts/cli/replica-size-command.js'

const view: ReplicaSizeView = {
  vm: 'web1',
  host: 'host-a1',
  time_scale: 0.1,
  duration_ms: 120_000,
  measured_ms: 12_000,
  elapsed_ms: 12_000,
  block_size_bytes: 4096,
  writes: 300,
  frequencies: [
    // 375 000 bytes in the busiest 3 s cycle: 125 000 B/s, 1 Mbit/s
    {
      frequency_ms: 30_000,
      cycle_ms: 3_000,
      cycles: 4,
      full_cycles: 4,
      peak_cycle_bytes: 375_000,
      peak_bytes_per_s: 125_000,
      total_bytes: 1_200_000,
      mean_bytes_per_s: 100_000,
      peak_mbit_s: 1,
      mean_mbit_s: 0.8,
      mean_cycle_bytes: 300_000,
    },
    {
      frequency_ms: 300_000,
      cycle_ms: 30_000,
      cycles: 1,
      full_cycles: 0,
      peak_cycle_bytes: 1_100_000,
      peak_bytes_per_s: 36_666.7,
      total_bytes: 1_100_000,
      mean_bytes_per_s: 91_666.7,
      peak_mbit_s: 0.2933,
      mean_mbit_s: 0.7333,
      mean_cycle_bytes: 2_750_000,
    },
    {
      frequency_ms: 900_000,
      cycle_ms: 90_000,
      cycles: 1,
      full_cycles: 0,
      peak_cycle_bytes: 1_100_000,
      peak_bytes_per_s: 12_222.2,
      total_bytes: 1_100_000,
      mean_bytes_per_s: 91_666.7,
      peak_mbit_s: 0.0978,
      mean_mbit_s: 0.7333,
      mean_cycle_bytes: 8_250_000,
    },
  ],
}

t.test('a row per frequency, in bytes per cycle and Mbit/s', async (t) => {
  const lines = formatSizing(view).split('\n')
  t.match(lines[0], /vm web1 on host-a1: 2 min of the lab's time \(12\.0 s at timeScale 0\.1\), 300 writes of 4096-byte blocks/)
  t.match(lines[1], /^FREQUENCY\s+CYCLE\s+CYCLES\s+PEAK B\/CYCLE\s+PEAK MBIT\/S\s+MEAN B\/CYCLE\s+MEAN MBIT\/S$/)
  t.match(lines[2], /^30s\s+3\.0 s\s+4\s+375000\s+1\.000\s+300000\s+0\.800$/)
  t.match(lines[3], /^5m\s+30\.0 s\s+1 \(1 partial\)\s+1100000\s+0\.293\s+2750000\s+0\.733$/)
  t.match(lines[4], /^15m\s+90\.0 s\s+1 \(1 partial\)/)
  t.match(lines.at(-1), /5m, 15m: no full cycle measured, so the peak is the partial cycle's; --minutes 15 or more covers one/)
})

t.test('no word on partial cycles when every frequency had a full one', async (t) => {
  const full = { ...view, frequencies: view.frequencies.map((f) => ({ ...f, full_cycles: f.cycles })) }
  t.notMatch(formatSizing(full), /partial/)
})
