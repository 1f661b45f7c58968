/**
 * Real labs for tests: start one with the real CLI (`hvlab up --detach`) in a fresh
 * temporary data dir, drive it with the CLI, and always stop it — `hvlab down`, then a
 * kill of the controller (its processes exit with it) — even when the test fails.
 * The lab's processes are real; the CLI commands that drive it run in the test's own
 * process (runHvlab, the binary's own entry, with a captured io): a CLI process per call
 * costs about 0.4 s of CPU. `spawnCli` runs the real binary where a test checks it.
 */
import { execFile } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { LabStatus } from '../../scripts/controller/lab-controller.js'
import { ControlClient } from '../../scripts/cli/control-client.js'
import { clusterStatusNow } from '../../scripts/cli/cluster-commands.js'
import { vmInspectNow, vmListNow } from '../../scripts/cli/vm-queries.js'
import { type CliIo, runHvlab } from '../../scripts/cli/run-hvlab.js'
import { ensureBuilt } from '../../scripts/build/build.mjs'
import { lastLinesOf } from '../../scripts/controller/log-tail.js'
import { labLayout, rotatedPaths } from '../../shared/lab-layout.js'
import type { VmRoleRecord } from '../../shared/protocol/cluster-messages.js'

const HVLAB = fileURLToPath(new URL('../../bin/hvlab.js', import.meta.url))

export interface CliResult {
  code: number
  stdout: string
  stderr: string
}

interface Teardown {
  teardown(fn: () => unknown): void
  /** tap's: whether every assertion so far passed. */
  passing?(): boolean
  comment?(...message: unknown[]): void
}

/** Timeline events printed with a failed test: what the lab did is the first thing to read. */
const FAILED_TIMELINE_EVENTS = 400
/** How far back each timeline file is read for them. */
const TIMELINE_TAIL_BYTES_MAX = 8 * 1024 * 1024

/** The last `count` events of the lab's timeline files (the current one and those rotated before it), one line each. */
function timelineTail(dir: string, count: number): string[] {
  const lines = lastLinesOf(rotatedPaths(labLayout(dir).events), count, TIMELINE_TAIL_BYTES_MAX)
  return lines.map((l) => {
    try {
      const e = JSON.parse(l) as { seq: number; at_ms: number; kind: string; source: string; details: unknown }
      return `${e.seq} ${new Date(e.at_ms).toISOString().slice(11, 23)} ${e.source} ${e.kind} ${JSON.stringify(e.details).slice(0, 300)}`
    } catch {
      // Only a failed test's report: a line that is not a whole event (cut by a crash or a
      // rotation) is shown as it is.
      return l.slice(0, 300)
    }
  })
}

/** Warnings and errors from the processes' logs printed with a failed test. */
const FAILED_LOG_LINES = 100

/** A file's text; '' when it is gone (the running lab may have just removed an old rotated log). */
function readIfThere(file: string): string {
  try {
    return readFileSync(file, 'utf8')
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return ''
    throw e
  }
}

/** The last `count` warn-or-worse lines of every process's pino log (rotated files too), oldest first. */
function logWarningsTail(dir: string, count: number): string[] {
  const lines: { time: number; text: string }[] = []
  for (const f of labLayout(dir).logFiles()) {
    for (const l of readIfThere(f).split('\n')) {
      try {
        const { level, time, name, msg, pid: _pid, hostname: _h, ...rest } = JSON.parse(l) as Record<string, unknown>
        if (typeof level !== 'number' || level < 40 || typeof time !== 'number') continue
        lines.push({
          time,
          text: `${new Date(time).toISOString().slice(11, 23)} ${String(name)} ${level >= 50 ? 'ERROR' : 'WARN'} ${String(msg)} ${JSON.stringify(rest).slice(0, 300)}`,
        })
      } catch {
        // not a log record (a partial last line)
      }
    }
  }
  return lines
    .sort((a, b) => a.time - b.time)
    .slice(-count)
    .map((l) => l.text)
}

const CLI_TIMEOUT_MS = 120_000
/** What `timeout` answers for a command it stopped; an in-process run that times out returns it too. */
export const CLI_TIMED_OUT = 124

/**
 * The environment of a process a lab test starts (the `hvlab` binary, and through it the lab's
 * processes): this one's, without the test runner's loader (NODE_OPTIONS) and without V8
 * coverage (NODE_V8_COVERAGE). Coverage is what the unit and simulation tests reach (.taprc);
 * collecting it in every lab process as well cost CI time it does not have: the lab tests keep
 * both cores busy, and coverage made them use more CPU (cgroup CPU time of one run each on
 * 2026-12-07: roles.test.ts 159 s with it, 129 s without; cluster.test.ts 90 s and 83 s with,
 * 85 s without; one lab's `up` and `down` 20 s with, 17 s without, 3 runs each).
 */
export function labProcessEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, NODE_OPTIONS: '' }
  delete env.NODE_V8_COVERAGE
  return env
}

/**
 * For a test whose processes are started by code that takes this process's environment
 * (the benchmarks' runners): its children run without V8 coverage, as labProcessEnv()'s do.
 * This process's own coverage is unaffected (Node reads the variable once, at start).
 */
