/**
 * Benchmark of a lab at scale (issue 12): starts a topology with `hvlab up --detach`, as a
 * user does, and measures how long until its cluster has formed, the CPU every process of
 * the lab (controller included) uses while it idles, and how many `cluster.view-changed`
 * events formation produced; then stops the lab with `hvlab down`, whatever happened (a
 * failure, Ctrl-C or SIGTERM).
 * With `vms` > 0 it first creates and starts that many VMs through the CLI and times
 * `hvlab vm list` (scale-vms.ts), so the idle figures are those of a lab that runs them.
 *
 * CPU is read from /proc/<pid>/stat (utime + stime of each process, worker threads
 * included), so it runs on Linux only. Numbers are for reading, never for asserting in tests.
 */
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { LabStatus } from '../controller/lab-controller.js'
import { hvlab } from './hvlab-cli.js'
import { CLI_PARALLEL_DEFAULT, formatVmPopulation, populateVms, type VmPopulationReport } from './scale-vms.js'

/** Clock ticks per second of /proc's utime and stime (USER_HZ): 100 on every Linux build that matters. */
const CLOCK_TICKS_PER_S = 100
const DOWN_WAIT_MS = 15_000

export interface ScaleBenchOptions {
  /** The topology file to start. */
  topology: string
  /** How long the lab idles while its CPU is measured, seconds. */
  idle_s: number
  /** The lab's data dir; default a new temporary one, removed afterwards. */
  dir?: string
  /** VMs to create and start before idling (default 0: none). */
  vms?: number
  /** Guest memory of each, MiB (default 32). */
  vm_mib?: number
  /** CLI processes at once while creating and starting them (default CLI_PARALLEL_DEFAULT). */
  cli_parallel?: number
}

export interface ScaleBenchReport {
  topology: string
  processes: number
  hosts: number
  /** Wall time of `hvlab up --detach`, until every process is healthy and the cluster formed. */
  up_s: number
  /** CPU the lab's processes had used when `up` returned, seconds. */
  cpu_at_ready_s: number
  /** The VMs created and started after `up` (null when none were asked for). */
  vms: VmPopulationReport | null
  /** CPU the lab's processes used while the VMs were created, started and listed, seconds (0 without VMs). */
  cpu_during_vms_s: number
  /** `cluster.view-changed` events while the VMs were created, started and listed (0 without VMs). */
  view_changes_during_vms: number
  idle_s: number
  /** CPU of every lab process over the idle window, as a share of one core (100 = one core busy). */
  idle_cpu_percent_of_core: number
  /**
   * The same from the scheduler's own count of time on a CPU (/proc/<pid>/task/<tid>/schedstat,
   * in ns): utime and stime are sampled at the clock tick, which misreads a process that
   * runs in many short bursts, as an idle lab does.
   */
  idle_cpu_scheduler_percent_of_core: number
  /**
   * Times per second the lab's threads went to sleep waiting (voluntary context switches,
   * every thread of every process): how often the lab wakes, which an idle lab's CPU follows.
   */
  idle_wakes_per_s: number
  /** The same, per process, highest first. */
  idle_cpu_by_process: { name: string; percent_of_core: number }[]
  /** `cluster.view-changed` events when `up` returned (each host emits its own). */
  view_changes_at_ready: number
  /** The most any one host emitted by then. */
  view_changes_per_host_max: number
  /** `cluster.view-changed` events during the idle window (0 when the cluster is steady). */
  view_changes_while_idle: number
}

interface LabProcessPid {
  name: string
  pid: number
}

/** utime + stime of one process in seconds; 0 when it has gone. */
function cpuSecondsOf(pid: number): number {
  let stat: string
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  } catch {
    return 0
  }
  // The command name (field 2) may hold spaces; the fields after its closing parenthesis are fixed.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS_PER_S
}

/** Per thread of one process, summed: its voluntary context switches and its ns on a CPU (schedstat); 0 when it has gone. */
function threadsOf(pid: number): { wakes: number; on_cpu_s: number } {
  let wakes = 0
  let on_cpu_ns = 0
  try {
    for (const task of readdirSync(`/proc/${pid}/task`)) {
      const status = readFileSync(`/proc/${pid}/task/${task}/status`, 'utf8')
      wakes += Number(/^voluntary_ctxt_switches:\s+(\d+)/m.exec(status)?.[1] ?? 0)
      on_cpu_ns += Number(readFileSync(`/proc/${pid}/task/${task}/schedstat`, 'utf8').split(' ')[0])
    }
  } catch {
    // the process (or a thread) ended meanwhile: what was read counts
  }
  return { wakes, on_cpu_s: on_cpu_ns / 1e9 }
}

