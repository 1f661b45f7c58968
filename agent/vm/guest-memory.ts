/**
 * The emulated VM's memory: `page_count` pages of 4 KiB in a SharedArrayBuffer, with a
 * dirty bitmap (one bit per page, Int32Array words, Atomics) in a second
 * SharedArrayBuffer. Both buffers can be handed to worker threads or wrapped again on
 * the destination (`GuestMemory.fromShared`): nothing is copied.
 *
 * Dirty tracking follows the order a live migration needs: a write stores the bytes
 * first and sets the page's dirty bit after (Atomics.or, sequentially consistent). The
 * migration takes the bitmap (Atomics.exchange word by word, read-and-reset) *before*
 * it reads the pages. So a write that races with a round either lands in the bytes
 * that round reads, or sets a bit the next round sees: it is never lost.
 */
import { createHash } from 'node:crypto'
import { setImmediate as serveEventLoop } from 'node:timers/promises'
import { HvlabError } from '../../shared/errors.js'
import { PAGE_SIZE_BYTES } from '../../shared/protocol/page-size.js'

/** 4 GiB of guest memory; a lab VM is far smaller. */
export const GUEST_PAGES_MAX = 1 << 20
const BITS_PER_WORD = 32

export interface GuestMemoryBuffers {
  /** page_count × 4096 bytes. */
  readonly memory: SharedArrayBuffer
  /** ceil(page_count / 32) Int32 words. */
  readonly dirty: SharedArrayBuffer
}

const dirtyWordsFor = (page_count: number): number => Math.ceil(page_count / BITS_PER_WORD)

export class GuestMemory {
  readonly page_count: number
  readonly page_size_bytes = PAGE_SIZE_BYTES
  readonly buffers: GuestMemoryBuffers
  /** All of memory as bytes; writing here does NOT mark pages dirty (use write()). */
  readonly bytes: Uint8Array
  private readonly dirtyWords: Int32Array

  private constructor(buffers: GuestMemoryBuffers) {
    const { memory, dirty } = buffers
    if (memory.byteLength === 0 || memory.byteLength % PAGE_SIZE_BYTES !== 0) {
      throw new HvlabError(
        'HVLAB_E_USAGE',
        `guest memory of ${memory.byteLength} bytes is not a whole number of ${PAGE_SIZE_BYTES}-byte pages; give a size that is a positive multiple of ${PAGE_SIZE_BYTES}`,
      )
    }
    const page_count = memory.byteLength / PAGE_SIZE_BYTES
    assertPageCount(page_count)
    const words = dirtyWordsFor(page_count)
    if (dirty.byteLength !== words * 4) {
      throw new HvlabError(
        'HVLAB_E_USAGE',
        `dirty bitmap of ${dirty.byteLength} bytes does not fit ${page_count} pages; it must be ${words * 4} bytes`,
      )
    }
    this.page_count = page_count
    this.buffers = buffers
    this.bytes = new Uint8Array(memory)
    this.dirtyWords = new Int32Array(dirty)
  }

  /** New zeroed memory with a clean dirty bitmap. */
  static create(page_count: number): GuestMemory {
    assertPageCount(page_count)
    return new GuestMemory({
      memory: new SharedArrayBuffer(page_count * PAGE_SIZE_BYTES),
      dirty: new SharedArrayBuffer(dirtyWordsFor(page_count) * 4),
    })
  }

  /** Wraps memory that already exists (in a worker, or on the destination). */
  static fromShared(buffers: GuestMemoryBuffers): GuestMemory {
    return new GuestMemory(buffers)
  }

  get byte_length(): number {
    return this.page_count * PAGE_SIZE_BYTES
  }

  /** The page's bytes, shared with memory (no copy, no dirty marking). */
  pageView(page: number): Uint8Array {
    this.assertPage(page)
    return new Uint8Array(this.buffers.memory, page * PAGE_SIZE_BYTES, PAGE_SIZE_BYTES)
  }

  /** A copy of `length` bytes at `offset`. */
  read(offset: number, length: number): Uint8Array {
    this.assertRange(offset, length)
    return this.bytes.slice(offset, offset + length)
  }

  /** Writes `data` at `offset` (may span pages) and marks every touched page dirty. */
  write(offset: number, data: Uint8Array): void {
    this.assertRange(offset, data.length)
    if (data.length === 0) return
    this.bytes.set(data, offset)
    const first = Math.floor(offset / PAGE_SIZE_BYTES)
    const last = Math.floor((offset + data.length - 1) / PAGE_SIZE_BYTES)
    for (let p = first; p <= last; p++) this.setDirtyBit(p)
  }

  writeByte(offset: number, value: number): void {
    this.assertRange(offset, 1)
    this.bytes[offset] = value
    this.setDirtyBit(Math.floor(offset / PAGE_SIZE_BYTES))
  }

  /** Fills `length` bytes at `offset` with `value`, marking the pages dirty. */
  fill(offset: number, length: number, value: number): void {
    this.assertRange(offset, length)
    if (length === 0) return
    this.bytes.fill(value, offset, offset + length)
    const first = Math.floor(offset / PAGE_SIZE_BYTES)
    const last = Math.floor((offset + length - 1) / PAGE_SIZE_BYTES)
    for (let p = first; p <= last; p++) this.setDirtyBit(p)
  }

  markDirty(page: number): void {
    this.assertPage(page)
    this.setDirtyBit(page)
  }

