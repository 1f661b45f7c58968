/**
 * The WebAssembly SIMD page kernel against the JavaScript one, byte for byte: the same
 * deltas (QEMU's XBZRLE, page-delta.ts) for seeded random and adversarial page pairs of
 * several sizes, the same DELTA_NOT_SMALLER decisions, the same pages decoded, the same
 * deltas accepted and refused; the kernel choice (HVLAB_PAGE_KERNEL); and the warm-up of a
 * kernel's arena, a slice at a time.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { HvlabError } from '../../shared/errors.js'
import { DELTA_NOT_SMALLER, DELTA_RUN_MAX } from '../../agent/migration/page-delta.js'
import {
  arenaBytes,
  deltaCodec,
  pageKernel,
  pageKernelChoiceFromEnv,
  warmPageKernel,
  ARENA_WARM_CHUNK_BYTES,
  wasmKernelUnavailable,
  type DeltaCodec,
} from '../../agent/migration/page-kernel.js'
import { loadWasmKernel, wasmKernelPath } from '../../agent/migration/page-kernel-wasm.js'
import { mulberry32 } from '../../shared/seeded-random.js'
import { seeds } from '../sim/seed.js'

const seedOf = (ci: number): number => seeds(import.meta.url, [ci]).list[0]!

t.equal(wasmKernelUnavailable(), null, 'the WebAssembly SIMD kernel loads (dist/page-kernel.wasm is built)')
const js = deltaCodec(pageKernel('js'))
const wasm = deltaCodec(pageKernel('wasm-simd'))

/** Encodes with one codec: the delta's bytes, or null when not smaller. */
function encoded(codec: DeltaCodec, prev: Uint8Array, cur: Uint8Array): Uint8Array | null {
  const out = new Uint8Array(cur.length).fill(0xee)
  const len = codec.encodeDelta(prev, cur, out)
  return len === DELTA_NOT_SMALLER ? null : out.slice(0, len)
}

/** Null when both codecs agree on the pair (and the delta decodes back), else what differs. */
function disagreement(prev: Uint8Array, cur: Uint8Array): string | null {
  const a = encoded(js, prev, cur)
  const b = encoded(wasm, prev, cur)
  if (a === null || b === null)
    return a === b ? null : `js ${a === null ? 'refused' : `${a.length} bytes`}, wasm ${b === null ? 'refused' : `${b.length} bytes`}`
  if (!Buffer.from(a).equals(Buffer.from(b))) return `deltas of ${a.length} and ${b.length} bytes differ`
  for (const codec of [js, wasm]) {
    const target = new Uint8Array(cur.length).fill(0x33)
    codec.decodeDelta(prev, b, target)
    if (!Buffer.from(target).equals(Buffer.from(cur))) return `${codec.name} decodes a different page`
  }
  return null
}

const randomBytes = (rnd: () => number, n: number): Uint8Array => Uint8Array.from({ length: n }, () => Math.floor(rnd() * 256))
const changed = (b: number): number => (b + 1) & 0xff

