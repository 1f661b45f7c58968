/** The `hvlab` binary: runs the command line with the process's own streams and Ctrl-C. */
import { processIo } from './cli-io.js'
import { runHvlab } from './run-hvlab.js'

process.exitCode = await runHvlab(process.argv.slice(2), processIo)