export function childrenWithoutCoverage(): void {
  delete process.env.NODE_V8_COVERAGE
}

/** Runs the real `hvlab` binary in a new process (with `extraEnv` added to labProcessEnv()). */
export function runCli(args: string[], timeout_ms = CLI_TIMEOUT_MS, extraEnv: Record<string, string> = {}): Promise<CliResult> {
  // A source edited since the last build: rebuilt here, once, not by the binary, whose stderr would carry the notice
  ensureBuilt()
  return new Promise((resolve) => {
    const env = { ...labProcessEnv(), ...extraEnv }
    execFile(process.execPath, [HVLAB, ...args], { env, timeout: timeout_ms, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0
      resolve({ code, stdout, stderr })
    })
  })
}

/**
 * Runs an `hvlab` command line in this process, as the binary would, capturing its output.
 * After `timeout_ms` it answers CLI_TIMED_OUT with a message on stderr; the command itself
 * cannot be stopped and keeps running in the background (its later output is dropped).
 */
export async function runCliInProcess(args: string[], timeout_ms = CLI_TIMEOUT_MS): Promise<CliResult> {
  const stdout: string[] = []
  const stderr: string[] = []
  const io: CliIo = { stdout: (s) => void stdout.push(s), stderr: (s) => void stderr.push(s), isTTY: false }
  let timer: NodeJS.Timeout | undefined
  const timedOut = new Promise<'timed out'>((resolve) => (timer = setTimeout(() => resolve('timed out'), timeout_ms)))
  try {
    const code = await Promise.race([runHvlab(args, io), timedOut])
    if (code === 'timed out') {
      return {
        code: CLI_TIMED_OUT,
        stdout: stdout.join(''),
        stderr: `${stderr.join('')}hvlab ${args.join(' ')}: timed out after ${timeout_ms} ms (run in the test process; it keeps running in the background)\n`,
      }
    }
    return { code, stdout: stdout.join(''), stderr: stderr.join('') }
  } finally {
    clearTimeout(timer)
  }
}

/** One event of the lab's timeline as GET /v1/events streams it. */
export interface LabEvent {
  seq: number
  at_ms: number
  kind: string
  source: string
  details: Record<string, unknown>
}

/** A VM as its host reports it in GET /status. */
export interface HostVm {
  role: string
  /** The start that made it (a restart is a new op). */
  op: number
  guest_heartbeats: number
}

export class TestLab {
  constructor(readonly dir: string) {}

  /** `hvlab ARGS --dir <this lab>`, run in this process (see runCliInProcess). */
  async cli(...args: string[]): Promise<CliResult> {
    return runCliInProcess([...args, '--dir', this.dir])
  }

  /** `hvlab ARGS --dir <this lab>` through the real binary, in a new process: for tests of the binary itself. */
  async spawnCli(...args: string[]): Promise<CliResult> {
    return runCli([...args, '--dir', this.dir])
  }

  async json<T>(...args: string[]): Promise<T> {
    const r = await this.cli(...args, '--json')
    if (r.code !== 0) throw new Error(`hvlab ${args.join(' ')} failed (${r.code}): ${r.stderr}`)
    return JSON.parse(r.stdout) as T
  }

  /**
   * The control endpoint the CLI uses, called in-process: polling through a new CLI
   * process every 200 ms would cost 0.4 s of CPU each time. `hvlab status --json` and
   * `hvlab events --json` print exactly these objects (the runtime test checks the CLI).
   */
  control(): ControlClient {
    return ControlClient.forDir(this.dir)
  }

  status(): Promise<LabStatus> {
    return this.control().get<LabStatus>('/v1/status')
  }

  async events(): Promise<LabEvent[]> {
    const events: LabEvent[] = []
    await this.control().stream('/v1/events', (e) => events.push(e as LabEvent))
    return events
  }

  /**
   * Connections a lab process closed because a peer's frame broke the protocol. Lab
   * processes speak it correctly, so any is a bug (a process that served a peer before its
   * role's handlers were attached refused the peer's first message, say).
   */
  async protocolRefusals(): Promise<LabEvent[]> {
    return (await this.events()).filter((e) => e.kind === 'peer.lost' && e.details.reason === 'HVLAB_E_PROTOCOL')
  }

  /**
   * The timeline after `seq` once `settled(events)` holds, or as it is after `timeout_ms`
   * (so the test's assertions say what is missing). Events come from every process over its
   * own link: one may arrive a moment after the state a test waited for became visible.
   */
  async eventsAfter(seq: number, settled: (events: LabEvent[]) => boolean, timeout_ms = 15_000): Promise<LabEvent[]> {
    const deadline = Date.now() + timeout_ms
    for (;;) {
      const events = (await this.events()).filter((e) => e.seq > seq)
      if (settled(events) || Date.now() >= deadline) return events
      await new Promise((r) => setTimeout(r, 200))
    }
  }

