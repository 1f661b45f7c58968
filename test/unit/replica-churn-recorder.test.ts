/**
 * The churn recorder (agent/replica/churn-recorder.ts), fed writes as they happen: it
 * comes to what a cycle-by-cycle count of distinct blocks does (a model written here
 * without its bitmaps), a hot block costs once per cycle, the memory it holds does not
 * grow with the writes or the duration, and writes beyond the disk or stamped back in
 * time do not break it.
 */
import t from 'tap'
import { ChurnRecorder } from '../../agent/replica/churn-recorder.js'
import { mulberry32 } from '../../shared/seeded-random.js'

const BS = 4096

/** The model: every write kept, each cycle's distinct blocks counted with a Set. */
function model(writes: readonly { at_ms: number; block: number }[], start_ms: number, measured_ms: number, f: number) {
  const cycles = Math.max(1, Math.ceil(measured_ms / f))
  const full = Math.floor(measured_ms / f)
  const sets = Array.from({ length: cycles }, () => new Set<number>())
  for (const w of writes) sets[Math.min(cycles - 1, Math.floor((w.at_ms - start_ms) / f))]!.add(w.block)
  const bytes = sets.map((s) => s.size * BS)
  const total = bytes.reduce((a, b) => a + b, 0)
  return { cycles, full_cycles: full, peak_cycle_bytes: Math.max(...bytes.slice(0, Math.max(1, full))), total_bytes: total }
}

t.test('random writes in time order: what a cycle-by-cycle count of distinct blocks says', async (t) => {
  for (const seed of [1, 2, 3, 4, 5]) {
    const random = mulberry32(seed)
    const start_ms = 1_000_000
    const measured_ms = 10_000 + Math.floor(random() * 50_000)
    const writes: { at_ms: number; block: number }[] = []
    let at = start_ms
    while (at < start_ms + measured_ms) {
      at += Math.floor(random() * 40)
      writes.push({ at_ms: at, block: random() < 0.5 ? Math.floor(random() * 8) : Math.floor(random() * 2000) })
    }
    const frequencies_ms = [3_000, 7_000, 90_000]
    const r = new ChurnRecorder({ start_ms, measured_ms, block_size_bytes: BS, disk_blocks: 2000, frequencies_ms })
    for (const w of writes) r.record(w.block, w.at_ms)
    t.equal(r.writes, writes.length)
    for (const [i, f] of frequencies_ms.entries()) {
      const want = model(writes, start_ms, measured_ms, f)
      t.match(r.result()[i], { frequency_ms: f, ...want }, `seed ${seed}, frequency ${f} ms`)
      t.equal(r.result()[i]!.mean_bytes_per_s, (want.total_bytes / measured_ms) * 1000)
      t.equal(r.result()[i]!.peak_bytes_per_s, (want.peak_cycle_bytes / f) * 1000)
    }
  }
})

t.test('a hot block costs once per cycle, so a longer frequency needs less', async (t) => {
  const r = new ChurnRecorder({ start_ms: 0, measured_ms: 60_000, block_size_bytes: BS, disk_blocks: 16, frequencies_ms: [30_000, 5_000] })
  for (let ms = 0; ms < 60_000; ms += 10) r.record(7, ms) // 6000 writes, one block
  const [f30, f5] = r.result()
  t.match(f30, { cycles: 2, full_cycles: 2, peak_cycle_bytes: BS, total_bytes: 2 * BS })
  t.match(f5, { cycles: 12, peak_cycle_bytes: BS, total_bytes: 12 * BS })
  t.ok(f5!.mean_bytes_per_s > f30!.mean_bytes_per_s)
})

t.test('its memory is one bit per block per frequency, however many writes and however long', async (t) => {
  const disk_blocks = 1 << 20
  const r = new ChurnRecorder({
    start_ms: 0,
    measured_ms: 3_600_000,
    block_size_bytes: BS,
    disk_blocks,
    frequencies_ms: [30_000, 300_000, 900_000],
  })
  t.equal(r.heldBytes, (3 * disk_blocks) / 8)
  for (let i = 0; i < 1_000_000; i++) r.record((i * 7919) % disk_blocks, i * 3.6)
  t.equal(r.heldBytes, (3 * disk_blocks) / 8, 'a million writes over an hour later: the same')
  t.equal(r.result()[0]!.cycles, 120)
  t.equal(r.result()[0]!.total_bytes, 1_000_000 * BS, 'no block twice in a 30 s cycle (a stride of 7919 over 2^20 blocks)')
})

t.test(
  'writes beyond the disk are not counted; a write stamped back in time counts in the cycle under way; one after the end in the last',
  async (t) => {
    const r = new ChurnRecorder({ start_ms: 100, measured_ms: 25, block_size_bytes: BS, disk_blocks: 4, frequencies_ms: [10] })
    r.record(4, 101)
    r.record(-1, 101)
    t.equal(r.outside, 2)
    r.record(0, 101) // cycle 0
    r.record(1, 115) // cycle 1
    r.record(2, 105) // stamped back: still cycle 1
    r.record(3, 500) // after the end: the last (partial) cycle 2
    t.equal(r.writes, 4)
    t.match(r.result(), [{ cycles: 3, full_cycles: 2, peak_cycle_bytes: 2 * BS, total_bytes: 4 * BS }])
  },
)

t.test('bad settings are refused', async (t) => {
  const o = { start_ms: 0, measured_ms: 10, block_size_bytes: BS, disk_blocks: 1, frequencies_ms: [5] }
  t.throws(() => new ChurnRecorder({ ...o, measured_ms: 0 }), { code: 'HVLAB_E_USAGE' })
  t.throws(() => new ChurnRecorder({ ...o, measured_ms: Infinity }), { code: 'HVLAB_E_USAGE' })
  t.throws(() => new ChurnRecorder({ ...o, frequencies_ms: [0] }), { code: 'HVLAB_E_USAGE' })
  t.throws(() => new ChurnRecorder({ ...o, disk_blocks: 2 ** 40 }), { code: 'HVLAB_E_USAGE' })
})
