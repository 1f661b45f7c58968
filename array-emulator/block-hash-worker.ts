/**
 * The piscina worker entry for block hashing: hashes the task's blocks and hands the hash
 * list back by transferring its buffer (moved, not copied).
 */
import { move } from 'piscina'
import { hashBlocks, type BlockHashTask } from './block-hash.js'

export default function runBlockHash(task: BlockHashTask): unknown {
  return move(hashBlocks(task))
}