  /** Polls `probe` until it returns a value (not undefined) or the deadline passes. */
  async waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeout_ms = 60_000): Promise<T> {
    const deadline = Date.now() + timeout_ms
    let lastError: unknown
    while (Date.now() < deadline) {
      try {
        const v = await probe()
        if (v !== undefined) return v
      } catch (e) {
        lastError = e
      }
      await new Promise((r) => setTimeout(r, 200))
    }
    throw new Error(`timed out waiting for ${what}${lastError ? `: ${String(lastError)}` : ''}`)
  }

  /*
   * What `hvlab vm list|inspect|cluster status --json` print, asked in-process: tests poll
   * these every 200 ms, and a CLI process per poll costs 0.4 s of CPU (the runtime, roles
   * and cluster tests check the commands themselves).
   */
  vmList(): ReturnType<typeof vmListNow> {
    return vmListNow(this.control())
  }

  vmInspect(vm: string): ReturnType<typeof vmInspectNow> {
    return vmInspectNow(this.control(), vm)
  }

  clusterStatus(): ReturnType<typeof clusterStatusNow> {
    return clusterStatusNow(this.control())
  }

  /** The VM role as the cluster's coordinator keeps it (undefined when a host without the roles answered). */
  async role(vm: string): Promise<VmRoleRecord | undefined> {
    const list = await this.vmList()
    return list.source === 'coordinator' ? list.roles.find((r) => r.name === vm) : undefined
  }

  /** Waits until `vm` runs on one of `hosts` (not in the middle of a live migration); a failed role's reason is in the timeout message. */
  vmRunningOn(vm: string, hosts: string[], timeout_ms = 120_000): Promise<VmRoleRecord> {
    return this.waitFor(
      `${vm} running on ${hosts.join(' or ')}`,
      async () => {
        const r = await this.role(vm)
        if (r?.state === 'failed') throw new Error(`${vm} failed: ${r.reason}`)
        return r?.state === 'running' && r.owner !== null && hosts.includes(r.owner) && r.migration === undefined ? r : undefined
      },
      timeout_ms,
    )
  }

  /** Each up host's VMs (role, start op, guest heartbeats) from its own GET /status; a host that does not answer runs nothing we can see. */
  async inventories(): Promise<Record<string, HostVm[]>> {
    const s = await this.status()
    const out: Record<string, HostVm[]> = {}
    await Promise.all(
      s.processes
        .filter((p) => p.role === 'host' && p.state === 'up' && p.metricsPort)
        .map(async (p) => {
          try {
            const r = await fetch(`http://127.0.0.1:${p.metricsPort}/status`, { signal: AbortSignal.timeout(2000) })
            const body = (await r.json()) as { vms?: HostVm[] }
            out[p.name] = (body.vms ?? []).map((v) => ({ role: v.role, op: v.op, guest_heartbeats: v.guest_heartbeats }))
          } catch {
            // killed or restarting
          }
        }),
    )
    return out
  }

  controllerPid(): number | undefined {
    try {
      return (JSON.parse(readFileSync(join(this.dir, 'control.json'), 'utf8')) as { pid: number }).pid
    } catch {
      // No control file yet or any more, or one caught mid-write: no controller to name now.
      return undefined
    }
  }
}

export const isAlive = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    return true
  } catch (e) {
    // ESRCH: no such process. EPERM: it exists, owned by someone else — alive.
    return (e as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/** Starts a lab in a fresh temp dir (its processes with `env` added to theirs); it is stopped and removed when the test ends. */
export async function startLab(
  t: Teardown,
  options: { topology?: string; env?: Record<string, string> } = {},
): Promise<{ lab: TestLab; status: LabStatus }> {
  const dir = mkdtempSync(join(tmpdir(), 'hvlab-test-'))
  const lab = new TestLab(dir)
  const pids = new Set<number>()
  t.teardown(async () => {
    if (t.passing?.() === false && t.comment) {
      const tail = timelineTail(dir, FAILED_TIMELINE_EVENTS)
      t.comment(`the lab's timeline (last ${tail.length} events) for the failed test:\n${tail.join('\n')}`)
      const warnings = logWarningsTail(dir, FAILED_LOG_LINES)
      t.comment(`the processes' warnings and errors (last ${warnings.length}) for the failed test:\n${warnings.join('\n')}`)
    }
    const controller = lab.controllerPid()
    if (controller !== undefined) pids.add(controller)
    if (controller !== undefined && isAlive(controller)) await lab.cli('down')
    for (const pid of pids) if (isAlive(pid)) process.kill(pid, 'SIGKILL')
    rmSync(dir, { recursive: true, force: true })
  })
  const topology = options.topology ? ['--topology', options.topology] : []
  const up = await runCli(['up', '--detach', '--json', '--dir', dir, ...topology], CLI_TIMEOUT_MS, options.env)
  const controller = lab.controllerPid()
  if (controller !== undefined) pids.add(controller)
  if (up.code !== 0) throw new Error(`hvlab up failed (${up.code}):\n${up.stderr}\n${up.stdout}`)
  const status = JSON.parse(up.stdout) as LabStatus
  for (const p of status.processes) if (p.pid) pids.add(p.pid)
  return { lab, status }
}
