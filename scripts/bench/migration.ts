/**
 * Benchmark of live migration, for `npm run bench` (scripts/bench/main.ts calls
 * runMigrationBench; `npm run bench -- --vm-mib 1024` sizes the VM, `--no-migration`
 * skips it).
 *
 * Two IN-PROCESS endpoints: a PeerServer and a connectPeer client in this one process,
 * over real loopback WebSockets with the lab's handshake and framing (two agent
 * processes would measure the same sockets but cost seconds of start-up per run; the
 * sender and the receiver here share one event loop, so both numbers are lower than
 * between two processes — but they are measured the same way in the same run).
 *
 *   1. Raw transport: 1 MiB attachments sent one-way over a PeerConnection, counted on
 *      arrival — the baseline.
 *   2. Migration stream: an idle VM of random (incompressible) memory migrated over the
 *      same kind of connection: bytes on the wire / time of pre-copy round 0.
 *   3. Blackout and total time for a VM under a guest workload across dirty rates, next
 *      to modelPrecopy() at the bandwidth measured in 2 and the dirty rate asked for.
 *      The workload writes on the same event loop as the migration: at high rates it
 *      takes CPU from the stream (as a busy guest takes CPU from a real host).
 *
 * Numbers are for reading, never for asserting in tests.
 */
import { randomFillSync } from 'node:crypto'
import { availableParallelism } from 'node:os'
import { RealClock } from '../../shared/clock.js'
import { silentLogger } from '../../shared/log.js'
import { connectPeer } from '../../shared/transport/peer-client.js'
import type { PeerConnection } from '../../shared/transport/peer-connection.js'
import { PeerServer } from '../../shared/transport/peer-server.js'
import { GuestMemory, PAGE_SIZE_BYTES } from '../../agent/vm/guest-memory.js'
import { GuestWorkload } from '../../agent/vm/guest-workload.js'
import { LabVm } from '../../agent/migration/migratable-vm.js'
import { MigrationService, type MigrationResult } from '../../agent/migration/migration-service.js'
import { PageDiffPool } from '../../agent/migration/page-diff-pool.js'
import { DOWNTIME_BUDGET_MS_DEFAULT, ROUND_CAP_DEFAULT } from '../../agent/migration/convergence.js'
import { modelPrecopy } from '../../agent/migration/precopy-model.js'

const MiB = 1024 * 1024
const SECRET = 'bench-secret'

export interface MigrationBenchOptions {
  /** VM memory for the stream and the dirty-rate runs, MiB. */
  memory_mib: number
  /** Dirty rates to run, MiB/s. */
  dirty_rates_mib_per_s: number[]
  /** Bytes for the raw transport baseline, MiB. */
  raw_mib: number
  threads: number
  downtime_budget_ms: number
  round_cap: number
  seed: number
}

export const MIGRATION_BENCH_DEFAULTS: MigrationBenchOptions = {
  memory_mib: 128,
  dirty_rates_mib_per_s: [0, 25, 50, 100, 200, 400],
  raw_mib: 128,
  threads: Math.max(1, Math.min(4, availableParallelism() - 1)),
  downtime_budget_ms: DOWNTIME_BUDGET_MS_DEFAULT,
  round_cap: ROUND_CAP_DEFAULT,
  seed: 1,
}

export interface DirtyRateRow {
  dirty_mib_per_s: number
  outcome: string
  rounds: number
  throttle_pct_max: number
  switch_reason: string | null
  blackout_ms: number | null
  total_ms: number
  sent_mib: number
  model_rounds: number
  model_converges: boolean
  model_blackout_ms: number
  model_total_ms: number
}

export interface MigrationBenchReport {
  endpoints: 'in-process (PeerServer + connectPeer over loopback, one process)'
  node: string
  cpus: number
  threads: number
  memory_mib: number
  raw_transport_bytes_per_s: number
  migration_stream_bytes_per_s: number
  stream_result: Pick<MigrationResult, 'total_ms' | 'blackout_ms' | 'bytes_sent' | 'bytes_raw' | 'pages'>
  downtime_budget_ms: number
  round_cap: number
  rows: DirtyRateRow[]
}

