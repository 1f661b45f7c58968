/**
 * The page-diff inner loops (XBZRLE encode, decode, validate, zero check) behind one
 * interface with two implementations: WebAssembly SIMD (page-kernel-wasm.ts, built from
 * wasm/page-kernel.ts by the build) and plain JavaScript (page-delta.ts), the fallback
 * where WebAssembly SIMD is missing. Both produce the same bytes and refuse the same deltas
 * (test/unit/page-kernel-diff.test.ts compares them).
 *
 * A kernel works in its own scratch arena (WebAssembly linear memory cannot alias the
 * guest's SharedArrayBuffer, so pages are copied in; the copy is the snapshot the diff
 * needs anyway): two page slots, a delta slot, then room for the largest page batch, so a
 * task builds its batch in place and copies out only the bytes used. One kernel per thread
 * and per implementation, reused by every task; every call is synchronous, so calls never
 * interleave.
 *
 * Which one runs: `HVLAB_PAGE_KERNEL` = auto (default: WebAssembly SIMD when it loads, else
 * JavaScript), wasm-simd or js; a caller may also ask for one (the bench, the tests).
 */
import { HvlabError } from '../../shared/errors.js'
import { assertPagePair, DELTA_NOT_SMALLER, DELTA_RUN_MAX, decodeDelta, encodeDelta, validateDelta } from './page-delta.js'
import { pageBatchBytesMax, PAGE_BATCH_PAGES_MAX } from './page-batch.js'
import { loadWasmKernel } from './page-kernel-wasm.js'

export type PageKernelName = 'wasm-simd' | 'js'
export type PageKernelChoice = PageKernelName | 'auto'
export const PAGE_KERNEL_CHOICES: readonly PageKernelChoice[] = ['auto', 'wasm-simd', 'js']

/** Arena offsets: page slots hold any page a delta may describe (up to DELTA_RUN_MAX bytes). */
export const ARENA_SLOT_BYTES = DELTA_RUN_MAX + 1
export const ARENA_PREV_AT = 0
export const ARENA_CUR_AT = ARENA_SLOT_BYTES
export const ARENA_DELTA_AT = 2 * ARENA_SLOT_BYTES
export const ARENA_BATCH_AT = 3 * ARENA_SLOT_BYTES
export const arenaBytes = (): number => ARENA_BATCH_AT + pageBatchBytesMax(PAGE_BATCH_PAGES_MAX)

/** The arena-level operations: offsets into `arena`, lengths in bytes. */
export interface PageKernel {
  readonly name: PageKernelName
  /** A plain Uint8Array (not a Buffer: its slice() must copy). */
  readonly arena: Uint8Array
  /** The same bytes as 32-bit words (the arena starts 4-byte aligned). */
  readonly arena32: Uint32Array
  /** encodeDelta of the n-byte page at cur_at against prev_at, written at out_at. */
  encode(prev_at: number, cur_at: number, out_at: number, n: number): number
  /** decodeDelta in place on the n-byte page at page_at; false (nothing written) when malformed. */
  decode(page_at: number, delta_at: number, delta_bytes: number, n: number): boolean
  /** True when the delta at delta_at is well formed for an n-byte page. */
  validate(delta_at: number, delta_bytes: number, n: number): boolean
  /** True when the n bytes at at are all zero. */
  isZero(at: number, n: number): boolean
}

const ZERO_SLOT = Buffer.alloc(ARENA_SLOT_BYTES)

/** The JavaScript kernel: page-delta.ts's functions over views of a plain arena. */
export function createJsKernel(): PageKernel {
  const bytes = Buffer.alloc(arenaBytes())
  const arena = new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.length)
  const view = (at: number, n: number): Uint8Array => arena.subarray(at, at + n)
  const accepts = (delta: Uint8Array, n: number): boolean => {
    try {
      validateDelta(delta, n)
      return true
    } catch (e) {
      if (HvlabError.has(e, 'HVLAB_E_PROTOCOL')) return false
      throw e
    }
  }
  return {
    name: 'js',
    arena,
    arena32: new Uint32Array(arena.buffer, arena.byteOffset, arena.length >>> 2),
    encode: (prev_at, cur_at, out_at, n) => encodeDelta(view(prev_at, n), view(cur_at, n), view(out_at, n)),
    decode: (page_at, delta_at, delta_bytes, n) => {
      const delta = view(delta_at, delta_bytes)
      if (!accepts(delta, n)) return false
      const page = view(page_at, n)
      decodeDelta(page, delta, page)
      return true
    },
    validate: (delta_at, delta_bytes, n) => accepts(view(delta_at, delta_bytes), n),
    isZero: (at, n) => bytes.compare(ZERO_SLOT, 0, n, at, at + n) === 0,
  }
}

const kernels = new Map<PageKernelName, PageKernel>()
let wasmUnavailable: string | null = null

function wasmKernel(): PageKernel | string {
  if (wasmUnavailable !== null) return wasmUnavailable
  const k = kernels.get('wasm-simd')
  if (k) return k
  const loaded = loadWasmKernel(arenaBytes())
  if (typeof loaded === 'string') wasmUnavailable = loaded
  else kernels.set('wasm-simd', loaded)
  return loaded
}

/** Why the WebAssembly SIMD kernel cannot run here, or null when it can. */
export function wasmKernelUnavailable(): string | null {
  const k = wasmKernel()
  return typeof k === 'string' ? k : null
}

