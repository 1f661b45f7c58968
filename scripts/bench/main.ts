/**
 * `npm run bench`: measures the hot paths next to a baseline measured in the same run,
 * prints the tables and writes them as JSON. Tests never assert speed; this does not
 * either — it reports.
 */
import { mkdirSync, writeFileSync } from 'node:fs'
import { dirname } from 'node:path'
import { Command, InvalidArgumentError } from 'commander'
import { formatMigrationReport, runMigrationBench } from './migration.js'
import { formatReport, runPageDiffBench } from './page-diff.js'

const int =
  (min: number, max: number) =>
  (v: string): number => {
    const n = Number(v)
    if (!Number.isInteger(n) || n < min || n > max) throw new InvalidArgumentError(`an integer ${min}–${max}`)
    return n
  }

const program = new Command('hvlab-bench')
  .description(
    'benchmarks: page diff (1, 2, N workers vs native Buffer.compare), the pre-copy model, and live migration (stream vs raw WebSocket; blackout across dirty rates vs the model)',
  )
  .option('--out <file>', 'where to write the JSON results', 'bench-results/latest.json')
  .option('--mib <n>', 'guest memory to scan, MiB', int(1, 4096), 256)
  .option('--reps <n>', 'timed repetitions per measurement after one warm-up run (best and median reported)', int(1, 100), 3)
  .option('--bandwidth-mib-s <n>', 'link bandwidth for the pre-copy model, MiB/s', int(1, 1_000_000), 1200)
  .option('--seed <n>', 'seed of the synthetic page mix', int(0, 0xffff_ffff), 1)
  .option('--vm-mib <n>', 'VM memory for the migration runs, MiB', int(16, 4096), 128)
  .option('--no-migration', 'skip the live-migration benchmark')
  .parse()

const o = program.opts<{ out: string; mib: number; reps: number; bandwidthMibS: number; seed: number; vmMib: number; migration: boolean }>()
const pageDiff = await runPageDiffBench({ memory_mib: o.mib, reps: o.reps, bandwidth_mib_per_s: o.bandwidthMibS, seed: o.seed })
process.stdout.write(formatReport(pageDiff) + '\n')
const migration = o.migration ? await runMigrationBench({ memory_mib: o.vmMib, reps: o.reps }) : null
if (migration) process.stdout.write('\n' + formatMigrationReport(migration) + '\n')
mkdirSync(dirname(o.out), { recursive: true })
writeFileSync(o.out, JSON.stringify({ at: new Date().toISOString(), pageDiff, migration }, null, 2) + '\n')
process.stdout.write(`\nwrote ${o.out}\n`)
