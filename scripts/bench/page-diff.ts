/**
 * Benchmark of the live-migration page-diff hot path.
 *
 *   npm run build && node dist/bench-page-diff.js [--out FILE] [--mib 256] [--reps 3]
 *                                                [--bandwidth-mib-s 1200] [--seed 1]
 *
 * Builds guest memory with a realistic dirty mix against a last-sent copy:
 *   15% zeroed since sent (→ zero marker), 25% dirtied but unchanged (→ skipped),
 *   40% a few small writes (→ XBZRLE delta), 20% rewritten at random (→ full page)
 * and measures, in the same run over the same pages, GB/s of pages scanned and encoded
 * by the worker pool with 1, 2 and N threads, next to native Buffer.compare, a plain JS
 * word loop, and diffPages() on the main thread. Prints a table, then the textbook
 * pre-copy model for a 1 GiB VM across dirty rates 0–400 MiB/s, and writes JSON with
 * --out. Numbers are for reading, never for asserting in tests.
 */
import { randomFillSync } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import { availableParallelism } from 'node:os'
import { pathToFileURL } from 'node:url'
import { GuestMemory } from '../../agent/vm/guest-memory.js'
import { PAGE_SIZE_BYTES } from '../../shared/protocol/page-size.js'
import { diffPages, emptyPageDiffStats, addPageDiffStats, type PageDiffStats } from '../../agent/migration/page-diff.js'
import { PageDiffPool } from '../../agent/migration/page-diff-pool.js'
import { PAGE_BATCH_PAGES_MAX } from '../../agent/migration/page-batch.js'
import { modelPrecopy } from '../../agent/migration/precopy-model.js'
import { DOWNTIME_BUDGET_MS_DEFAULT, ROUND_CAP_DEFAULT } from '../../agent/migration/convergence.js'
import { mulberry32 } from '../../shared/seeded-random.js'

const PAGE = PAGE_SIZE_BYTES
const MiB = 1024 * 1024
const GB = 1e9

export interface PageDiffBenchOptions {
  memory_mib: number
  reps: number
  bandwidth_mib_per_s: number
  seed: number
}

export interface BenchRow {
  name: string
  threads: number | null
  best_gb_per_s: number
  median_gb_per_s: number
  runs_ms: number[]
}

export interface PageDiffBenchReport {
  node: string
  cpus: number
  memory_mib: number
  pages: number
  mix: { zero: number; unchanged: number; small_change: number; random: number }
  diff_stats: PageDiffStats
  rows: BenchRow[]
  precopy_model: {
    memory_bytes: number
    bandwidth_bytes_per_s: number
    downtime_budget_ms: number
    round_cap: number
    rows: Array<{
      dirty_mib_per_s: number
      ratio: number
      precopy_rounds: number
      converges: boolean
      blackout_ms: number
      total_ms: number
      total_mib: number
    }>
  }
}

interface Workload {
  memory: GuestMemory
  last_sent: SharedArrayBuffer
  pristine: Uint8Array
  pages: Uint32Array
  mix: PageDiffBenchReport['mix']
}

function buildWorkload(memory_mib: number, seed: number): Workload {
  const page_count = (memory_mib * MiB) / PAGE
  const memory = GuestMemory.create(page_count)
  const last_sent = new SharedArrayBuffer(memory.byte_length)
  const sent = new Uint8Array(last_sent)
  const mem = memory.bytes
  // random content in 16 MiB slices (randomFillSync is bounded per call)
  for (let off = 0; off < sent.length; off += 16 * MiB) randomFillSync(sent.subarray(off, Math.min(sent.length, off + 16 * MiB)))
  mem.set(sent)
  const rnd = mulberry32(seed)
  const mix = { zero: 0, unchanged: 0, small_change: 0, random: 0 }
  for (let p = 0; p < page_count; p++) {
    const page = mem.subarray(p * PAGE, (p + 1) * PAGE)
    const r = rnd()
    if (r < 0.15) {
      page.fill(0)
      mix.zero++
    } else if (r < 0.4) {
      mix.unchanged++
    } else if (r < 0.8) {
      const writes = 1 + Math.floor(rnd() * 4)
      for (let w = 0; w < writes; w++) {
        const at = Math.floor(rnd() * (PAGE - 32))
        const len = 1 + Math.floor(rnd() * 32)
        for (let k = at; k < at + len; k++) page[k] = ((page[k] as number) + 1) & 0xff
      }
      mix.small_change++
    } else {
      randomFillSync(page)
      mix.random++
    }
  }
  const pages = Uint32Array.from({ length: page_count }, (_, i) => i)
  return { memory, last_sent, pristine: sent.slice(), pages, mix }
}

