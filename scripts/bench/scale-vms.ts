/**
 * The VM part of the scale benchmark (issue 12: "200 running VMs (32 MiB each)"): on a lab
 * that is up, creates and starts N VMs through the real CLI as a user would script it — a
 * few `hvlab vm create` / `hvlab vm start` processes at once (the CLI has no batch verb),
 * VM i preferring host i mod H so they spread over every host — and measures the wall
 * time until all of them run, then the wall time of `hvlab vm list` with them all there.
 *
 * A command that fails is counted and its message kept for people; the run goes on, so
 * the report says how many VMs run rather than stopping at the first refusal.
 */
import { hvlab } from './hvlab-cli.js'

/** How many CLI processes run at once: what `xargs -P` in a user's script would use on a small machine. */
export const CLI_PARALLEL_DEFAULT = 4
/** `hvlab vm list` runs timed (the median is reported). */
const VM_LIST_RUNS = 5
/** Error messages kept in the report. */
const ERRORS_KEPT = 5

export interface VmPopulationOptions {
  /** How many VMs to create and start. */
  vms: number
  /** Guest memory of each, MiB. */
  vm_mib: number
  /** CLI processes at once. */
  cli_parallel: number
}

export interface VmPopulationReport {
  vms: number
  vm_mib: number
  cli_parallel: number
  /** Wall time of every `vm create`, from the first started to the last returned, seconds. */
  create_s: number
  /** Wall time of every `vm start` (each waits until its VM runs), seconds. */
  start_s: number
  /** create_s + start_s: from the first create until all N run. */
  create_and_start_s: number
  /** VMs `vm list --json` shows running once every start returned. */
  running: number
  /** VMs running on the host with the fewest and the one with the most. */
  running_per_host_min: number
  running_per_host_max: number
  /** CLI commands that exited non-zero, and the first few of their messages. */
  failed_commands: number
  first_errors: string[]
  /** Wall time of `hvlab vm list` (the CLI process, start-up included): median and slowest of the runs. */
  vm_list_median_s: number
  vm_list_max_s: number
  vm_list_runs: number
  /** Rows `vm list --json` returned. */
  vm_list_rows: number
}

interface ListedRole {
  name: string
  state: string
  owner: string | null
}

/** The VM names of a run: scale-vm-001, … (sorted as they were created). */
export function vmNames(count: number): string[] {
  const width = String(count).length
  return Array.from({ length: count }, (_, i) => `scale-vm-${String(i + 1).padStart(width, '0')}`)
}

/** Runs `work` on every item with at most `parallel` of them at once. */
async function inPool<T>(items: readonly T[], parallel: number, work: (item: T, index: number) => Promise<void>): Promise<void> {
  let next = 0
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++
      await work(items[i]!, i)
    }
  }
  await Promise.all(Array.from({ length: Math.max(1, Math.min(parallel, items.length)) }, worker))
}

/** Collects the failures of many CLI commands: a count and the first few messages. */
class Failures {
  count = 0
  readonly first: string[] = []
  async run(args: string[]): Promise<void> {
    try {
      await hvlab(args)
    } catch (e) {
      this.count++
      const err = e as { stderr?: string; message?: string }
      if (this.first.length < ERRORS_KEPT)
        this.first.push(`hvlab ${args.slice(0, 3).join(' ')}: ${(err.stderr || err.message || String(e)).trim()}`)
    }
  }
}

/** Wall seconds of `body`. */
async function timed(body: () => Promise<void>): Promise<number> {
  const start_ms = performance.now()
  await body()
  return (performance.now() - start_ms) / 1000
}

const round = (x: number, digits: number): number => Number(x.toFixed(digits))

/** Creates and starts `opts.vms` VMs on the lab in `dir` (hosts `hosts`), then times `vm list`. */
export async function populateVms(dir: string, hosts: readonly string[], opts: VmPopulationOptions): Promise<VmPopulationReport> {
  const names = vmNames(opts.vms)
  const failures = new Failures()
  const create = ['--memory-mib', String(opts.vm_mib), '--dir', dir]
  const create_s = await timed(() =>
    inPool(names, opts.cli_parallel, (name, i) => failures.run(['vm', 'create', name, '--preferred', hosts[i % hosts.length]!, ...create])),
  )
  const start_s = await timed(() => inPool(names, opts.cli_parallel, (name) => failures.run(['vm', 'start', name, '--dir', dir])))
  const list = await timeVmList(dir)
  const running = list.roles.filter((r) => r.state === 'running')
  const perHost = hosts.map((h) => running.filter((r) => r.owner === h).length)
  return {
    vms: opts.vms,
    vm_mib: opts.vm_mib,
    cli_parallel: opts.cli_parallel,
    create_s: round(create_s, 2),
    start_s: round(start_s, 2),
    create_and_start_s: round(create_s + start_s, 2),
    running: running.length,
    running_per_host_min: Math.min(...perHost),
    running_per_host_max: Math.max(...perHost),
    failed_commands: failures.count,
    first_errors: failures.first,
    vm_list_median_s: list.median_s,
    vm_list_max_s: list.max_s,
    vm_list_runs: VM_LIST_RUNS,
    vm_list_rows: list.roles.length,
  }
}

/** `hvlab vm list` timed VM_LIST_RUNS times as a user types it, then once with --json for its rows. */
async function timeVmList(dir: string): Promise<{ median_s: number; max_s: number; roles: ListedRole[] }> {
  const walls_s: number[] = []
  for (let i = 0; i < VM_LIST_RUNS; i++) walls_s.push(await timed(async () => void (await hvlab(['vm', 'list', '--dir', dir]))))
  walls_s.sort((a, b) => a - b)
  const listed = JSON.parse(await hvlab(['vm', 'list', '--json', '--dir', dir])) as { roles: ListedRole[] }
  return { median_s: round(walls_s[Math.floor(walls_s.length / 2)]!, 3), max_s: round(walls_s.at(-1)!, 3), roles: listed.roles }
}

/** The report's VM lines for formatScaleReport. */
export function formatVmPopulation(v: VmPopulationReport): string[] {
  const errors = v.first_errors.map((e) => `    ${e.split('\n')[0]}`)
  return [
    `  ${v.vms} VMs of ${v.vm_mib} MiB, ${v.cli_parallel} CLI processes at once`,
    `    vm create, all                       ${v.create_s} s`,
    `    vm start, all (each until it runs)   ${v.start_s} s`,
    `    created and started                  ${v.create_and_start_s} s; ${v.running} of ${v.vms} running (${v.running_per_host_min}–${v.running_per_host_max} per host)`,
    `    vm list (wall, CLI start included)   median ${v.vm_list_median_s} s, slowest ${v.vm_list_max_s} s of ${v.vm_list_runs}; ${v.vm_list_rows} rows`,
    ...(v.failed_commands > 0 ? [`    ${v.failed_commands} CLI commands failed; the first:`, ...errors] : []),
  ]
}