const sum = (xs: number[]): number => xs.reduce((a, b) => a + b, 0)

function labPids(status: LabStatus): LabProcessPid[] {
  const children = status.processes.flatMap((p) => (p.pid === null ? [] : [{ name: p.name, pid: p.pid }]))
  return [{ name: 'controller', pid: status.lab.controllerPid }, ...children]
}

interface ViewChange {
  seq: number
  source: string
}

/**
 * Every `cluster.view-changed` event of the lab's timeline, read once the lab is down: from
 * its files, which hold every event (a running lab's controller answers from memory, which
 * keeps only the newest 10,000 events, fewer than 200 VMs make).
 */
async function viewChanges(dir: string): Promise<ViewChange[]> {
  return jsonLines<ViewChange>(await hvlab(['events', '--dir', dir, '--json', '--kind', 'cluster.view-changed']))
}

/** The timeline's newest sequence number now (0 while it is empty). */
async function lastSeq(dir: string): Promise<number> {
  return jsonLines<{ seq: number }>(await hvlab(['events', '--dir', dir, '--json', '--tail', '1'])).at(-1)?.seq ?? 0
}

function jsonLines<T>(text: string): T[] {
  return text
    .split('\n')
    .filter((l) => l.trim().length > 0)
    .map((l) => JSON.parse(l) as T)
}

function perSourceMax(events: ViewChange[]): number {
  const counts = new Map<string, number>()
  for (const e of events) counts.set(e.source, (counts.get(e.source) ?? 0) + 1)
  return Math.max(0, ...counts.values())
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))
const round = (x: number, digits: number): number => Number(x.toFixed(digits))

async function waitGone(pid: number): Promise<void> {
  const deadline = Date.now() + DOWN_WAIT_MS
  while (existsSync(`/proc/${pid}`) && Date.now() < deadline) await sleep(100)
}

/** Starts the lab, (with opts.vms) creates and starts VMs, measures it idle, stops it (always). */
export async function runScaleBench(opts: ScaleBenchOptions): Promise<ScaleBenchReport> {
  if (process.platform !== 'linux') throw new Error('the scale benchmark reads /proc and runs on Linux only')
  const dir = opts.dir ?? mkdtempSync(join(tmpdir(), 'hvlab-scale-'))
  const started_ms = Date.now()
  let controllerPid: number | undefined
  // The lab runs detached: a bench stopped by Ctrl-C or kill stops it too, not only one that fails.
  const stopLab = (signal: NodeJS.Signals): void =>
    void hvlab(['down', '--dir', dir])
      .catch(() => undefined)
      .finally(() => {
        if (opts.dir === undefined) rmSync(dir, { recursive: true, force: true })
        process.exit(signal === 'SIGINT' ? 130 : 143)
      })
  process.once('SIGINT', stopLab).once('SIGTERM', stopLab)
  try {
    const ready = JSON.parse(await hvlab(['up', '--detach', '--json', '--topology', opts.topology, '--dir', dir])) as LabStatus
    const up_s = (Date.now() - started_ms) / 1000
    controllerPid = ready.lab.controllerPid
    const atReady = await snapshot(dir, labPids(ready))
    const vms = await runVms(opts, dir, ready)
    const idle = await measureIdle(opts, dir, labPids(ready))
    await hvlab(['down', '--dir', dir])
    return scaleReport(ready, { up_s, atReady, vms, idle }, await viewChanges(dir))
  } finally {
    process.off('SIGINT', stopLab).off('SIGTERM', stopLab)
    await hvlab(['down', '--dir', dir]).catch(() => undefined) // already down unless something failed
    if (controllerPid !== undefined) await waitGone(controllerPid)
    if (opts.dir === undefined) rmSync(dir, { recursive: true, force: true })
  }
}

/** The lab at one moment: the timeline's newest event and the CPU its processes had used. */
interface LabSnapshot {
  seq: number
  cpu_s: number
}

async function snapshot(dir: string, pids: LabProcessPid[]): Promise<LabSnapshot> {
  return { seq: await lastSeq(dir), cpu_s: sum(pids.map((p) => cpuSecondsOf(p.pid))) }
}

/** Creates and starts opts.vms VMs (none: null), spreading them over the lab's hosts. */
async function runVms(opts: ScaleBenchOptions, dir: string, ready: LabStatus): Promise<VmPopulationReport | null> {
  if (opts.vms === undefined || opts.vms === 0) return null
  const hosts = ready.processes.filter((p) => p.role === 'host').map((p) => p.name)
  return populateVms(dir, hosts, { vms: opts.vms, vm_mib: opts.vm_mib ?? 32, cli_parallel: opts.cli_parallel ?? CLI_PARALLEL_DEFAULT })
}

