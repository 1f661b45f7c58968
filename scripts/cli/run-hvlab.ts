/**
 * Runs one `hvlab` command line and returns its exit code: the one way to run it, used by
 * the binary (with the process's streams) and by tests (in their own process, with a
 * captured io), so the two cannot drift. Exit codes: 0 done; 1 a failed command (its error
 * on stderr as `hvlab: …`) or one that printed its result but failed (setExitCode);
 * 2 bad usage, found by a command (HVLAB_E_USAGE) or by commander (an unknown command or
 * option, a missing argument, a bad option value: its message already written); 0 for
 * --help.
 */
import { HvlabError, describeError } from '../../shared/errors.js'
import { type CliIo, withCliRun } from './cli-io.js'
import { chooseCluster } from './cluster-choice.js'
import { CommandLineExit, buildProgram } from './program.js'

export type { CliIo } from './cli-io.js'

export async function runHvlab(argv: readonly string[], io: CliIo): Promise<number> {
  return (await runHvlabOutcome(argv, io)).exit
}

/** How a command line ended: its exit code, and the stable code of the error that ended it (null when none did). */
export interface CliOutcome {
  exit: number
  error_code: string | null
}

/** runHvlab, also giving the failed command's stable error code (for callers that decide on it, never on its text). */
export async function runHvlabOutcome(argv: readonly string[], io: CliIo): Promise<CliOutcome> {
  let error_code: string | null = null
  const { result: failedWith, exitCode } = await withCliRun(io, async (): Promise<number | undefined> => {
    try {
      await buildProgram().parseAsync([...argv], { from: 'user' })
      return undefined
    } catch (e) {
      if (e instanceof CommandLineExit) return e.exitCode
      io.stderr(`hvlab: ${describeError(e)}\n`)
      error_code = e instanceof HvlabError ? e.code : 'HVLAB_E_INTERNAL'
      return e instanceof HvlabError && e.code === 'HVLAB_E_USAGE' ? 2 : 1
    } finally {
      chooseCluster(null) // the choice was this run's: code run in the same process after it (a test) addresses the first cluster again
    }
  })
  return { exit: failedWith ?? exitCode, error_code }
}
