/**
 * The detached lab controller started by `hvlab up --detach`. Exits 0 once the lab is
 * stopped, 1 when its error policy aborted it (error-policy.ts), 2 when it could not start.
 */
import { Command } from 'commander'
import { describeError } from '../../shared/errors.js'
import { runController } from './run.js'

const program = new Command('hvlab-controller')
  .description('the lab controller of a detached lab; started by `hvlab up --detach`')
  .requiredOption('--dir <dir>', 'the lab’s data dir')
  .option('--topology <file>', 'the topology file')
  .exitOverride()

try {
  program.parse(process.argv)
  const o = program.opts<{ dir: string; topology?: string }>()
  const lab = await runController({ dir: o.dir, topologyFile: o.topology })
  const end = await lab.stopped
  if (end.aborted) process.stderr.write(`hvlab-controller: lab aborted: ${end.reason}\n`)
  process.exit(end.aborted ? 1 : 0)
} catch (e) {
  process.stderr.write(`hvlab-controller: ${describeError(e)}\n`)
  process.exit(2)
}
