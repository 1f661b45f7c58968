/**
 * XBZRLE page deltas, in the format of QEMU's migration/xbzrle.c.
 *
 * The page is compared with the copy last sent (byte by byte, XOR == 0 means
 * "unchanged") and written as alternating runs:
 *
 *   zrun_len (uleb128)  nzrun_len (uleb128)  nzrun bytes   zrun_len  nzrun_len  bytes …
 *
 * A zero run is a stretch of unchanged bytes; a nonzero run is a stretch of changed
 * bytes, followed by the *new* bytes (as QEMU does: the XOR only finds the runs, so the
 * decoder copies them and needs the previous page only for the unchanged stretches).
 * An unchanged tail is not written. Only the first zero run may be 0; a nonzero run is
 * never 0. Lengths are "small" uleb128: 1 or 2 bytes, values below 16384, canonical.
 * An identical page encodes to 0 bytes.
 *
 * The encoder gives up as soon as the delta would not be smaller than the page
 * (DELTA_NOT_SMALLER): the caller then sends the whole page. looksChangedThroughout()
 * lets a caller skip the attempt for a page that a sample shows changed everywhere.
 */
import { HvlabError } from '../../shared/errors.js'

/** encodeDelta's answer when the delta would be as large as the page or larger. */
export const DELTA_NOT_SMALLER = -1
/** The largest run length the 2-byte uleb128 can hold; pages must not be longer. */
export const DELTA_RUN_MAX = 0x3fff

const protocolError = (what: string): HvlabError =>
  new HvlabError(
    'HVLAB_E_PROTOCOL',
    `malformed page delta: ${what}; the sender's encoder and this decoder disagree, or the batch was corrupted — drop the connection and restart the migration`,
  )

export function assertPagePair(previous: Uint8Array, current: Uint8Array): void {
  if (previous.length !== current.length || current.length === 0 || current.length > DELTA_RUN_MAX) {
    throw new HvlabError(
      'HVLAB_E_INTERNAL',
      `page delta needs two pages of the same size (1–${DELTA_RUN_MAX} bytes), got ${previous.length} and ${current.length}`,
    )
  }
}

/** Appends `value` (< 16384) as small uleb128 at out[d]; returns the new d. */
function putRunLength(out: Uint8Array, d: number, value: number): number {
  if (value < 0x80) {
    out[d] = value
    return d + 1
  }
  out[d] = (value & 0x7f) | 0x80
  out[d + 1] = value >>> 7
  return d + 2
}

const runLengthBytes = (value: number): number => (value < 0x80 ? 1 : 2)

/**
 * Scans for the end of a zero run (bytes equal) from `i`. Equal stretches are skipped
 * four bytes at a time through the word views when the pages are 4-byte aligned.
 */
function zeroRunEnd(p: Uint8Array, c: Uint8Array, pw: Uint32Array | null, cw: Uint32Array | null, i: number): number {
  const n = c.length
  while (i < n && (i & 3) !== 0 && p[i] === c[i]) i++
  if (pw !== null && cw !== null && (i & 3) === 0) {
    let w = i >>> 2
    const nw = cw.length
    while (w < nw && pw[w] === cw[w]) w++
    i = w << 2
  }
  while (i < n && p[i] === c[i]) i++
  return i
}

/**
 * Scans for the end of a nonzero run (bytes differ) from `i`, giving up (returning -1)
 * once it is longer than `len_max`. Words whose four bytes all differ (no zero byte in
 * their XOR) are skipped whole, as QEMU does with longs.
 */
function nonzeroRunEnd(p: Uint8Array, c: Uint8Array, pw: Uint32Array | null, cw: Uint32Array | null, i: number, len_max: number): number {
  const n = c.length
  const start = i
  while (i < n && (i & 3) !== 0 && p[i] !== c[i]) i++
  if (pw !== null && cw !== null && (i & 3) === 0) {
    let w = i >>> 2
    const nw = cw.length
    const w_max = (start + len_max) >>> 2
    while (w < nw && w <= w_max) {
      const x = ((pw[w] as number) ^ (cw[w] as number)) | 0
      if (((x - 0x01010101) & ~x & 0x80808080) !== 0) break // some byte is unchanged
      w++
    }
    i = w << 2
  }
  while (i < n && p[i] !== c[i] && i - start <= len_max) i++
  return i - start > len_max ? -1 : i
}

const wordView = (b: Uint8Array): Uint32Array | null =>
  (b.byteOffset & 3) === 0 && (b.length & 3) === 0 ? new Uint32Array(b.buffer, b.byteOffset, b.length >>> 2) : null

/** Words sampled by looksChangedThroughout: one every 256 bytes of a 4 KiB page. */
const SAMPLE_WORDS = 16

/**
 * True when every sampled word of `current` (16, spread over the page) differs from
 * `previous` in all four bytes. Such a page almost never has a delta smaller than itself,
 * and trying costs most of the diff time of a busy or freshly written guest; a page
 * misjudged so is sent whole — a few bytes more, never a wrong page.
 */
export function looksChangedThroughout(previous: Uint8Array, current: Uint8Array): boolean {
  const pw = wordView(previous)
  const cw = pw === null ? null : wordView(current)
  if (pw === null || cw === null || cw.length !== pw.length || cw.length < SAMPLE_WORDS) return false
  return changedThroughoutAt(pw, 0, cw, 0, cw.length)
}

/**
 * looksChangedThroughout of the pages of `words` 32-bit words at word `p_at` of `pw` and
 * `c_at` of `cw` (`words` at least SAMPLE_WORDS): the diff's hot path, with no views.
 */
