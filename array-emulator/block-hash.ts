/**
 * Per-block hashes for resync comparison: the sha256 of each block of a run of blocks,
 * and which blocks of a batch differ between two hash lists. Pure functions; the pool
 * (block-hash-pool.ts) runs `hashBlocks` in worker threads.
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
