import t, { type Test } from 'tap'
import { HvlabError } from '../../shared/errors.js'
import { DELTA_NOT_SMALLER, encodeDelta, looksChangedThroughout } from '../../agent/migration/page-delta.js'
import { deltaImplementations, type DeltaImplementation } from './delta-codecs-fixture.js'
import { mulberry32 } from '../../shared/seeded-random.js'
import { seeds } from '../sim/seed.js'

const PAGE = 4096
/** A seeded test's seed: its own in CI, HVLAB_SEED's when that is set (test/sim/seed.ts); failures print it. */
const seedOf = (ci: number): number => seeds(import.meta.url, [ci]).list[0]!

const randomPage = (rnd: () => number): Uint8Array => Uint8Array.from({ length: PAGE }, () => Math.floor(rnd() * 256))

/** A straightforward reference of the QEMU format, without size limit. */
function referenceEncode(prev: Uint8Array, cur: Uint8Array): number[] {
  const out: number[] = []
  const uleb = (v: number): void => {
    if (v < 0x80) out.push(v)
    else out.push((v & 0x7f) | 0x80, v >>> 7)
  }
  let i = 0
  while (i < cur.length) {
    const z = i
    while (i < cur.length && prev[i] === cur[i]) i++
    if (i === cur.length) break
    const nz = i
    while (i < cur.length && prev[i] !== cur[i]) i++
    uleb(nz - z)
    uleb(i - nz)
    for (let k = nz; k < i; k++) out.push(cur[k] as number)
  }
  return out
}

