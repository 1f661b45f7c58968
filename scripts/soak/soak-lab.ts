/**
 * The running lab as a soak drives it: `hvlab` command lines run in the soak's own process
 * (runHvlabOutcome, the binary's own entry, with a captured io: a CLI process per action
 * costs 0.4 s of CPU) and the control endpoint for status. Each command's outcome says
 * whether it worked and, when not, its stable error code.
 */
import type { LabStatus, ProcessStatus } from '../controller/lab-controller.js'
import { ControlClient } from '../cli/control-client.js'
import type { CliIo } from '../cli/cli-io.js'
import { runHvlabOutcome, type CliOutcome } from '../cli/run-hvlab.js'

export interface CliRun extends CliOutcome {
  stdout: string
  stderr: string
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

export class SoakLab {
  constructor(readonly dir: string) {}

  /** `hvlab ARGS --dir <lab>`, run in this process. */
  async cli(...args: string[]): Promise<CliRun> {
    const stdout: string[] = []
    const stderr: string[] = []
    const io: CliIo = { stdout: (s) => void stdout.push(s), stderr: (s) => void stderr.push(s), isTTY: false }
    const r = await runHvlabOutcome([...args, '--dir', this.dir], io)
    return { ...r, stdout: stdout.join(''), stderr: stderr.join('') }
  }

  /** Like cli, but a failure throws with the command and what it said. */
  async must(...args: string[]): Promise<string> {
    const r = await this.cli(...args)
    if (r.exit !== 0) throw new Error(`hvlab ${args.join(' ')} failed (${r.error_code ?? r.exit}): ${r.stderr.trim()}`)
    return r.stdout
  }

  control(): ControlClient {
    return ControlClient.forDir(this.dir)
  }

  status(): Promise<LabStatus> {
    return this.control().get<LabStatus>('/v1/status')
  }

  async process(name: string): Promise<ProcessStatus | undefined> {
    return (await this.status()).processes.find((p) => p.name === name)
  }

  /** Waits until `name` is in one of `states` (up to `timeout_ms`); whether it got there. */
  async waitProcess(name: string, states: readonly string[], timeout_ms: number): Promise<boolean> {
    const deadline = Date.now() + timeout_ms
    for (;;) {
      const p = await this.process(name).catch(() => undefined)
      if (p && states.includes(p.state)) return true
      if (Date.now() > deadline) return false
      await sleep(100)
    }
  }
}
