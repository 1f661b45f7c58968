/**
 * `npm run bench`: measures the hot paths next to a baseline measured in the same run,
 * prints the tables and writes them as JSON. Tests never assert speed; this does not
 * either — it reports. Each part is a section: it runs when its option asks, prints its
 * table, and lands in the JSON under its key (a new benchmark, such as `--scale`, is one
 * more option and one more entry of `sections`).
 */
import { mkdirSync, writeFileSync } from 'node:fs'
import { dirname } from 'node:path'
import { Command, InvalidArgumentError } from 'commander'
import { formatBlackoutReport, runBlackoutBench } from './blackout.js'
import { formatMigrationReport, runMigrationBench } from './migration.js'
import { formatReport, runPageDiffBench } from './page-diff.js'
import { formatScaleReport, runScaleBench } from './scale.js'
import { formatSmallMessageReport, runSmallMessageBench } from './small-messages.js'
import { formatTargets, targetRows, type TargetInputs } from './targets.js'
import type { BlackoutBenchReport } from './blackout.js'
import type { MigrationBenchReport } from './migration.js'
import type { PageDiffBenchReport } from './page-diff.js'

const int =
  (min: number, max: number) =>
  (v: string): number => {
    const n = Number(v)
    if (!Number.isInteger(n) || n < min || n > max) throw new InvalidArgumentError(`an integer ${min}–${max}`)
    return n
  }

const program = new Command('hvlab-bench')
  .description(
    'benchmarks: page diff (1, 2, N workers vs native Buffer.compare), the pre-copy model, live migration (stream vs raw WebSocket; blackout across dirty rates vs the model; both hosts’ event-loop lag during it next to idle), the blackout as a client sees it (a small lab: a 256 MiB VM dirtying 50 MiB/s live-migrated back and forth within a site while a client pings it every 2 ms: reported blackout vs the client’s longest gap), the CPU of one heartbeat and one small request end to end, and with --scale a whole lab: up time, idle CPU, view changes (with --vms N also N VMs created and started through the CLI, and `vm list` timed); it ends with issue 15’s targets, each next to its baseline from the same run',
  )
  .option('--out <file>', 'where to write the JSON results', 'bench-results/latest.json')
  .option('--mib <n>', 'guest memory to scan, MiB', int(1, 4096), 256)
  .option('--reps <n>', 'timed repetitions per measurement after one warm-up run (best and median reported)', int(1, 100), 3)
  .option('--bandwidth-mib-s <n>', 'link bandwidth for the pre-copy model, MiB/s', int(1, 1_000_000), 1200)
  .option('--seed <n>', 'seed of the synthetic page mix', int(0, 0xffff_ffff), 1)
  .option('--vm-mib <n>', 'VM memory, MiB: of the migration runs (default 128) and of the --scale --vms VMs (default 32)', int(16, 4096))
  .option('--no-migration', 'skip the live-migration benchmark')
  .option('--only-migration-stream', 'run the live-migration benchmark alone, without its dirty-rate runs (raw transport vs stream)')
  .option('--endpoint-cpu-prof <dir>', 'write V8 CPU profiles of the two migration endpoint processes into this directory')
  .option('--no-blackout', 'skip the client-blackout benchmark (it starts a small lab of five processes)')
  .option('--only-blackout', 'run the client-blackout benchmark alone')
  .option('--blackout-migrations <n>', 'live migrations of the client-blackout benchmark, back and forth', int(1, 100), 3)
  .option(
    '--blackout-budget-ms <n>',
    "the client-blackout benchmark's downtime budget (vm migrate --budget-ms; default: the migration's own)",
    int(1, 60_000),
  )
  .option('--scale [topology]', 'also start a whole lab (default topologies/scale-16.json) and measure up time, idle CPU and view changes')
  .option('--idle-s <n>', 'how long the --scale lab idles while its CPU is measured, seconds', int(5, 3600), 60)
  .option('--only-scale', 'run the --scale benchmark alone (implies --scale)')
  .option('--vms <n>', 'with --scale: VMs to create and start through the CLI before idling (vm list timed too)', int(0, 10_000), 0)
  .parse()