/** The encoder's and decoder's tests, run on every implementation (delta-codecs-fixture.ts). */
function codecTests(t: Test, impl: DeltaImplementation): void {
  const { encodeDelta, decodeDelta, validateDelta } = impl
  const encodeDeltaToBytes = impl.toBytes

  t.test('identical pages encode to 0 bytes and decode back', async (t) => {
    const rnd = mulberry32(1)
    const prev = randomPage(rnd)
    const delta = encodeDeltaToBytes(prev, prev.slice())
    t.same(delta, new Uint8Array(0))
    const target = new Uint8Array(PAGE)
    decodeDelta(prev, new Uint8Array(0), target)
    t.same(target, prev)
  })

  t.test('hand-checked encoding of one changed byte, QEMU layout', async (t) => {
    const prev = new Uint8Array(PAGE)
    const cur = prev.slice()
    cur[200] = 0xab
    // zrun 200 = 0xc8 0x01 (two-byte uleb128), nzrun 1, byte 0xab; unchanged tail omitted
    t.same(Array.from(encodeDeltaToBytes(prev, cur) ?? []), [0xc8, 0x01, 0x01, 0xab])
    const first = prev.slice()
    first[0] = 7
    t.same(Array.from(encodeDeltaToBytes(prev, first) ?? []), [0x00, 0x01, 0x07], 'a change at byte 0 starts with a zero run of 0')
  })

  t.test('round-trips random pages with random changes, matching the reference', async (t) => {
    const seed = seedOf(0x5eed_0001)
    const rnd = mulberry32(seed)
    const out = new Uint8Array(PAGE)
    let deltas = 0
    let nots = 0
    for (let n = 0; n < 400; n++) {
      const prev = randomPage(rnd)
      const cur = prev.slice()
      const density = [0.001, 0.01, 0.1, 0.3, 0.6, 1][n % 6] as number
      const burst = n % 2 === 0
      for (let i = 0; i < PAGE; i++) {
        if (rnd() < density) {
          const len = burst ? 1 + Math.floor(rnd() * 300) : 1
          for (let k = i; k < Math.min(PAGE, i + len); k++) cur[k] = ((cur[k] as number) + 1 + Math.floor(rnd() * 255)) & 0xff
        }
      }
      const ref = referenceEncode(prev, cur)
      const len = encodeDelta(prev, cur, out)
      if (ref.length < PAGE) {
        deltas++
        if (len !== ref.length || !Buffer.from(out.subarray(0, len)).equals(Buffer.from(ref))) {
          t.fail(`seed ${seed} case ${n}: encoding differs from the reference (${len} vs ${ref.length} bytes)`)
          return
        }
        const target = new Uint8Array(PAGE)
        decodeDelta(prev, out.subarray(0, len), target)
        if (!Buffer.from(target).equals(Buffer.from(cur))) {
          t.fail(`seed ${seed} case ${n}: decoded page differs`)
          return
        }
      } else {
        nots++
        if (len !== DELTA_NOT_SMALLER) {
          t.fail(`seed ${seed} case ${n}: a ${ref.length}-byte delta must be refused, got ${len}`)
          return
        }
      }
    }
    t.ok(deltas > 50, `enough deltas (${deltas})`)
    t.ok(nots > 50, `enough pages that overflow to full (${nots})`)
  })

  t.test('the overflow-to-full-page boundary is exact', async (t) => {
    const prev = new Uint8Array(PAGE)
    // one changed run of L bytes at the start: 1 (zrun 0) + 2 (uleb of L) + L bytes
    const withRun = (L: number): Uint8Array => {
      const cur = prev.slice()
      cur.fill(1, 0, L)
      return cur
    }
    const out = new Uint8Array(PAGE)
    t.equal(encodeDelta(prev, withRun(4092), out), 4095, '4095 bytes is smaller than the page: a delta')
    const target = new Uint8Array(PAGE)
    decodeDelta(prev, out.subarray(0, 4095), target)
    t.same(target, withRun(4092))
    t.equal(encodeDelta(prev, withRun(4093), out), DELTA_NOT_SMALLER, '4096 bytes is not smaller: full page')
    t.equal(encodeDeltaToBytes(prev, withRun(PAGE)), null, 'a fully changed page is not smaller')
  })

  t.test('adversarial: every other byte changed is not smaller; every 3rd byte is', async (t) => {
    const prev = new Uint8Array(PAGE)
    const alt = prev.slice()
    for (let i = 0; i < PAGE; i += 2) alt[i] = 0xff
    t.equal(encodeDeltaToBytes(prev, alt), null)
    const third = prev.slice()
    for (let i = 0; i < PAGE; i += 4) third[i] = 0xff
    const d = encodeDeltaToBytes(prev, third)
    t.ok(d, 'every 4th byte fits (3 bytes per change)')
    const target = new Uint8Array(PAGE)
    decodeDelta(prev, d as Uint8Array, target)
    t.same(target, third)
  })

  t.test('runs around the 1/2-byte length boundary (127, 128)', async (t) => {
    const prev = new Uint8Array(PAGE)
    for (const [z, nz] of [
      [127, 127],
      [128, 128],
      [127, 128],
      [128, 1],
      [0, 128],
      [4095, 1],
    ] as const) {
      const cur = prev.slice()
      cur.fill(9, z, z + nz)
      const d = encodeDeltaToBytes(prev, cur)
      t.ok(d, `zrun ${z} nzrun ${nz} encodes`)
      t.same(Array.from(d ?? []), referenceEncode(prev, cur))
      const target = prev.slice()
      decodeDelta(target, d as Uint8Array, target)
      t.same(target, cur, `zrun ${z} nzrun ${nz} decodes in place`)
    }
  })

  t.test('malformed deltas throw HVLAB_E_PROTOCOL and leave the target alone', async (t) => {
    const prev = new Uint8Array(PAGE).fill(3)
    const cases: Array<[string, number[]]> = [
      ['truncated zero-run length', [0x80]],
      ['zero run without changed run', [0x05]],
      ['truncated changed-run length', [0x00, 0x81]],
      ['changed run missing bytes', [0x00, 0x05, 1, 2]],
      ['changed run of 0', [0x00, 0x00]],
      ['second zero run of 0', [0x01, 0x01, 0xaa, 0x00, 0x01, 0xbb]],
      ['overlong uleb128', [0x80, 0x00, 0x01, 0xaa]],
      ['three-byte uleb128', [0xff, 0xff, 0x01, 0x01, 0xaa]],
      ['zero run past the page', [0xff, 0x7f, 0x01, 0xaa]],
      ['zero run exactly to the page end', [0x80, 0x20, 0x01, 0xaa]],
      ['changed run past the page', [0xff, 0x1f, 0x02, 0xaa, 0xbb]],
      ['trailing zero run', [0x00, 0x01, 0xaa, 0x05]],
    ]
    for (const [what, bytes] of cases) {
      const target = new Uint8Array(PAGE).fill(0x55)
      t.throws(() => decodeDelta(prev, Uint8Array.from(bytes), target), { name: 'HvlabError', code: 'HVLAB_E_PROTOCOL' }, what)
      t.throws(() => validateDelta(Uint8Array.from(bytes), PAGE), { name: 'HvlabError', code: 'HVLAB_E_PROTOCOL' }, `${what} (validate)`)
      t.ok(
        target.every((b) => b === 0x55),
        `${what}: target untouched`,
      )
    }
    // the last valid position: zero run 4095, one byte
    const target = prev.slice()
    decodeDelta(prev, Uint8Array.from([0xff, 0x1f, 0x01, 0xaa]), target)
    t.equal(target[4095], 0xaa)
  })

  t.test('fuzz: random and truncated deltas never escape as anything but HVLAB_E_PROTOCOL', async (t) => {
    const seed = seedOf(0xf022)
    const rnd = mulberry32(seed)
    const prev = randomPage(rnd)
    const target = new Uint8Array(PAGE)
    let accepted = 0
    let refused = 0
    const tryDecode = (delta: Uint8Array): void => {
      target.fill(0x11)
      try {
        decodeDelta(prev, delta, target)
        accepted++
      } catch (e) {
        if (!(e instanceof HvlabError && e.code === 'HVLAB_E_PROTOCOL')) throw new Error(`seed ${seed}: unexpected ${String(e)}`)
        if (!target.every((b) => b === 0x11)) throw new Error(`seed ${seed}: target written by a refused delta`)
        refused++
      }
    }
    for (let n = 0; n < 2000; n++) tryDecode(Uint8Array.from({ length: Math.floor(rnd() * 64) }, () => Math.floor(rnd() * 256)))
    // every prefix of a real delta: either a valid delta or refused
    const cur = prev.slice()
    for (let i = 0; i < PAGE; i += 97) cur[i] = ((cur[i] as number) ^ 0x5a) & 0xff
    const real = encodeDeltaToBytes(prev, cur) as Uint8Array
    for (let len = 0; len <= real.length; len++) tryDecode(real.subarray(0, len))
    t.ok(refused > 1000, `refused ${refused}`)
    t.ok(accepted > 0, `accepted ${accepted}`)
  })

  t.test('encoder refuses pages of different sizes and a short output', async (t) => {
    t.throws(() => encodeDelta(new Uint8Array(PAGE), new Uint8Array(PAGE - 1), new Uint8Array(PAGE)), { code: 'HVLAB_E_INTERNAL' })
    t.throws(() => encodeDelta(new Uint8Array(PAGE), new Uint8Array(PAGE), new Uint8Array(10)), { code: 'HVLAB_E_INTERNAL' })
  })

  t.test('unaligned views (byte path) encode exactly like aligned ones (word path)', async (t) => {
    const seed = seedOf(0xa11)
    const rnd = mulberry32(seed)
    for (let n = 0; n < 200; n++) {
      const prev = randomPage(rnd)
      const cur = prev.slice()
      const changes = Math.floor(rnd() * 600)
      for (let k = 0; k < changes; k++) {
        const at = Math.floor(rnd() * PAGE)
        const len = 1 + Math.floor(rnd() * 12)
        for (let i = at; i < Math.min(PAGE, at + len); i++) cur[i] = ((cur[i] as number) ^ (1 + Math.floor(rnd() * 255))) & 0xff
      }
      const prevOdd = new Uint8Array(PAGE + 1)
      prevOdd.set(prev, 1)
      const curOdd = new Uint8Array(PAGE + 3)
      curOdd.set(cur, 3)
      const aligned = encodeDeltaToBytes(prev, cur)
      const unaligned = encodeDeltaToBytes(prevOdd.subarray(1), curOdd.subarray(3))
      const ref = referenceEncode(prev, cur)
      const want = ref.length < PAGE ? ref : null
      if (
        JSON.stringify(aligned && Array.from(aligned)) !== JSON.stringify(want) ||
        JSON.stringify(unaligned && Array.from(unaligned)) !== JSON.stringify(want)
      ) {
        t.fail(`seed ${seed} case ${n}: word and byte paths disagree with the reference`)
        return
      }
    }
    t.pass('200 pages agree')
  })
}

