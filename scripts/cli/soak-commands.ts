/**
 * `hvlab soak run` (what `npm run soak -- …` runs) and `hvlab soak report DIR`: a seeded
 * soak against a lab of its own, and the report of a recorded history (JSON, Markdown and
 * an HTML page in DIR). Both exit 1 when the checker found a violation, printing the seed
 * and the command that reproduces the run. Everything is checked before anything starts.
 */
import { Command } from 'commander'
import { join, resolve } from 'node:path'
import { setExitCode } from './cli-io.js'
import { intIn, numberIn, out } from './options.js'

/** The longest soak: a week. */
const SOAK_MINUTES_MAX = 7 * 24 * 60
const SOAK_VMS_MAX = 32
const SOAK_VMS_DEFAULT = 4

interface SoakRunOptions {
  minutes: number
  seed?: number
  topology?: string
  faults?: string
  vms: number
  dir?: string
}

export function registerSoakCommands(program: Command): void {
  const soak = program
    .command('soak')
    .description('random faults from a seed against a lab of its own, and a checker that proves what the lab promises')
  soak
    .command('run')
    .description(
      'start a lab in DIR/lab, create VMs under memory and disk load, ping each, inject seeded faults (fault, hold, heal, quiet) and operator actions for --minutes, then check the history and write the report into DIR; exit 1 on any violation',
    )
    .requiredOption('--minutes <n>', `how long faults are injected (0.1–${SOAK_MINUTES_MAX})`, numberIn(0.1, SOAK_MINUTES_MAX))
    .option('--seed <n>', 'the seed of the fault schedule (default: drawn now, and printed)', intIn(0, 2 ** 31 - 1))
    .option('--topology <file>', 'topology file (JSON); default: topologies/two-site.json')
    .option(
      '--faults <list>',
      'comma-separated faults to draw from: kill,pause,partition,wan,clock,array-kill,witness-kill,disk (default: all)',
    )
    .option('--vms <n>', `VMs to run (1–${SOAK_VMS_MAX})`, intIn(1, SOAK_VMS_MAX), SOAK_VMS_DEFAULT)
    .option('--dir <dir>', 'where the lab, the history and the report go (default: ./soak-<seed>); must not hold a running lab')
    .action(soakRun)
  soak
    .command('report')
    .description(
      'check a recorded soak history (DIR/history.jsonl) again and write report.json, report.md and report.html into DIR; exit 1 on any violation',
    )
    .argument('<dir>', 'the data dir of a soak run (its --dir)')
    .option('--json', 'print the report as JSON instead of its Markdown')
    .action(soakReport)
}

async function soakRun(o: SoakRunOptions): Promise<void> {
  const { parseFaultList, FAULT_KINDS } = await import('../soak/fault-schedule.js')
  const { loadTopology, DEFAULT_TOPOLOGY_FILE } = await import('../../shared/topology.js')
  const faults = parseFaultList(o.faults ?? FAULT_KINDS.join(','))
  const topologyFile = resolve(o.topology ?? DEFAULT_TOPOLOGY_FILE)
  const topology = loadTopology(topologyFile) // a bad topology: a clear error, nothing started
  const seed = o.seed ?? Math.floor(Math.random() * 2 ** 31)
  const dir = resolve(o.dir ?? `soak-${seed}`)
  const reproduce = [
    'npm run soak --',
    `--minutes ${o.minutes}`,
    `--seed ${seed}`,
    `--faults ${faults.join(',')}`,
    `--vms ${o.vms}`,
    ...(o.topology ? [`--topology ${o.topology}`] : []),
  ].join(' ')
  const { runSoak } = await import('../soak/soak-runner.js')
  out(`soak: seed ${seed}, ${o.minutes} min, faults ${faults.join(',')}, ${o.vms} VMs, data in ${dir}`)
  await runSoak({ minutes: o.minutes, seed, topologyFile, topology, faults, vms: o.vms, dir, reproduce, progress: (l) => out(l) })
  await reportOn(dir, false)
}

async function soakReport(dir: string, o: { json?: boolean }): Promise<void> {
  await reportOn(resolve(dir), o.json === true)
}

/** Checks DIR's history, writes its report there, prints the verdict (or the JSON), and sets the exit code. */
async function reportOn(dir: string, json: boolean): Promise<void> {
  const { readHistory, HISTORY_FILE } = await import('../soak/history.js')
  const { checkHistory } = await import('../soak/checker.js')
  const { writeReport, reportMarkdown } = await import('../soak/report-render.js')
  const report = checkHistory(await readHistory(join(dir, HISTORY_FILE)))
  const files = writeReport(dir, report)
  if (json) out(JSON.stringify(report, null, 2))
  else out(`${reportMarkdown(report)}\nreport: ${files.markdown}, ${files.html}, ${files.json}`)
  if (report.verdict === 'fail') {
    if (!json) out(`FAILED: ${report.summary.violations} violation(s); seed ${report.seed}; reproduce with: ${report.reproduce}`)
    setExitCode(1)
  }
}
