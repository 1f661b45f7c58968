/**
 * Per-block hashes for resync comparison: the sha256 of each block of a run of blocks,
 * and which blocks of a batch differ between two hash lists. Pure functions; the pool
 * (block-hash-pool.ts) runs `hashBlocks` in worker threads. Blocks of zeros (most of a
 * new VM's disk) are answered from one cached hash and never reach the hasher, as an
 * array's zero detection skips them (`hashBlocksSkippingZeros`).
 */
import { createHash } from 'node:crypto'
import { HvlabError } from '../shared/errors.js'
import { BLOCK_HASH_BYTES } from '../shared/protocol/storage-messages.js'

export interface BlockHashTask {
  /** Whole blocks, back to back. */
  data: Uint8Array
  block_size_bytes: number
}

/** sha256 of each block of `data`: BLOCK_HASH_BYTES per block, in order. */
export function hashBlocks(task: BlockHashTask): Uint8Array {
  const { data, block_size_bytes: bs } = task
  if (!Number.isSafeInteger(bs) || bs < 1 || data.length % bs !== 0) {
    throw new HvlabError('HVLAB_E_INTERNAL', `block hashing: ${data.length} bytes is not a whole number of ${bs}-byte blocks`)
  }
  const n = data.length / bs
  const out = new Uint8Array(n * BLOCK_HASH_BYTES)
  for (let i = 0; i < n; i++) {
    out.set(
      createHash('sha256')
        .update(data.subarray(i * bs, (i + 1) * bs))
        .digest(),
      i * BLOCK_HASH_BYTES,
    )
  }
  return out
}

const zeroBlocks = new Map<number, { zeros: Buffer; hash: Uint8Array }>()

/** A block of zeros of `block_size_bytes` and its hash, made once per block size. */
function zeroBlock(block_size_bytes: number): { zeros: Buffer; hash: Uint8Array } {
  let z = zeroBlocks.get(block_size_bytes)
  if (!z) {
    const zeros = Buffer.alloc(block_size_bytes)
    z = { zeros, hash: hashBlocks({ data: zeros, block_size_bytes }) }
    zeroBlocks.set(block_size_bytes, z)
  }
  return z
}

/**
 * The same hashes as `hashBlocks`, with the blocks of zeros answered from the cached hash
 * and only the others handed to `hashNonZero` (back to back, in order; not called when
 * every block is zeros).
 */
export async function hashBlocksSkippingZeros(
  data: Uint8Array,
  block_size_bytes: number,
  hashNonZero: (data: Uint8Array) => Promise<Uint8Array>,
): Promise<Uint8Array> {
  const bs = block_size_bytes
  if (!Number.isSafeInteger(bs) || bs < 1 || data.length % bs !== 0) return hashNonZero(data) // hashBlocks says what is wrong
  const { zeros, hash } = zeroBlock(bs)
  const n = data.length / bs
  const block = (i: number): Uint8Array => data.subarray(i * bs, (i + 1) * bs)
  const nonZero: number[] = []
  for (let i = 0; i < n; i++) if (!zeros.equals(block(i))) nonZero.push(i)
  const out = new Uint8Array(n * BLOCK_HASH_BYTES)
  for (let i = 0; i < n; i++) out.set(hash, i * BLOCK_HASH_BYTES)
  if (nonZero.length === 0) return out
  const hashed = nonZero.length === n ? await hashNonZero(data) : await hashNonZero(Buffer.concat(nonZero.map(block)))
  nonZero.forEach((i, k) => out.set(hashed.subarray(k * BLOCK_HASH_BYTES, (k + 1) * BLOCK_HASH_BYTES), i * BLOCK_HASH_BYTES))
  return out
}

/** The blocks of `blocks` whose hash differs between the two lists (both in `blocks` order). */
export function differingBlocks(blocks: readonly number[], local: Uint8Array, remote: Uint8Array): number[] {
  const size = blocks.length * BLOCK_HASH_BYTES
  if (local.length !== size || remote.length !== size) {
    throw new HvlabError(
      'HVLAB_E_PROTOCOL',
      `hash lists of ${local.length} and ${remote.length} bytes do not match ${blocks.length} blocks of ${BLOCK_HASH_BYTES}-byte hashes`,
    )
  }
  const out: number[] = []
  blocks.forEach((b, i) => {
    const at = i * BLOCK_HASH_BYTES
    if (Buffer.compare(local.subarray(at, at + BLOCK_HASH_BYTES), remote.subarray(at, at + BLOCK_HASH_BYTES)) !== 0) out.push(b)
  })
  return out
}
