/**
 * The bundled CLI as the benchmarks run it: `node bin/hvlab.js ARGS` in a process of its
 * own, exactly as a user types it, so every figure includes the CLI's own start-up.
 */
import { execFile } from 'node:child_process'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { projectRoot } from '../build/build.mjs'

const run = promisify(execFile)

/** Runs `hvlab ARGS` and returns its stdout; a non-zero exit throws with its stderr. */
export async function hvlab(args: string[]): Promise<string> {
  const bin = join(projectRoot(import.meta.url), 'bin', 'hvlab.js')
  const { stdout } = await run(process.execPath, [bin, ...args], { maxBuffer: 64 * 1024 * 1024 })
  return stdout
}