/** The idle window: the lab at its start, the timeline's newest event at its end, and the CPU in between. */
interface IdleFigures {
  start: LabSnapshot
  end_seq: number
  window_s: number
  cpu_percent_of_core: number
  cpu_scheduler_percent_of_core: number
  wakes_per_s: number
  cpu_by_process: { name: string; percent_of_core: number }[]
}

async function measureIdle(opts: ScaleBenchOptions, dir: string, pids: LabProcessPid[]): Promise<IdleFigures> {
  const start = await snapshot(dir, pids)
  const before = pids.map((p) => cpuSecondsOf(p.pid))
  const threadsBefore = pids.map((p) => threadsOf(p.pid))
  const idleStart_ms = Date.now()
  await sleep(opts.idle_s * 1000)
  const after = pids.map((p) => cpuSecondsOf(p.pid))
  const threadsAfter = pids.map((p) => threadsOf(p.pid))
  const delta = (k: 'wakes' | 'on_cpu_s'): number => sum(threadsAfter.map((t) => t[k])) - sum(threadsBefore.map((t) => t[k]))
  const window_s = (Date.now() - idleStart_ms) / 1000
  const percent = (cpu_s: number): number => round((100 * cpu_s) / window_s, 1)
  const byProcess = pids.map((p, i) => ({ name: p.name, percent_of_core: percent(after[i]! - before[i]!) }))
  return {
    start,
    end_seq: await lastSeq(dir),
    window_s,
    cpu_percent_of_core: percent(sum(after) - sum(before)),
    cpu_scheduler_percent_of_core: percent(delta('on_cpu_s')),
    wakes_per_s: Math.round(delta('wakes') / window_s),
    cpu_by_process: byProcess.sort((a, b) => b.percent_of_core - a.percent_of_core),
  }
}

/** What the run measured, before the timeline is read. */
interface Measured {
  up_s: number
  atReady: LabSnapshot
  vms: VmPopulationReport | null
  idle: IdleFigures
}

function scaleReport(ready: LabStatus, m: Measured, views: ViewChange[]): ScaleBenchReport {
  const within = (after: number, upTo: number): ViewChange[] => views.filter((v) => v.seq > after && v.seq <= upTo)
  const atReady = within(0, m.atReady.seq)
  return {
    topology: ready.lab.name,
    processes: labPids(ready).length,
    hosts: ready.processes.filter((p) => p.role === 'host').length,
    up_s: round(m.up_s, 2),
    cpu_at_ready_s: round(m.atReady.cpu_s, 2),
    vms: m.vms,
    cpu_during_vms_s: m.vms === null ? 0 : round(m.idle.start.cpu_s - m.atReady.cpu_s, 2),
    view_changes_during_vms: within(m.atReady.seq, m.idle.start.seq).length,
    idle_s: round(m.idle.window_s, 1),
    idle_cpu_percent_of_core: m.idle.cpu_percent_of_core,
    idle_cpu_scheduler_percent_of_core: m.idle.cpu_scheduler_percent_of_core,
    idle_wakes_per_s: m.idle.wakes_per_s,
    idle_cpu_by_process: m.idle.cpu_by_process,
    view_changes_at_ready: atReady.length,
    view_changes_per_host_max: perSourceMax(atReady),
    view_changes_while_idle: within(m.idle.start.seq, m.idle.end_seq).length,
  }
}

export function formatScaleReport(r: ScaleBenchReport): string {
  const top = r.idle_cpu_by_process
    .slice(0, 5)
    .map((p) => `${p.name} ${p.percent_of_core}%`)
    .join(', ')
  return [
    `Scale: topology ${r.topology}, ${r.hosts} hosts, ${r.processes} processes (controller included)`,
    `  up --detach until the cluster formed   ${r.up_s} s (lab CPU by then ${r.cpu_at_ready_s} s)`,
    ...(r.vms === null
      ? []
      : [
          ...formatVmPopulation(r.vms),
          `    lab CPU meanwhile ${r.cpu_during_vms_s} s; cluster.view-changed meanwhile ${r.view_changes_during_vms}`,
        ]),
    `  idle CPU over ${r.idle_s} s              ${r.idle_cpu_percent_of_core} % of one core (busiest: ${top})`,
    `  idle CPU by the scheduler's count      ${r.idle_cpu_scheduler_percent_of_core} % of one core`,
    `  idle wake-ups                          ${r.idle_wakes_per_s} per second (every thread of every process)`,
    `  cluster.view-changed at ready          ${r.view_changes_at_ready} (at most ${r.view_changes_per_host_max} from one host); ${r.view_changes_while_idle} more while idle`,
  ].join('\n')
}