interface Link {
  sender: PeerConnection
  receiverOnPeer: (handler: (c: PeerConnection) => void) => void
  close(): Promise<void>
}

/** A PeerServer and a client connection to it, in this process. */
async function openLink(onPeer: (c: PeerConnection) => void): Promise<Link> {
  const log = silentLogger()
  let handler = onPeer
  const server = await PeerServer.listen({ name: 'bench-dst', role: 'host', secret: SECRET, log, onPeer: (c) => handler(c) })
  const sender = await connectPeer({ endpoint: { host: '127.0.0.1', port: server.port }, name: 'bench-src', role: 'host', secret: SECRET, log })
  return {
    sender,
    receiverOnPeer: (h) => (handler = h),
    close: async () => {
      sender.terminate()
      await server.close()
    },
  }
}

/** The baseline: one-way 1 MiB frames over a PeerConnection, timed until the last arrives. */
async function measureRawTransport(raw_mib: number): Promise<number> {
  const frames = raw_mib
  let received = 0
  let done: () => void = () => undefined
  const allIn = new Promise<void>((resolve) => (done = resolve))
  const link = await openLink((c) => {
    c.onMessage('migration-pages', ({ attachment }) => {
      received += attachment.length
      if (received >= frames * MiB) done()
    })
  })
  try {
    const payload = randomFillSync(new Uint8Array(MiB))
    const start = performance.now()
    for (let i = 0; i < frames; i++) await link.sender.send({ t: 'migration-pages', migration_id: 'raw', round: 0, seq: i }, payload)
    await allIn
    return (received / (performance.now() - start)) * 1000
  } finally {
    await link.close()
  }
}

/** A source and a destination service over a fresh link, sharing the host's pool. */
async function withServices<T>(pool: PageDiffPool, work: (source: MigrationService, conn: PeerConnection) => Promise<T>): Promise<T> {
  const log = silentLogger()
  const destination = new MigrationService({ host: 'bench-dst', log, pool })
  const link = await openLink((c) => destination.attach(c))
  const source = new MigrationService({ host: 'bench-src', log, pool })
  try {
    return await work(source, link.sender)
  } finally {
    await link.close()
  }
}

function randomVm(name: string, mib: number): LabVm {
  const memory = GuestMemory.create((mib * MiB) / PAGE_SIZE_BYTES)
  for (let off = 0; off < memory.byte_length; off += 16 * MiB) randomFillSync(memory.bytes.subarray(off, Math.min(memory.byte_length, off + 16 * MiB)))
  return new LabVm({ name, memory })
}

export async function runMigrationBench(options: Partial<MigrationBenchOptions> = {}): Promise<MigrationBenchReport> {
  const o: MigrationBenchOptions = { ...MIGRATION_BENCH_DEFAULTS, ...options }
  const raw = await measureRawTransport(o.raw_mib)
  const pool = new PageDiffPool({ threads: o.threads })
  try {
    return await runMigrations(o, raw, pool)
  } finally {
    await pool.close()
  }
}

