/**
 * Deterministic block contents for test and demo writes (`hvlab array write --pattern`
 * on an array, `hvlab csv write` through a host's CSV I/O path): block `b` written with
 * seed `s` holds sha256(`${s}:${b}`) repeated. Anyone who knows the seed and the block
 * number can tell whether a block holds that write — which is what the lab's history
 * checker does with the arrays' digests.
 */
import { createHash } from 'node:crypto'
import { HvlabError } from './errors.js'

const DIGEST_BYTES = 32

export function patternBlock(seed: string, block: number, block_size_bytes: number): Buffer {
  if (block_size_bytes % DIGEST_BYTES !== 0)
    throw new HvlabError('HVLAB_E_USAGE', `block size ${block_size_bytes} is not a multiple of ${DIGEST_BYTES} bytes`)
  const unit = createHash('sha256').update(`${seed}:${block}`).digest()
  const out = Buffer.allocUnsafe(block_size_bytes)
  for (let i = 0; i < block_size_bytes; i += DIGEST_BYTES) unit.copy(out, i)
  return out
}

/** `blocks` consecutive pattern blocks from `block`. */
export function patternData(seed: string, block: number, blocks: number, block_size_bytes: number): Buffer {
  return Buffer.concat(Array.from({ length: blocks }, (_, i) => patternBlock(seed, block + i, block_size_bytes)))
}

export function sha256Hex(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex')
}
