/**
 * Benchmark of a lab at scale (issue 12): starts a topology with `hvlab up --detach`, as a
 * user does, and measures how long until its cluster has formed, the CPU every process of
 * the lab (controller included) uses while it idles, and how many `cluster.view-changed`
 * events formation produced; then stops the lab with `hvlab down`, whatever happened.
 *
 * CPU is read from /proc/<pid>/stat (utime + stime of each process, worker threads
 * included), so it runs on Linux only. Numbers are for reading, never for asserting in tests.
 */
import { execFile } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { projectRoot } from '../build/build.mjs'
import type { LabStatus } from '../controller/lab-controller.js'

const run = promisify(execFile)

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
}

export interface ScaleBenchReport {
  topology: string
  processes: number
  hosts: number
  /** Wall time of `hvlab up --detach`, until every process is healthy and the cluster formed. */
  up_s: number
  /** CPU the lab's processes had used when `up` returned, seconds. */
  cpu_at_ready_s: number
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

/** Runs `hvlab ARGS` (the bundled CLI, as a user runs it) and returns its stdout; a non-zero exit throws with its stderr. */
async function hvlab(args: string[]): Promise<string> {
  const bin = join(projectRoot(import.meta.url), 'bin', 'hvlab.js')
  const { stdout } = await run(process.execPath, [bin, ...args], { maxBuffer: 64 * 1024 * 1024 })
  return stdout
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
  source: string
  at_ms: number
}

async function viewChanges(dir: string): Promise<ViewChange[]> {
  const text = await hvlab(['events', '--dir', dir, '--json', '--kind', 'cluster.view-changed'])
  return text
    .split('\n')
    .filter((l) => l.trim().length > 0)
    .map((l) => JSON.parse(l) as ViewChange)
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

/** Starts the lab, measures it idle, stops it (always). */
export async function runScaleBench(opts: ScaleBenchOptions): Promise<ScaleBenchReport> {
  if (process.platform !== 'linux') throw new Error('the scale benchmark reads /proc and runs on Linux only')
  const dir = opts.dir ?? mkdtempSync(join(tmpdir(), 'hvlab-scale-'))
  const started_ms = Date.now()
  let controllerPid: number | undefined
  try {
    const ready = JSON.parse(await hvlab(['up', '--detach', '--json', '--topology', opts.topology, '--dir', dir])) as LabStatus
    const up_s = (Date.now() - started_ms) / 1000
    controllerPid = ready.lab.controllerPid
    return await measureIdle(opts, dir, ready, up_s)
  } finally {
    await hvlab(['down', '--dir', dir]).catch(() => undefined)
    if (controllerPid !== undefined) await waitGone(controllerPid)
    if (opts.dir === undefined) rmSync(dir, { recursive: true, force: true })
  }
}

async function measureIdle(opts: ScaleBenchOptions, dir: string, ready: LabStatus, up_s: number): Promise<ScaleBenchReport> {
  const pids = labPids(ready)
  const atReady = await viewChanges(dir)
  const before = pids.map((p) => cpuSecondsOf(p.pid))
  const threadsBefore = pids.map((p) => threadsOf(p.pid))
  const idleStart_ms = Date.now()
  await sleep(opts.idle_s * 1000)
  const after = pids.map((p) => cpuSecondsOf(p.pid))
  const threadsAfter = pids.map((p) => threadsOf(p.pid))
  const delta = (k: 'wakes' | 'on_cpu_s'): number => sum(threadsAfter.map((t) => t[k])) - sum(threadsBefore.map((t) => t[k]))
  const window_s = (Date.now() - idleStart_ms) / 1000
  const atEnd = await viewChanges(dir)
  const percent = (cpu_s: number): number => round((100 * cpu_s) / window_s, 1)
  const byProcess = pids.map((p, i) => ({ name: p.name, percent_of_core: percent(after[i]! - before[i]!) }))
  return {
    topology: ready.lab.name,
    processes: pids.length,
    hosts: ready.processes.filter((p) => p.role === 'host').length,
    up_s: round(up_s, 2),
    cpu_at_ready_s: round(sum(before), 2),
    idle_s: round(window_s, 1),
    idle_cpu_percent_of_core: percent(sum(after) - sum(before)),
    idle_cpu_scheduler_percent_of_core: percent(delta('on_cpu_s')),
    idle_wakes_per_s: Math.round(delta('wakes') / window_s),
    idle_cpu_by_process: byProcess.sort((a, b) => b.percent_of_core - a.percent_of_core),
    view_changes_at_ready: atReady.length,
    view_changes_per_host_max: perSourceMax(atReady),
    view_changes_while_idle: atEnd.length - atReady.length,
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
    `  idle CPU over ${r.idle_s} s              ${r.idle_cpu_percent_of_core} % of one core (busiest: ${top})`,
    `  idle CPU by the scheduler's count      ${r.idle_cpu_scheduler_percent_of_core} % of one core`,
    `  idle wake-ups                          ${r.idle_wakes_per_s} per second (every thread of every process)`,
    `  cluster.view-changed at ready          ${r.view_changes_at_ready} (at most ${r.view_changes_per_host_max} from one host); ${r.view_changes_while_idle} more while idle`,
  ].join('\n')
}