export function changedThroughoutAt(pw: Uint32Array, p_at: number, cw: Uint32Array, c_at: number, words = 1024): boolean {
  const stride = Math.floor(words / SAMPLE_WORDS)
  for (let s = 0; s < SAMPLE_WORDS; s++) {
    const w = s * stride + (stride >>> 1)
    const x = ((pw[p_at + w] as number) ^ (cw[c_at + w] as number)) | 0
    if (((x - 0x01010101) & ~x & 0x80808080) !== 0) return false // some byte is unchanged
  }
  return true
}

/**
 * Encodes `current` against `previous` into `out` and returns the delta's length
 * (0 when the pages are identical), or DELTA_NOT_SMALLER when the delta would not be
 * strictly smaller than the page. `out` must hold at least `current.length` bytes.
 */
export function encodeDelta(previous: Uint8Array, current: Uint8Array, out: Uint8Array): number {
  assertPagePair(previous, current)
  const n = current.length
  if (out.length < n) {
    throw new HvlabError('HVLAB_E_INTERNAL', `delta output of ${out.length} bytes is smaller than the page (${n} bytes)`)
  }
  const pw = wordView(previous)
  const cw = pw === null ? null : wordView(current)
  const limit = n - 1 // the delta must be strictly smaller than the page
  let d = 0
  let i = 0
  while (i < n) {
    const zStart = i
    i = zeroRunEnd(previous, current, pw, cw, i)
    if (i === n) return d // an unchanged tail is not written
    const zrun = i - zStart
    const nzStart = i
    // the longest changed run that still fits, with at least 1 byte for its length
    const end = nonzeroRunEnd(previous, current, pw, cw, i, limit - d - runLengthBytes(zrun) - 1)
    if (end < 0) return DELTA_NOT_SMALLER
    i = end
    const nzrun = i - nzStart
    d = putRunLength(out, d, zrun)
    d = putRunLength(out, d, nzrun)
    if (d + nzrun > limit) return DELTA_NOT_SMALLER
    out.set(current.subarray(nzStart, i), d)
    d += nzrun
  }
  return d
}

/** Convenience for tests and cold paths: the delta bytes, or null when not smaller. */
export function encodeDeltaToBytes(previous: Uint8Array, current: Uint8Array): Uint8Array | null {
  const out = new Uint8Array(current.length)
  const len = encodeDelta(previous, current, out)
  return len === DELTA_NOT_SMALLER ? null : out.slice(0, len)
}

/** Reads a small uleb128 at src[i]; returns value and bytes read, or throws. */
function readRunLength(src: Uint8Array, i: number, what: string): { value: number; size: number } {
  const b0 = src[i]
  if (b0 === undefined) throw protocolError(`${what} length is missing at byte ${i} of ${src.length}`)
  if ((b0 & 0x80) === 0) return { value: b0, size: 1 }
  const b1 = src[i + 1]
  if (b1 === undefined) throw protocolError(`${what} length is cut off at byte ${i + 1} of ${src.length}`)
  if ((b1 & 0x80) !== 0) throw protocolError(`${what} length at byte ${i} is longer than 2 bytes`)
  if (b1 === 0) throw protocolError(`${what} length at byte ${i} is not in its shortest form`)
  return { value: (b0 & 0x7f) | (b1 << 7), size: 2 }
}

/**
 * Walks the delta and calls `run(pageOffset, deltaOffset, length)` for each nonzero run,
 * after checking it lies inside both the page and the delta. Throws HVLAB_E_PROTOCOL on
 * anything malformed: truncated lengths, zero-length runs, runs past the page end,
 * bytes missing, a trailing zero run.
 */
function walkDelta(delta: Uint8Array, page_bytes: number, run?: (d: number, i: number, len: number) => void): void {
  let i = 0
  let d = 0
  while (i < delta.length) {
    const z = readRunLength(delta, i, 'zero run')
    if (i !== 0 && z.value === 0) throw protocolError(`zero run of length 0 at byte ${i} (only the first may be 0)`)
    i += z.size
    d += z.value
    if (d >= page_bytes) throw protocolError(`zero run reaches byte ${d}, at or past the page end (${page_bytes})`)
    const nz = readRunLength(delta, i, 'changed run')
    if (nz.value === 0) throw protocolError(`changed run of length 0 at byte ${i}`)
    i += nz.size
    if (d + nz.value > page_bytes) throw protocolError(`changed run ends at byte ${d + nz.value}, past the page end (${page_bytes})`)
    if (i + nz.value > delta.length) {
      throw protocolError(`changed run needs ${nz.value} bytes at byte ${i} but the delta has ${delta.length - i} left`)
    }
    run?.(d, i, nz.value)
    i += nz.value
    d += nz.value
  }
}

/** Throws HVLAB_E_PROTOCOL unless `delta` is a well-formed delta for a page of `page_bytes`. */
export function validateDelta(delta: Uint8Array, page_bytes: number): void {
  walkDelta(delta, page_bytes)
}

/**
 * Rebuilds the page: `target` = `previous` with the delta's changed runs applied.
 * `target` may be `previous` itself (apply in place). The delta is validated in full
 * before anything is written, so a malformed delta throws and leaves `target` as it was.
 */
export function decodeDelta(previous: Uint8Array, delta: Uint8Array, target: Uint8Array): void {
  assertPagePair(previous, target)
  walkDelta(delta, target.length)
  if (target !== previous) target.set(previous)
  walkDelta(delta, target.length, (d, i, len) => target.set(delta.subarray(i, i + len), d))
}
