/**
 * The page-diff inner loops in WebAssembly with 128-bit SIMD (AssemblyScript source).
 * The build (scripts/build/wasm.mjs) compiles it to dist/page-kernel.wasm; the binary is
 * never committed. agent/migration/page-kernel-wasm.ts loads it and falls back to the
 * JavaScript kernel where WebAssembly SIMD is missing.
 *
 * Every function works on bytes already copied into this module's linear memory (which
 * cannot alias the guest's SharedArrayBuffer), at offsets the caller chooses. Each one
 * follows its JavaScript twin in agent/migration/page-delta.ts byte for byte: the encoder
 * writes QEMU's XBZRLE format (migration/xbzrle.c) and gives up exactly where the
 * JavaScript one does; the decoder accepts exactly the deltas the JavaScript one accepts.
 *
 * Not type-checked by tsc (AssemblyScript types); asc checks it when it compiles.
 */

/** Where the caller's scratch space starts: below it is this module's own (empty) data. */
export function arenaBase(): usize {
  return 65536
}

/** Index of the first byte at or after `i` (before `end`) where the pages differ, else `end`. */
function firstDiffering(p: usize, c: usize, i: i32, end: i32): i32 {
  while (i + 16 <= end) {
    const same = i8x16.bitmask(i8x16.eq(v128.load(p + <usize>i), v128.load(c + <usize>i)))
    if (same != 0xffff) return i + ctz<i32>(~same)
    i += 16
  }
  while (i < end && load<u8>(p + <usize>i) == load<u8>(c + <usize>i)) i++
  return i
}

/** Index of the first byte at or after `i` (before `end`) where the pages are equal, else `end`. */
function firstEqual(p: usize, c: usize, i: i32, end: i32): i32 {
  while (i + 16 <= end) {
    const same = i8x16.bitmask(i8x16.eq(v128.load(p + <usize>i), v128.load(c + <usize>i)))
    if (same != 0) return i + ctz<i32>(same)
    i += 16
  }
  while (i < end && load<u8>(p + <usize>i) != load<u8>(c + <usize>i)) i++
  return i
}

function putRunLength(out: usize, d: i32, value: i32): i32 {
  if (value < 0x80) {
    store<u8>(out + <usize>d, <u8>value)
    return d + 1
  }
  store<u8>(out + <usize>d, <u8>((value & 0x7f) | 0x80))
  store<u8>(out + <usize>d + 1, <u8>(value >>> 7))
  return d + 2
}

/**
 * encodeDelta of page-delta.ts: the delta of page `c` against page `p` (`n` bytes each)
 * written at `out`; returns its length, or -1 (DELTA_NOT_SMALLER) when it would not be
 * strictly smaller than the page.
 */
export function encode(p: usize, c: usize, out: usize, n: i32): i32 {
  const limit = n - 1
  let d = 0
  let i = 0
  while (i < n) {
    const zStart = i
    i = firstDiffering(p, c, i, n)
    if (i == n) return d
    const zrun = i - zStart
    const lenMax = limit - d - (zrun < 0x80 ? 1 : 2) - 1
    if (lenMax < 1) return -1
    // scan no further than one byte past the longest run that still fits
    const scanEnd = i + lenMax + 1 < n ? i + lenMax + 1 : n
    const end = firstEqual(p, c, i, scanEnd)
    const nzrun = end - i
    if (nzrun > lenMax) return -1
    d = putRunLength(out, d, zrun)
    d = putRunLength(out, d, nzrun)
    if (d + nzrun > limit) return -1
    memory.copy(out + <usize>d, c + <usize>i, <usize>nzrun)
    d += nzrun
    i = end
  }
  return d
}

/** 1 when the `n` bytes at `c` are all zero, else 0. */
export function isZero(c: usize, n: i32): i32 {
  let acc = i64x2.splat(0)
  let i = 0
  while (i + 64 <= n) {
    const a = v128.or(v128.load(c + <usize>i), v128.load(c + <usize>i + 16))
    const b = v128.or(v128.load(c + <usize>i + 32), v128.load(c + <usize>i + 48))
    acc = v128.or(acc, v128.or(a, b))
    if (v128.any_true(acc)) return 0
    i += 64
  }
  while (i + 16 <= n) {
    acc = v128.or(acc, v128.load(c + <usize>i))
    i += 16
  }
  if (v128.any_true(acc)) return 0
  while (i < n) {
    if (load<u8>(c + <usize>i) != 0) return 0
    i++
  }
  return 1
}

/** A small uleb128 at delta[i] (before `len`): value | size << 16, or -1 when malformed. */
function readRunLength(delta: usize, i: i32, len: i32): i32 {
  if (i >= len) return -1
  const b0 = <i32>load<u8>(delta + <usize>i)
  if ((b0 & 0x80) == 0) return b0 | (1 << 16)
  if (i + 1 >= len) return -1
  const b1 = <i32>load<u8>(delta + <usize>i + 1)
  if ((b1 & 0x80) != 0 || b1 == 0) return -1
  return (b0 & 0x7f) | (b1 << 7) | (2 << 16)
}

/**
 * Walks the delta of `len` bytes at `delta` for a page of `n` bytes, applying each changed
 * run to the page at `page` when `apply` is 1. Returns 0, or 1 at the first thing that the
 * JavaScript walkDelta refuses.
 */
function walk(page: usize, delta: usize, len: i32, n: i32, apply: bool): i32 {
  let i = 0
  let d = 0
  while (i < len) {
    const z = readRunLength(delta, i, len)
    if (z < 0) return 1
    const zv = z & 0xffff
    if (i != 0 && zv == 0) return 1
    i += z >>> 16
    d += zv
    if (d >= n) return 1
    const nz = readRunLength(delta, i, len)
    if (nz < 0) return 1
    const nzv = nz & 0xffff
    if (nzv == 0) return 1
    i += nz >>> 16
    if (d + nzv > n || i + nzv > len) return 1
    if (apply) memory.copy(page + <usize>d, delta + <usize>i, <usize>nzv)
    i += nzv
    d += nzv
  }
  return 0
}

/**
 * decodeDelta of page-delta.ts, in place: applies the delta of `len` bytes at `delta` to
 * the page of `n` bytes at `page`. Validates the whole delta first: returns 1 and changes
 * nothing when it is malformed, else 0.
 */
export function decode(page: usize, delta: usize, len: i32, n: i32): i32 {
  if (walk(page, delta, len, n, false) != 0) return 1
  walk(page, delta, len, n, true)
  return 0
}

/** validateDelta of page-delta.ts: 0 when the delta is well formed, else 1. */
export function validate(delta: usize, len: i32, n: i32): i32 {
  return walk(0, delta, len, n, false)
}
