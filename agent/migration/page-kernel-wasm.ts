/**
 * Loads the WebAssembly SIMD page kernel (dist/page-kernel.wasm, which the build compiles
 * from wasm/page-kernel.ts) and wraps it as a PageKernel whose arena is a stretch of the
 * module's linear memory. The memory is grown once, here, to its final size, so the views
 * over it never detach.
 *
 * Where the file is missing or this runtime lacks WebAssembly SIMD (WebAssembly.validate
 * refuses the module), the answer is the reason as a string, and page-kernel.ts falls
 * back to the JavaScript kernel.
 */
import { existsSync, readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import type { PageKernel } from './page-kernel.js'

export const PAGE_KERNEL_WASM_FILE = 'page-kernel.wasm'
const WASM_PAGE_BYTES = 65536

/** The parts of the WebAssembly API used here (this project's TypeScript lib has no DOM types). */
interface WasmApi {
  validate(bytes: Uint8Array): boolean
  Module: new (bytes: Uint8Array) => object
  Instance: new (module: object) => { exports: unknown }
}

interface KernelExports {
  memory: { readonly buffer: ArrayBuffer; grow(pages: number): number }
  arenaBase(): number
  encode(p: number, c: number, out: number, n: number): number
  decode(page: number, delta: number, len: number, n: number): number
  validate(delta: number, len: number, n: number): number
  isZero(c: number, n: number): number
}

/**
 * The .wasm next to the bundle (dist/, when this module is bundled there) or in dist/ of
 * the project (when this module runs from its source, as in unit tests).
 */
export function wasmKernelPath(module_url: string = import.meta.url): string | null {
  for (const rel of [`./${PAGE_KERNEL_WASM_FILE}`, `../../dist/${PAGE_KERNEL_WASM_FILE}`]) {
    const path = fileURLToPath(new URL(rel, module_url))
    if (existsSync(path)) return path
  }
  return null
}

/** The kernel with an arena of `arena_bytes` (from the .wasm at `path`), or why it cannot run here. */
export function loadWasmKernel(arena_bytes: number, path: string | null = wasmKernelPath()): PageKernel | string {
  const wasm = (globalThis as { WebAssembly?: WasmApi }).WebAssembly
  if (wasm === undefined) return 'this runtime has no WebAssembly'
  if (path === null) return `${PAGE_KERNEL_WASM_FILE} has not been built (npm run build)`
  const bytes = readFileSync(path)
  if (!wasm.validate(bytes)) return 'this runtime refuses the module (no WebAssembly SIMD)'
  const exports = new wasm.Instance(new wasm.Module(bytes)).exports as unknown as KernelExports
  return wrap(exports, arena_bytes)
}

function wrap(x: KernelExports, size: number): PageKernel {
  const base = x.arenaBase()
  const need = base + size
  const have = x.memory.buffer.byteLength
  if (need > have) x.memory.grow(Math.ceil((need - have) / WASM_PAGE_BYTES))
  const buffer = x.memory.buffer
  const arena = new Uint8Array(buffer, base, size)
  return {
    name: 'wasm-simd',
    arena,
    arena32: new Uint32Array(buffer, base, size >>> 2),
    encode: (prev_at, cur_at, out_at, n) => x.encode(base + prev_at, base + cur_at, base + out_at, n),
    decode: (page_at, delta_at, delta_bytes, n) => x.decode(base + page_at, base + delta_at, delta_bytes, n) === 0,
    validate: (delta_at, delta_bytes, n) => x.validate(base + delta_at, delta_bytes, n) === 0,
    isZero: (at, n) => x.isZero(base + at, n) === 1,
  }
}