  /**
   * Commits every page: the operating system gives a process new memory on its first write,
   * a page at a time (measured on this project's machine: about 3 ms per MiB, against
   * 0.07 ms per MiB to copy into memory already written). A destination commits the arriving
   * VM's memory in the migration's setup, as Hyper-V allocates the skeleton VM's memory there
   * (seed 000), so the pre-copy writes into memory that is already there. Each page gets an
   * atomic add of 0: safe while anything else reads or writes the memory, and it changes no
   * byte and no dirty bit (guest-memory-prefault.ts touches a running guest's memory the
   * same way). Blocks its thread: the destination runs it in an apply worker.
   */
  commitPages(): void {
    const words = new Int32Array(this.buffers.memory)
    const per_page = PAGE_SIZE_BYTES / 4
    for (let w = 0; w < words.length; w += per_page) Atomics.add(words, w, 0)
  }

  /** Every page dirty: the first pre-copy round sends all of memory. */
  markAllDirty(): void {
    const words = this.dirtyWords.length
    for (let w = 0; w < words - 1; w++) Atomics.store(this.dirtyWords, w, -1)
    const tail = this.page_count - (words - 1) * BITS_PER_WORD
    Atomics.or(this.dirtyWords, words - 1, tail === BITS_PER_WORD ? -1 : (1 << tail) - 1)
  }

  isDirty(page: number): boolean {
    this.assertPage(page)
    const bit = 1 << (page % BITS_PER_WORD)
    return (Atomics.load(this.dirtyWords, Math.floor(page / BITS_PER_WORD)) & bit) !== 0
  }

  /** How many pages are dirty now (a snapshot; the guest may be writing). */
  dirtyCount(): number {
    let n = 0
    for (let w = 0; w < this.dirtyWords.length; w++) n += popcount32(Atomics.load(this.dirtyWords, w))
    return n
  }

  /**
   * Reads and resets the dirty bitmap, word by word with Atomics.exchange, and returns
   * the dirty page indices in ascending order. A page written after its word was taken
   * shows up in the next call.
   */
  takeDirty(): Uint32Array {
    const words = this.dirtyWords.length
    const taken = new Int32Array(words)
    let n = 0
    for (let w = 0; w < words; w++) {
      const bits = Atomics.exchange(this.dirtyWords, w, 0)
      taken[w] = bits
      n += popcount32(bits)
    }
    const pages = new Uint32Array(n)
    let k = 0
    for (let w = 0; w < words; w++) {
      let bits = taken[w] ?? 0
      while (bits !== 0) {
        const low = bits & -bits
        pages[k++] = w * BITS_PER_WORD + (31 - Math.clz32(low))
        bits ^= low
      }
    }
    return pages
  }

  /** sha256 of all of memory, hex: source and destination agree at pause. Blocks the event loop (tests). */
  sha256(): string {
    return sha256OfBytes(this.bytes)
  }

  /**
   * The same hash, a slice at a time with the event loop served between slices: what a
   * host uses (hashing a GiB at once would stall its heartbeats past the peers' liveness
   * cut). Consistent only while nothing writes: a paused or idle guest.
   */
  sha256Async(): Promise<string> {
    return sha256OfBytesAsync(this.bytes)
  }

  private setDirtyBit(page: number): void {
    Atomics.or(this.dirtyWords, Math.floor(page / BITS_PER_WORD), 1 << (page % BITS_PER_WORD))
  }

  private assertPage(page: number): void {
    if (!Number.isInteger(page) || page < 0 || page >= this.page_count) {
      throw new HvlabError('HVLAB_E_USAGE', `page ${page} is outside guest memory of ${this.page_count} pages (0–${this.page_count - 1})`)
    }
  }

  private assertRange(offset: number, length: number): void {
    if (!Number.isInteger(offset) || !Number.isInteger(length) || offset < 0 || length < 0 || offset + length > this.byte_length) {
      throw new HvlabError('HVLAB_E_USAGE', `bytes ${offset}..${offset + length} are outside guest memory of ${this.byte_length} bytes`)
    }
  }
}

/** Slices hashed at once: about 5 ms of work each. node:crypto takes views over SharedArrayBuffer. */
const HASH_SLICE_BYTES = 4 * 1024 * 1024

function* hashSlices(bytes: Uint8Array): Generator<Uint8Array> {
  for (let off = 0; off < bytes.length; off += HASH_SLICE_BYTES) yield bytes.subarray(off, Math.min(bytes.length, off + HASH_SLICE_BYTES))
}

export function sha256OfBytes(bytes: Uint8Array): string {
  const hash = createHash('sha256')
  for (const slice of hashSlices(bytes)) hash.update(slice)
  return hash.digest('hex')
}

export async function sha256OfBytesAsync(bytes: Uint8Array): Promise<string> {
  const hash = createHash('sha256')
  for (const slice of hashSlices(bytes)) {
    hash.update(slice)
    await serveEventLoop()
  }
  return hash.digest('hex')
}

function assertPageCount(page_count: number): void {
  if (!Number.isInteger(page_count) || page_count < 1 || page_count > GUEST_PAGES_MAX) {
    throw new HvlabError(
      'HVLAB_E_USAGE',
      `guest memory of ${page_count} pages is not allowed; give 1–${GUEST_PAGES_MAX} pages (4 KiB each, at most 4 GiB)`,
    )
  }
}

function popcount32(x: number): number {
  let v = x >>> 0
  v = v - ((v >>> 1) & 0x55555555)
  v = (v & 0x33333333) + ((v >>> 2) & 0x33333333)
  return (((v + (v >>> 4)) & 0x0f0f0f0f) * 0x01010101) >>> 24
}
