/**
 * `npm test`'s first step: the type check (`tsc --noEmit`) and the format check
 * (`prettier --check .`) at the same time. Each uses one core for most of its run (about
 * 30 s and 20 s on the 2-core CI machine), so side by side they finish when the longer one
 * does. Each one's output is printed whole once it ends, so the two never interleave; the
 * exit code is 1 when either failed.
 */
import { spawn } from 'node:child_process'
import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)

/** One check: its name and the Node script (a package's bin) with its arguments. */
const CHECKS = [
  { name: 'tsc --noEmit', script: require.resolve('typescript/bin/tsc'), args: ['--noEmit'] },
  { name: 'prettier --check .', script: require.resolve('prettier/bin/prettier.cjs'), args: ['--check', '.'] },
]

/** Runs one check to its end: resolves with its exit code and everything it printed. */
function run(check) {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [check.script, ...check.args], { stdio: ['ignore', 'pipe', 'pipe'] })
    const output = []
    child.stdout.on('data', (chunk) => output.push(chunk))
    child.stderr.on('data', (chunk) => output.push(chunk))
    child.on('error', (err) => resolve({ code: 1, output: Buffer.from(`${check.name} could not start: ${err.message}\n`) }))
    child.on('close', (code, signal) => resolve({ code: code ?? (signal ? 1 : 0), output: Buffer.concat(output) }))
  })
}

const results = await Promise.all(CHECKS.map(run))
let failed = false
for (const [i, { code, output }] of results.entries()) {
  process.stdout.write(`> ${CHECKS[i].name}\n`)
  process.stdout.write(output)
  if (code !== 0) {
    failed = true
    process.stdout.write(`${CHECKS[i].name} failed (exit ${code})\n`)
  }
}
process.exitCode = failed ? 1 : 0
