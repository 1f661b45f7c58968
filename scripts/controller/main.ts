/** The detached lab controller started by `hvlab up --detach`. */
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
  await lab.stopped
  process.exit(0)
} catch (e) {
  process.stderr.write(`hvlab-controller: ${describeError(e)}\n`)
  process.exit(2)
}
