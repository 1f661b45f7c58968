/**
 * Every implementation of the XBZRLE delta functions, for tests that must hold for each:
 * page-delta.ts's own functions, and the JavaScript and WebAssembly SIMD page kernels
 * through their arenas (page-kernel.ts). The WebAssembly one must load here (dist/ is
 * built before the tests run): a test run without it fails rather than testing less.
 */
import { decodeDelta, DELTA_NOT_SMALLER, encodeDelta, validateDelta } from '../../agent/migration/page-delta.js'
import { deltaCodec, pageKernel, wasmKernelUnavailable } from '../../agent/migration/page-kernel.js'

export interface DeltaImplementation {
  readonly label: string
  encodeDelta(previous: Uint8Array, current: Uint8Array, out: Uint8Array): number
  decodeDelta(previous: Uint8Array, delta: Uint8Array, target: Uint8Array): void
  validateDelta(delta: Uint8Array, page_bytes: number): void
  /** The delta bytes, or null when not smaller (encodeDeltaToBytes). */
  toBytes(previous: Uint8Array, current: Uint8Array): Uint8Array | null
}

function implementation(label: string, f: Omit<DeltaImplementation, 'label' | 'toBytes'>): DeltaImplementation {
  return {
    label,
    encodeDelta: f.encodeDelta,
    decodeDelta: f.decodeDelta,
    validateDelta: f.validateDelta,
    toBytes(previous, current) {
      const out = new Uint8Array(current.length)
      const len = f.encodeDelta(previous, current, out)
      return len === DELTA_NOT_SMALLER ? null : out.slice(0, len)
    },
  }
}

/** Throws when the WebAssembly kernel cannot load (say why). */
export function deltaImplementations(): DeltaImplementation[] {
  const why = wasmKernelUnavailable()
  if (why !== null) throw new Error(`the WebAssembly SIMD page kernel must load in tests: ${why}`)
  return [
    implementation('page-delta.ts', { encodeDelta, decodeDelta, validateDelta }),
    implementation('js kernel', deltaCodec(pageKernel('js'))),
    implementation('wasm-simd kernel', deltaCodec(pageKernel('wasm-simd'))),
  ]
}