async function runMigrations(o: MigrationBenchOptions, raw: number, pool: PageDiffPool): Promise<MigrationBenchReport> {
  const stream = await withServices(pool, async (source, conn) => source.migrate(randomVm('bench-stream', o.memory_mib), conn).result)
  const round0 = stream.rounds[0]
  const streamRate = round0 ? (round0.bytes_sent / round0.duration_ms) * 1000 : 0

  const rows: DirtyRateRow[] = []
  const clock = new RealClock()
  for (const rate of o.dirty_rates_mib_per_s) {
    const result = await withServices(pool, async (source, conn) => {
      const vm = randomVm(`bench-${rate}`, o.memory_mib)
      const workload = new GuestWorkload(vm.memory, clock, { dirty_mib_per_s: rate, hot_fraction: 0.05, hot_write_share: 0.8, seed: o.seed })
      vm.workload = workload
      workload.start()
      try {
        return await source.migrate(vm, conn, { downtime_budget_ms: o.downtime_budget_ms, round_cap: o.round_cap }).result
      } finally {
        workload.stop()
      }
    })
    const model = modelPrecopy({
      memory_bytes: o.memory_mib * MiB,
      bandwidth_bytes_per_s: Math.max(1, streamRate),
      dirty_rate_bytes_per_s: rate * MiB,
      downtime_budget_ms: o.downtime_budget_ms,
      round_cap: o.round_cap,
    })
    rows.push({
      dirty_mib_per_s: rate,
      outcome: result.outcome,
      rounds: result.rounds.length,
      throttle_pct_max: result.throttle_pct_max,
      switch_reason: result.switch_reason,
      blackout_ms: result.blackout_ms,
      total_ms: result.total_ms,
      sent_mib: result.bytes_sent / MiB,
      model_rounds: model.precopy_rounds,
      model_converges: model.converges,
      model_blackout_ms: model.blackout_ms,
      model_total_ms: model.total_ms,
    })
  }
  return {
    endpoints: 'in-process (PeerServer + connectPeer over loopback, one process)',
    node: process.version,
    cpus: availableParallelism(),
    threads: o.threads,
    memory_mib: o.memory_mib,
    raw_transport_bytes_per_s: raw,
    migration_stream_bytes_per_s: streamRate,
    stream_result: { total_ms: stream.total_ms, blackout_ms: stream.blackout_ms, bytes_sent: stream.bytes_sent, bytes_raw: stream.bytes_raw, pages: stream.pages },
    downtime_budget_ms: o.downtime_budget_ms,
    round_cap: o.round_cap,
    rows,
  }
}

const fmt = (v: number | null, digits = 1): string => (v === null ? '-' : v.toFixed(digits))

export function formatMigrationReport(r: MigrationBenchReport): string {
  const lines: string[] = []
  lines.push(`live migration, ${r.endpoints}; ${r.cpus} CPUs, ${r.threads} diff threads, node ${r.node}`)
  lines.push(`${'what'.padEnd(48)} ${'MiB/s'.padStart(9)}`)
  lines.push(`${'raw transport (1 MiB frames over PeerConnection)'.padEnd(48)} ${(r.raw_transport_bytes_per_s / MiB).toFixed(0).padStart(9)}`)
  lines.push(`${`migration stream (round 0, ${r.memory_mib} MiB random)`.padEnd(48)} ${(r.migration_stream_bytes_per_s / MiB).toFixed(0).padStart(9)}`)
  lines.push('')
  lines.push(`${r.memory_mib} MiB VM under load (5% of pages take 80% of writes), budget ${r.downtime_budget_ms} ms, cap ${r.round_cap} rounds; model at the stream's rate`)
  lines.push(
    `${'dirty MiB/s'.padStart(11)} ${'outcome'.padStart(10)} ${'rounds'.padStart(6)} ${'thr %'.padStart(5)} ${'blackout ms'.padStart(11)} ${'total ms'.padStart(9)} ${'sent MiB'.padStart(8)} │ ${'model rounds'.padStart(12)} ${'fits'.padStart(4)} ${'blackout ms'.padStart(11)} ${'total ms'.padStart(9)}`,
  )
  for (const x of r.rows) {
    lines.push(
      `${String(x.dirty_mib_per_s).padStart(11)} ${x.outcome.padStart(10)} ${String(x.rounds).padStart(6)} ${String(x.throttle_pct_max).padStart(5)} ${fmt(x.blackout_ms).padStart(11)} ${fmt(x.total_ms, 0).padStart(9)} ${fmt(x.sent_mib, 0).padStart(8)} │ ${String(x.model_rounds).padStart(12)} ${(x.model_converges ? 'yes' : 'NO').padStart(4)} ${fmt(x.model_blackout_ms).padStart(11)} ${fmt(x.model_total_ms, 0).padStart(9)}`,
    )
  }
  return lines.join('\n')
}
