/**
 * The build's WebAssembly step: compiles the page-diff kernel (wasm/page-kernel.ts,
 * AssemblyScript with 128-bit SIMD) into dist/page-kernel.wasm with the `assemblyscript`
 * package's compiler, asc. The binary is never committed: `npm ci` (prepare) and every
 * rebuild produce it from the source. It is compiled again only when the source or the
 * compiler is newer than the binary (asc takes a few seconds).
 *
 * Synchronous like the rest of the build: asc runs as a child process and the binary is
 * written to a temporary file, then renamed into place.
 */
import { execFileSync } from 'node:child_process'
import { existsSync, renameSync, rmSync, statSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

export const WASM_SOURCE = 'wasm/page-kernel.ts'
export const WASM_OUTPUT = 'dist/page-kernel.wasm'

/** asc's command-line entry, found through the package's exports. */
function ascPath() {
  const api = fileURLToPath(import.meta.resolve('assemblyscript/asc'))
  return join(dirname(dirname(api)), 'bin', 'asc.js')
}

/** True when dist/page-kernel.wasm is missing or older than its source or the compiler. */
export function wasmStale(root) {
  const out = join(root, WASM_OUTPUT)
  if (!existsSync(out)) return true
  const built_ms = statSync(out).mtimeMs
  return statSync(join(root, WASM_SOURCE)).mtimeMs > built_ms || statSync(ascPath()).mtimeMs > built_ms
}

/** Compiles the kernel when it is stale. */
export function buildWasm(root) {
  if (!wasmStale(root)) return
  const out = join(root, WASM_OUTPUT)
  const tmp = `${out}.${process.pid}.tmp.wasm`
  try {
    // -O3 without assertions; the stub runtime (the kernel allocates nothing); SIMD on.
    const args = [ascPath(), WASM_SOURCE, '-O3', '--noAssert', '--runtime', 'stub', '--enable', 'simd', '--outFile', tmp]
    execFileSync(process.execPath, args, { cwd: root, stdio: ['ignore', 'inherit', 'inherit'] })
    renameSync(tmp, out)
  } finally {
    rmSync(tmp, { force: true })
  }
}