/** Page pairs chosen to hit the run-length, SIMD-lane and size-limit boundaries. */
function adversarialPairs(n: number, rnd: () => number): Array<[string, Uint8Array, Uint8Array]> {
  const prev = randomBytes(rnd, n)
  const pairs: Array<[string, Uint8Array, Uint8Array]> = []
  const edit = (what: string, f: (cur: Uint8Array) => void): void => {
    const cur = prev.slice()
    f(cur)
    pairs.push([what, prev, cur])
  }
  edit('identical', () => undefined)
  edit('first byte', (c) => (c[0] = changed(c[0]!)))
  edit('last byte', (c) => (c[n - 1] = changed(c[n - 1]!)))
  edit('first and last byte', (c) => ((c[0] = changed(c[0]!)), (c[n - 1] = changed(c[n - 1]!))))
  edit('everything', (c) => c.forEach((b, i) => (c[i] = changed(b))))
  for (const step of [2, 3, 4, 5, 16, 17]) edit(`every ${step}th byte`, (c) => c.forEach((b, i) => i % step === 0 && (c[i] = changed(b))))
  edit('alternating runs of 1', (c) => c.forEach((b, i) => (i & 1) === 1 && (c[i] = changed(b))))
  for (const len of [1, 15, 16, 17, 31, 32, 33, 127, 128, 129, 255, 256, 16383]) {
    for (const at of [0, 1, 15, 16, 17, n - len, n - len - 1, Math.floor(n / 3)]) {
      if (at < 0 || at + len > n) continue
      edit(`run of ${len} at ${at}`, (c) => {
        for (let i = at; i < at + len; i++) c[i] = changed(c[i]!)
      })
    }
  }
  // unchanged stretches of 127/128 between changed ones: the zero-run length's 1/2-byte boundary
  for (const gap of [127, 128, 129])
    edit(`changes ${gap + 1} apart`, (c) => c.forEach((b, i) => i % (gap + 1) === 0 && (c[i] = changed(b))))
  // one changed run of L at the start: the delta is 1 + 2 + L bytes, so L = n - 4 is the last that fits
  for (const len of [n - 5, n - 4, n - 3, n - 2])
    if (len > 0) edit(`leading run of ${len}`, (c) => c.fill(0, 0, len).forEach((_, i) => i < len && (c[i] = changed(prev[i]!))))
  return pairs
}

t.test('adversarial pairs: both kernels give the same bytes and decisions, at every page size', async (t) => {
  const rnd = mulberry32(seedOf(0xad5e))
  let checked = 0
  for (const n of [1, 2, 3, 15, 16, 17, 63, 64, 65, 4095, 4096, DELTA_RUN_MAX]) {
    for (const [what, prev, cur] of adversarialPairs(n, rnd)) {
      const why = disagreement(prev, cur)
      if (why !== null) return void t.fail(`${n}-byte page, ${what}: ${why}`)
      checked++
    }
  }
  t.ok(checked > 600, `${checked} pairs agree`)
})

t.test('seeded random pairs: both kernels give the same bytes and decisions', async (t) => {
  const seed = seedOf(0xd1ff)
  const rnd = mulberry32(seed)
  const outcomes = { delta: 0, refused: 0 }
  for (let k = 0; k < 1500; k++) {
    const n = k % 5 === 0 ? 1 + Math.floor(rnd() * 300) : 4096
    const prev = randomBytes(rnd, n)
    const cur = prev.slice()
    const density = [0.0005, 0.005, 0.05, 0.2, 0.5, 0.9][k % 6]!
    for (let i = 0; i < n; i++) {
      if (rnd() < density) {
        const len = 1 + Math.floor(rnd() * (k % 3 === 0 ? 200 : 4))
        for (let j = i; j < Math.min(n, i + len); j++) cur[j] = changed(cur[j]! + Math.floor(rnd() * 254))
      }
    }
    const why = disagreement(prev, cur)
    if (why !== null) return void t.fail(`seed ${seed} pair ${k} (${n} bytes): ${why}`)
    outcomes[encoded(js, prev, cur) === null ? 'refused' : 'delta']++
  }
  t.ok(outcomes.delta > 300 && outcomes.refused > 300, `both outcomes are covered (${outcomes.delta} deltas, ${outcomes.refused} refused)`)
})

/** What a codec makes of a delta: 'ok' with the page, or the error's code and message. */
function decodeOutcome(codec: DeltaCodec, prev: Uint8Array, delta: Uint8Array): string {
  const target = prev.slice()
  try {
    codec.decodeDelta(prev, delta, target)
    codec.validateDelta(delta, prev.length)
    return `ok ${Buffer.from(target).toString('base64')}`
  } catch (e) {
    if (!(e instanceof HvlabError)) throw e
    if (!Buffer.from(target).equals(Buffer.from(prev))) return 'a refused delta changed the target'
    return `${e.code} ${e.message}`
  }
}