const resetLastSent = (w: Workload): void => new Uint8Array(w.last_sent).set(w.pristine)

function row(name: string, threads: number | null, bytes: number, runs_ms: number[]): BenchRow {
  const sorted = [...runs_ms].sort((a, b) => a - b)
  const rate = (ms: number): number => bytes / GB / (ms / 1000)
  return {
    name,
    threads,
    best_gb_per_s: rate(sorted[0] as number),
    median_gb_per_s: rate(sorted[Math.floor(sorted.length / 2)] as number),
    runs_ms,
  }
}

function timeSync(reps: number, before: () => void, fn: () => void): number[] {
  const runs: number[] = []
  for (let r = 0; r <= reps; r++) {
    before()
    const t0 = performance.now()
    fn()
    if (r > 0) runs.push(performance.now() - t0) // run 0 warms up
  }
  return runs
}

async function timeAsync(reps: number, before: () => void, fn: () => Promise<void>): Promise<number[]> {
  const runs: number[] = []
  for (let r = 0; r <= reps; r++) {
    before()
    const t0 = performance.now()
    await fn()
    if (r > 0) runs.push(performance.now() - t0)
  }
  return runs
}

function benchBaselines(w: Workload, reps: number): BenchRow[] {
  const bytes = w.pages.length * PAGE
  const mem = w.memory.buffers.memory
  let sink = 0
  const compareMix = timeSync(
    reps,
    () => resetLastSent(w),
    () => {
      for (let p = 0; p < w.pages.length; p++) {
        sink += Buffer.compare(new Uint8Array(mem, p * PAGE, PAGE), new Uint8Array(w.last_sent, p * PAGE, PAGE))
      }
    },
  )
  // identical pages: memcmp must read every byte of both
  const compareFull = timeSync(
    reps,
    () => resetLastSent(w),
    () => {
      for (let p = 0; p < w.pages.length; p++) {
        sink += Buffer.compare(new Uint8Array(w.last_sent, p * PAGE, PAGE), w.pristine.subarray(p * PAGE, (p + 1) * PAGE))
      }
    },
  )
  const a32 = new Uint32Array(w.last_sent)
  const b32 = new Uint32Array(w.pristine.buffer)
  const jsLoop = timeSync(
    reps,
    () => resetLastSent(w),
    () => {
      const words = PAGE / 4
      for (let p = 0; p < w.pages.length; p++) {
        const base = p * words
        let i = 0
        while (i < words && a32[base + i] === b32[base + i]) i++
        sink += i
      }
    },
  )
  if (sink === 0.5) console.log('') // keeps the loops from being optimised away
  return [
    row('Buffer.compare, same pages (stops at first difference)', 1, bytes, compareMix),
    row('Buffer.compare, identical pages (full scan)', 1, bytes, compareFull),
    row('plain JS Uint32 loop, identical pages (full scan)', 1, bytes, jsLoop),
  ]
}

function benchInProcess(w: Workload, reps: number): { row: BenchRow; stats: PageDiffStats } {
  const mem = w.memory.buffers.memory
  let stats = emptyPageDiffStats()
  const runs = timeSync(
    reps,
    () => resetLastSent(w),
    () => {
      stats = emptyPageDiffStats()
      for (let at = 0; at < w.pages.length; at += PAGE_BATCH_PAGES_MAX / 4) {
        addPageDiffStats(
          stats,
          diffPages({ memory: mem, last_sent: w.last_sent, pages: w.pages.subarray(at, at + PAGE_BATCH_PAGES_MAX / 4) }).stats,
        )
      }
    },
  )
  return { row: row('diffPages on the main thread (no pool)', 1, w.pages.length * PAGE, runs), stats }
}

async function benchPool(w: Workload, reps: number, threads: number): Promise<BenchRow> {
  const pool = new PageDiffPool({ threads, idle_timeout_ms: 60_000 })
  try {
    const runs = await timeAsync(
      reps,
      () => resetLastSent(w),
      async () => {
        await pool.diff(w.memory.buffers.memory, w.last_sent, w.pages)
      },
    )
    return row(`page-diff pool`, threads, w.pages.length * PAGE, runs)
  } finally {
    await pool.close()
  }
}