type Options = {
  out: string
  mib: number
  reps: number
  bandwidthMibS: number
  seed: number
  vmMib?: number
  migration: boolean
  blackout: boolean
  blackoutMigrations: number
  blackoutBudgetMs?: number
  onlyBlackout?: boolean
  scale?: string | true
  idleS: number
  vms: number
  onlyScale?: boolean
  onlyMigrationStream?: boolean
  endpointCpuProf?: string
}
const o = program.opts<Options>()
/** One benchmark asked for alone: the others do not run. */
const only = o.onlyScale === true || o.onlyMigrationStream === true || o.onlyBlackout === true

/** One part of the run: its key in the JSON, whether the options ask for it, how it runs and prints. */
interface Section<R> {
  key: string
  wanted: boolean
  run(): Promise<R>
  format(report: R): string
}
const section = <R>(s: Section<R>): Section<unknown> => s as Section<unknown>

const sections: Section<unknown>[] = [
  section({
    key: 'pageDiff',
    wanted: !only,
    run: () => runPageDiffBench({ memory_mib: o.mib, reps: o.reps, bandwidth_mib_per_s: o.bandwidthMibS, seed: o.seed }),
    format: formatReport,
  }),
  section({
    key: 'migration',
    wanted: (o.migration && !only) || o.onlyMigrationStream === true,
    run: () =>
      runMigrationBench({
        memory_mib: o.vmMib ?? 128,
        reps: o.reps,
        cpu_prof_dir: o.endpointCpuProf ?? null,
        ...(o.onlyMigrationStream ? { dirty_rates_mib_per_s: [] } : {}),
      }),
    format: formatMigrationReport,
  }),
  section({
    key: 'blackout',
    wanted: (o.blackout && !only) || o.onlyBlackout === true,
    run: () => runBlackoutBench({ migrations: o.blackoutMigrations, budget_ms: o.blackoutBudgetMs ?? null }),
    format: formatBlackoutReport,
  }),
  section({
    key: 'smallMessages',
    wanted: !only,
    run: () => runSmallMessageBench({ messages: 20_000, reps: o.reps }),
    format: formatSmallMessageReport,
  }),
  section({
    key: 'scale',
    wanted: o.scale !== undefined || o.onlyScale === true,
    run: () =>
      runScaleBench({
        topology: o.scale === true || o.scale === undefined ? 'topologies/scale-16.json' : o.scale,
        idle_s: o.idleS,
        vms: o.vms,
        vm_mib: o.vmMib ?? 32,
      }),
    format: formatScaleReport,
  }),
]

const results: Record<string, unknown> = { at: new Date().toISOString() }
for (const [i, s] of sections.entries()) {
  if (!s.wanted) {
    results[s.key] = null
    continue
  }
  const report = await s.run()
  process.stdout.write((i > 0 ? '\n' : '') + s.format(report) + '\n')
  results[s.key] = report
}
/** Issue 15's figures from the sections that ran (null for one that did not). */
function targetInputs(r: Record<string, unknown>): TargetInputs {
  const pd = r['pageDiff'] as PageDiffBenchReport | null | undefined
  const mig = r['migration'] as MigrationBenchReport | null | undefined
  const bo = r['blackout'] as BlackoutBenchReport | null | undefined
  return {
    page_diff: pd
      ? {
          full_scan_gb_per_s: pd.full_scan_gb_per_s,
          pool_1_thread_gb_per_s: pd.ratios.pool_1_thread_gb_per_s,
          pool_2_threads_gb_per_s: pd.ratios.pool_2_threads_gb_per_s,
          full_scan_1_worker_gb_per_s: pd.full_scan_1_worker_gb_per_s,
          full_scan_2_workers_gb_per_s: pd.full_scan_2_workers_gb_per_s,
        }
      : null,
    stream: mig
      ? {
          raw_bytes_per_s: mig.raw_transport_bytes_per_s.median,
          stream_bytes_per_s: mig.migration_stream_bytes_per_s.median,
          stream_with_setup_bytes_per_s: mig.migration_stream_with_setup_bytes_per_s.median,
        }
      : null,
    blackout: bo
      ? {
          client_gap_ms_max: bo.summary.client_gap_ms_max,
          lost: bo.summary.pings_lost,
          reported_vs_client_ms_max: bo.summary.reported_vs_client_ms_max,
        }
      : null,
  }
}

const targets = targetRows(targetInputs(results))
process.stdout.write('\n' + formatTargets(targets) + '\n')
results['targets'] = targets
mkdirSync(dirname(o.out), { recursive: true })
writeFileSync(o.out, JSON.stringify(results, null, 2) + '\n')
process.stdout.write(`\nwrote ${o.out}\n`)