t.test('decoding: both kernels accept and refuse the same deltas, with the same reasons', async (t) => {
  const seed = seedOf(0xdec0)
  const rnd = mulberry32(seed)
  const counts = { ok: 0, refused: 0 }
  const prev = randomBytes(rnd, 4096)
  const cur = prev.slice()
  for (let i = 0; i < 4096; i += 61) cur[i] = changed(cur[i]!)
  const real = encoded(js, prev, cur)!
  const candidates: Uint8Array[] = []
  for (let k = 0; k < 3000; k++) candidates.push(randomBytes(rnd, Math.floor(rnd() * 24)))
  for (let len = 0; len <= real.length; len++) candidates.push(real.subarray(0, len))
  for (let k = 0; k < 500; k++) {
    const bent = real.slice()
    bent[Math.floor(rnd() * bent.length)] = Math.floor(rnd() * 256)
    candidates.push(bent)
  }
  for (const [k, delta] of candidates.entries()) {
    const a = decodeOutcome(js, prev, delta)
    const b = decodeOutcome(wasm, prev, delta)
    if (a !== b)
      return void t.fail(`seed ${seed} delta ${k} [${Array.from(delta.subarray(0, 12))}…]: js ${a.slice(0, 80)} / wasm ${b.slice(0, 80)}`)
    counts[a.startsWith('ok') ? 'ok' : 'refused']++
  }
  t.ok(counts.ok > 100 && counts.refused > 1000, `both outcomes are covered (${counts.ok} accepted, ${counts.refused} refused)`)
})

t.test('a delta longer than the kernel arena slot is decided by the JavaScript decoder', async (t) => {
  const long = new Uint8Array(DELTA_RUN_MAX + 2) // zero run 0, changed run 0: malformed at byte 1
  t.throws(() => wasm.decodeDelta(new Uint8Array(4096), long, new Uint8Array(4096)), { code: 'HVLAB_E_PROTOCOL' })
  t.throws(() => wasm.validateDelta(long, 4096), { code: 'HVLAB_E_PROTOCOL' })
})

t.test('HVLAB_PAGE_KERNEL chooses the kernel; an unknown name is refused', async (t) => {
  t.equal(pageKernelChoiceFromEnv({}), 'auto')
  t.equal(pageKernelChoiceFromEnv({ HVLAB_PAGE_KERNEL: 'js' }), 'js')
  t.equal(pageKernelChoiceFromEnv({ HVLAB_PAGE_KERNEL: 'wasm-simd' }), 'wasm-simd')
  t.throws(() => pageKernelChoiceFromEnv({ HVLAB_PAGE_KERNEL: 'simd' }), { code: 'HVLAB_E_USAGE', message: /auto, wasm-simd, js/ })
  t.equal(pageKernel('auto').name, 'wasm-simd', 'auto takes WebAssembly SIMD where it loads')
  t.equal(pageKernel('js').name, 'js')
  t.equal(pageKernel('js'), pageKernel('js'), 'one kernel per thread and choice, reused')
})

t.test('where the module is missing or refused (no WebAssembly SIMD), the loader says why instead of a kernel', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'hvlab-kernel-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  t.match(loadWasmKernel(arenaBytes(), null), /has not been built/)
  const refused = join(dir, 'page-kernel.wasm')
  // a module header followed by bytes this runtime cannot validate, as an engine without SIMD refuses the real one
  writeFileSync(refused, Uint8Array.from([0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, 0x7f, 0x7f]))
  t.match(loadWasmKernel(arenaBytes(), refused), /refuses the module/)
  const real = loadWasmKernel(arenaBytes(), wasmKernelPath())
  t.equal(typeof real === 'string' ? real : real.name, 'wasm-simd', 'the built module loads')
})

t.test('warming a kernel writes its arena a slice at a time, once', async (t) => {
  const kernel = pageKernel('js')
  kernel.arena.fill(7)
  t.ok(kernel.arena.length > 2 * ARENA_WARM_CHUNK_BYTES, 'the arena is several slices')
  const first = warmPageKernel('js')
  t.equal(warmPageKernel('js'), first, 'a second call gets the same warm-up')
  t.same(
    [kernel.arena[0], kernel.arena[ARENA_WARM_CHUNK_BYTES - 1], kernel.arena[ARENA_WARM_CHUNK_BYTES]],
    [0, 0, 7],
    'the first slice is written at once, the next only after the event loop has run',
  )
  await first
  t.ok(
    kernel.arena.every((b) => b === 0),
    'every byte written',
  )
})