for (const impl of deltaImplementations()) t.test(impl.label, async (t) => codecTests(t, impl))

t.test('looksChangedThroughout: only a page changed at every sampled word, and never one whose delta is much smaller', async (t) => {
  const rnd = mulberry32(seedOf(0x5eed_0007))
  const zero = new Uint8Array(PAGE)
  let throughout = 0
  for (let k = 0; k < 200; k++) {
    const page = randomPage(rnd)
    if (looksChangedThroughout(zero, page)) {
      throughout++
      t.equal(
        encodeDelta(zero, page, new Uint8Array(PAGE)),
        DELTA_NOT_SMALLER,
        `random page ${k} judged changed throughout has no smaller delta`,
      )
    }
  }
  t.ok(throughout > 100, `most random pages are judged changed throughout (${throughout} of 200)`)
  t.notOk(looksChangedThroughout(zero, zero), 'an identical page is not')
  // everything changed but one 256-byte stretch: a sample falls in it, and its delta is smaller than the page
  const prev = randomPage(rnd)
  const cur = prev.map((b) => b ^ 0xff)
  cur.set(prev.subarray(1024, 1280), 1024)
  t.notOk(looksChangedThroughout(prev, cur), 'a page with an unchanged 256-byte stretch is not')
  t.not(encodeDelta(prev, cur, new Uint8Array(PAGE)), DELTA_NOT_SMALLER, '(its delta is smaller than the page)')
  const oneByte = prev.slice()
  oneByte[100] = oneByte[100]! ^ 1
  t.notOk(looksChangedThroughout(prev, oneByte), 'a page with one changed byte is not')
  t.notOk(looksChangedThroughout(prev.subarray(1, 4001), cur.subarray(1, 4001)), 'unaligned views are never judged (the encoder decides)')
})