function precopyTable(bandwidth_mib_per_s: number): PageDiffBenchReport['precopy_model'] {
  const memory_bytes = 1024 * MiB
  const bandwidth_bytes_per_s = bandwidth_mib_per_s * MiB
  const rows = []
  for (let dirty = 0; dirty <= 400; dirty += 25) {
    const m = modelPrecopy({
      memory_bytes,
      bandwidth_bytes_per_s,
      dirty_rate_bytes_per_s: dirty * MiB,
      downtime_budget_ms: DOWNTIME_BUDGET_MS_DEFAULT,
      round_cap: ROUND_CAP_DEFAULT,
    })
    rows.push({
      dirty_mib_per_s: dirty,
      ratio: (dirty * MiB) / bandwidth_bytes_per_s,
      precopy_rounds: m.precopy_rounds,
      converges: m.converges,
      blackout_ms: m.blackout_ms,
      total_ms: m.total_ms,
      total_mib: m.total_bytes / MiB,
    })
  }
  return { memory_bytes, bandwidth_bytes_per_s, downtime_budget_ms: DOWNTIME_BUDGET_MS_DEFAULT, round_cap: ROUND_CAP_DEFAULT, rows }
}

export async function runPageDiffBench(options: PageDiffBenchOptions): Promise<PageDiffBenchReport> {
  const w = buildWorkload(options.memory_mib, options.seed)
  const rows = benchBaselines(w, options.reps)
  const inProcess = benchInProcess(w, options.reps)
  rows.push(inProcess.row)
  const cpus = availableParallelism()
  for (const threads of [...new Set([1, 2, cpus])]) rows.push(await benchPool(w, options.reps, threads))
  return {
    node: process.version,
    cpus,
    memory_mib: options.memory_mib,
    pages: w.pages.length,
    mix: w.mix,
    diff_stats: inProcess.stats,
    rows,
    precopy_model: precopyTable(options.bandwidth_mib_per_s),
  }
}

export function formatReport(r: PageDiffBenchReport): string {
  const lines: string[] = []
  const s = r.diff_stats
  lines.push(`page diff over ${r.memory_mib} MiB (${r.pages} pages), ${r.cpus} CPUs, node ${r.node}`)
  lines.push(`mix: ${r.mix.zero} zeroed, ${r.mix.unchanged} unchanged, ${r.mix.small_change} small changes, ${r.mix.random} random`)
  lines.push(
    `result: ${s.zero} zero, ${s.skipped} skipped, ${s.delta} delta, ${s.full} full; ` +
      `${(s.encodedBytes / MiB).toFixed(1)} MiB on the wire for ${(s.rawBytes / MiB).toFixed(0)} MiB scanned (${((100 * s.encodedBytes) / s.rawBytes).toFixed(1)}%)`,
  )
  lines.push('')
  lines.push(`${'what'.padEnd(56)} ${'threads'.padStart(7)} ${'best GB/s'.padStart(10)} ${'median GB/s'.padStart(12)}`)
  for (const x of r.rows) {
    lines.push(
      `${x.name.padEnd(56)} ${String(x.threads ?? '-').padStart(7)} ${x.best_gb_per_s.toFixed(2).padStart(10)} ${x.median_gb_per_s.toFixed(2).padStart(12)}`,
    )
  }
  const m = r.precopy_model
  lines.push('')
  lines.push(
    `pre-copy model: 1 GiB VM, link ${(m.bandwidth_bytes_per_s / MiB).toFixed(0)} MiB/s, budget ${m.downtime_budget_ms} ms, cap ${m.round_cap} rounds; V_i = V_0·(D/R)^i`,
  )
  lines.push(
    `${'dirty MiB/s'.padStart(11)} ${'D/R'.padStart(6)} ${'rounds'.padStart(6)} ${'fits'.padStart(5)} ${'blackout ms'.padStart(12)} ${'total s'.padStart(8)} ${'sent MiB'.padStart(9)}`,
  )
  for (const x of m.rows) {
    lines.push(
      `${String(x.dirty_mib_per_s).padStart(11)} ${x.ratio.toFixed(3).padStart(6)} ${String(x.precopy_rounds).padStart(6)} ${(x.converges ? 'yes' : 'NO').padStart(5)} ${x.blackout_ms.toFixed(1).padStart(12)} ${(x.total_ms / 1000).toFixed(2).padStart(8)} ${x.total_mib.toFixed(0).padStart(9)}`,
    )
  }
  return lines.join('\n')
}