/** HVLAB_PAGE_KERNEL, checked: auto when unset. */
export function pageKernelChoiceFromEnv(env: NodeJS.ProcessEnv = process.env): PageKernelChoice {
  const v = env['HVLAB_PAGE_KERNEL']
  if (v === undefined || v === '') return 'auto'
  if ((PAGE_KERNEL_CHOICES as readonly string[]).includes(v)) return v as PageKernelChoice
  throw new HvlabError('HVLAB_E_USAGE', `HVLAB_PAGE_KERNEL must be one of ${PAGE_KERNEL_CHOICES.join(', ')}, got ${JSON.stringify(v)}`)
}

/**
 * This thread's kernel for `choice` (default: HVLAB_PAGE_KERNEL). `wasm-simd` throws
 * HVLAB_E_USAGE where it cannot load; `auto` then falls back to JavaScript.
 */
export function pageKernel(choice: PageKernelChoice = pageKernelChoiceFromEnv()): PageKernel {
  if (choice !== 'js') {
    const k = wasmKernel()
    if (typeof k !== 'string') return k
    if (choice === 'wasm-simd')
      throw new HvlabError('HVLAB_E_USAGE', `the WebAssembly SIMD page kernel cannot run here: ${k}; use auto or js`)
  }
  let js = kernels.get('js')
  if (!js) kernels.set('js', (js = createJsKernel()))
  return js
}

const warming = new WeakMap<PageKernel, Promise<void>>()
/** The arena is written this much at a time, the event loop served in between (64 pages: under 1 ms of page faults). */
export const ARENA_WARM_CHUNK_BYTES = 256 * 1024

/**
 * Loads this thread's kernel and writes its arena once (default choice as pageKernel()).
 * A migration's setup calls it on the main thread, which diffs and applies the blackout's
 * round: loading the module and the first writes into the arena's new memory (a page fault
 * per 4 KiB, about 3 ms per MiB on the project's 2-core machine) then fall in the setup,
 * not while the guest is paused. Written ARENA_WARM_CHUNK_BYTES at a time with the event
 * loop served between: all at once, the 4 MiB arena held the source's loop for 13 ms, and
 * the guest's pings with it. Once per kernel: a second call gets the first one's promise.
 */
export function warmPageKernel(choice?: PageKernelChoice): Promise<void> {
  let kernel: PageKernel
  try {
    kernel = pageKernel(choice)
  } catch (e) {
    return Promise.reject(e)
  }
  let p = warming.get(kernel)
  if (!p) {
    p = fillArena(kernel.arena)
    warming.set(kernel, p)
  }
  return p
}

async function fillArena(arena: Uint8Array): Promise<void> {
  for (let at = 0; at < arena.length; at += ARENA_WARM_CHUNK_BYTES) {
    arena.fill(0, at, Math.min(arena.length, at + ARENA_WARM_CHUNK_BYTES))
    await new Promise<void>((resolve) => setImmediate(resolve))
  }
}

/** page-delta.ts's encodeDelta / decodeDelta / validateDelta, done by one kernel. */
export interface DeltaCodec {
  readonly name: PageKernelName
  encodeDelta(previous: Uint8Array, current: Uint8Array, out: Uint8Array): number
  decodeDelta(previous: Uint8Array, delta: Uint8Array, target: Uint8Array): void
  validateDelta(delta: Uint8Array, page_bytes: number): void
}

/**
 * The array-level functions over a kernel: pages and delta are copied into its arena and
 * the answer out. Same arguments, answers and errors as page-delta.ts's: a malformed delta
 * is described by the JavaScript validator (the kernel only says that it is malformed),
 * and a delta too long for the arena's slot (never a valid one for a 4 KiB page) is
 * decoded by the JavaScript code.
 */
export function deltaCodec(kernel: PageKernel): DeltaCodec {
  const { arena } = kernel
  const refused = (delta: Uint8Array, n: number): HvlabError => {
    validateDelta(delta, n) // throws the JavaScript decoder's HVLAB_E_PROTOCOL with its reason
    return new HvlabError('HVLAB_E_INTERNAL', `the ${kernel.name} page kernel refused a delta the JavaScript decoder accepts`)
  }
  return {
    name: kernel.name,
    encodeDelta(previous, current, out) {
      assertPagePair(previous, current)
      const n = current.length
      if (out.length < n) {
        throw new HvlabError('HVLAB_E_INTERNAL', `delta output of ${out.length} bytes is smaller than the page (${n} bytes)`)
      }
      arena.set(previous, ARENA_PREV_AT)
      arena.set(current, ARENA_CUR_AT)
      const len = kernel.encode(ARENA_PREV_AT, ARENA_CUR_AT, ARENA_DELTA_AT, n)
      if (len !== DELTA_NOT_SMALLER) out.set(arena.subarray(ARENA_DELTA_AT, ARENA_DELTA_AT + len))
      return len
    },
    decodeDelta(previous, delta, target) {
      assertPagePair(previous, target)
      if (delta.length > ARENA_SLOT_BYTES) return decodeDelta(previous, delta, target)
      const n = target.length
      arena.set(previous, ARENA_PREV_AT)
      arena.set(delta, ARENA_DELTA_AT)
      if (!kernel.decode(ARENA_PREV_AT, ARENA_DELTA_AT, delta.length, n)) throw refused(delta, n)
      target.set(arena.subarray(ARENA_PREV_AT, ARENA_PREV_AT + n))
    },
    validateDelta(delta, page_bytes) {
      if (delta.length > ARENA_SLOT_BYTES) return validateDelta(delta, page_bytes)
      arena.set(delta, ARENA_DELTA_AT)
      if (!kernel.validate(ARENA_DELTA_AT, delta.length, page_bytes)) throw refused(delta, page_bytes)
    },
  }
}
