/**
 * Where one run of the `hvlab` command line writes and the exit code it ends with. The real
 * binary runs with the process's own streams; tests run commands in their own process with a
 * captured io. The current run is carried by an AsyncLocalStorage, so the commands call
 * `currentIo()` / `setExitCode()` instead of touching process.stdout or process.exitCode
 * (an in-process run must never set the test process's exit code).
 */
import { AsyncLocalStorage } from 'node:async_hooks'
import { createInterface } from 'node:readline/promises'

export interface CliIo {
  /** A chunk for stdout, newlines included (like process.stdout.write). */
  stdout(s: string): void
  stderr(s: string): void
  /** stderr is a terminal: `vm migrate` redraws one progress bar in place instead of printing a line per change. */
  isTTY: boolean
  /** The terminal's width in columns, when known (the progress bar's width; 100 without it). */
  columns?: number
  /** Calls `listener` on Ctrl-C; returns a function that removes it. Without it the run is never interrupted. */
  onInterrupt?(listener: () => void): () => void
  /** Asks the person at the terminal and returns the line they type; absent when stdin is not a terminal (no one to ask). */
  ask?: (question: string) => Promise<string>
}

/** A question on stderr, the answer read from stdin (a terminal). */
async function askOnTerminal(question: string): Promise<string> {
  const rl = createInterface({ input: process.stdin, output: process.stderr })
  try {
    return await rl.question(question)
  } finally {
    rl.close()
  }
}

/** The process's own streams and Ctrl-C: what the `hvlab` binary runs with. */
export const processIo: CliIo = {
  stdout: (s) => void process.stdout.write(s),
  stderr: (s) => void process.stderr.write(s),
  get isTTY() {
    return process.stderr.isTTY === true
  },
  get columns() {
    return process.stderr.columns
  },
  onInterrupt(listener) {
    process.once('SIGINT', listener)
    return () => void process.off('SIGINT', listener)
  },
  get ask() {
    return process.stdin.isTTY === true ? askOnTerminal : undefined
  },
}

interface CliRun {
  readonly io: CliIo
  exitCode: number
}

const runs = new AsyncLocalStorage<CliRun>()

/** Runs `fn` as one command-line run writing to `io`; returns its result and the exit code the commands set (0 unless they set one). */
export async function withCliRun<T>(io: CliIo, fn: () => Promise<T>): Promise<{ result: T; exitCode: number }> {
  const run: CliRun = { io, exitCode: 0 }
  const result = await runs.run(run, fn)
  return { result, exitCode: run.exitCode }
}

/** The io of the current run; the process's streams outside any run. */
export function currentIo(): CliIo {
  return runs.getStore()?.io ?? processIo
}

/** Sets the exit code the current run ends with (a command that printed its result but failed, e.g. a lost ping). */
export function setExitCode(code: number): void {
  const run = runs.getStore()
  if (run === undefined)
    throw new Error(`setExitCode(${code}) outside an hvlab run: commands run through runHvlab(), which carries their exit code`)
  if (!Number.isInteger(code) || code < 0 || code > 255) throw new Error(`exit code ${code} is not an integer from 0 to 255`)
  run.exitCode = code
}
