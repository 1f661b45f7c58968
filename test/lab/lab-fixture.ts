/**
 * Real labs for tests: start one with the real CLI (`hvlab up --detach`) in a fresh
 * temporary data dir, drive it with the CLI, and always stop it — `hvlab down`, then a
 * kill of the controller (its processes exit with it) — even when the test fails.
 */
import { execFile } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { LabStatus } from '../../scripts/controller/lab-controller.js'
import { ControlClient } from '../../scripts/cli/control-client.js'

const HVLAB = fileURLToPath(new URL('../../bin/hvlab.js', import.meta.url))

export interface CliResult {
  code: number
  stdout: string
  stderr: string
}

interface Teardown {
  teardown(fn: () => unknown): void
}

export function runCli(args: string[], timeout_ms = 120_000): Promise<CliResult> {
  return new Promise((resolve) => {
    // The CLI registers its own TypeScript loader; the test runner's must not leak in.
    const env = { ...process.env, NODE_OPTIONS: '' }
    execFile(process.execPath, [HVLAB, ...args], { env, timeout: timeout_ms, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0
      resolve({ code, stdout, stderr })
    })
  })
}

export class TestLab {
  constructor(readonly dir: string) {}

  async cli(...args: string[]): Promise<CliResult> {
    return runCli([...args, '--dir', this.dir])
  }

  async json<T>(...args: string[]): Promise<T> {
    const r = await this.cli(...args, '--json')
    if (r.code !== 0) throw new Error(`hvlab ${args.join(' ')} failed (${r.code}): ${r.stderr}`)
    return JSON.parse(r.stdout) as T
  }

  /**
   * The control endpoint the CLI uses, called in-process: polling through a new CLI
   * process every 200 ms would cost a CPU second each time. `hvlab status --json` and
   * `hvlab events --json` print exactly these objects (the runtime test checks the CLI).
   */
  control(): ControlClient {
    return ControlClient.forDir(this.dir)
  }

  status(): Promise<LabStatus> {
    return this.control().get<LabStatus>('/v1/status')
  }

  async events(): Promise<{ seq: number; at_ms: number; kind: string; source: string; details: Record<string, unknown> }[]> {
    const events: { seq: number; at_ms: number; kind: string; source: string; details: Record<string, unknown> }[] = []
    await this.control().stream('/v1/events', (e) => events.push(e as (typeof events)[number]))
    return events
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

  controllerPid(): number | undefined {
    try {
      return (JSON.parse(readFileSync(join(this.dir, 'control.json'), 'utf8')) as { pid: number }).pid
    } catch {
      return undefined
    }
  }
}

export const isAlive = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

/** Starts a lab in a fresh temp dir; it is stopped and removed when the test ends. */
export async function startLab(t: Teardown, options: { topology?: string } = {}): Promise<{ lab: TestLab; status: LabStatus }> {
  const dir = mkdtempSync(join(tmpdir(), 'hvlab-test-'))
  const lab = new TestLab(dir)
  const pids = new Set<number>()
  t.teardown(async () => {
    const controller = lab.controllerPid()
    if (controller !== undefined) pids.add(controller)
    if (controller !== undefined && isAlive(controller)) await lab.cli('down')
    for (const pid of pids) if (isAlive(pid)) process.kill(pid, 'SIGKILL')
    rmSync(dir, { recursive: true, force: true })
  })
  const up = await runCli(['up', '--detach', '--json', '--dir', dir, ...(options.topology ? ['--topology', options.topology] : [])])
  const controller = lab.controllerPid()
  if (controller !== undefined) pids.add(controller)
  if (up.code !== 0) throw new Error(`hvlab up failed (${up.code}):\n${up.stderr}\n${up.stdout}`)
  const status = JSON.parse(up.stdout) as LabStatus
  for (const p of status.processes) if (p.pid) pids.add(p.pid)
  return { lab, status }
}
