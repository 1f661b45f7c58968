/**
 * Block hashing for resync comparison: the worker's function called directly (code run in
 * workers is not covered), the comparison of two hash lists, and the piscina pool giving
 * the same answer as the function, refusing bad options, and bounding what is in flight.
 */
import t from 'tap'
import { createHash } from 'node:crypto'
import { differingBlocks, hashBlocks, hashBlocksSkippingZeros } from '../../array-emulator/block-hash.js'
import { BlockHashPool } from '../../array-emulator/block-hash-pool.js'
import runBlockHash from '../../array-emulator/block-hash-worker.js'
import { valueSymbol } from 'piscina'
import { patternData } from '../../shared/block-pattern.js'

const BS = 4096

t.test('hashBlocks: sha256 of each block, in order', async (t) => {
  const data = patternData('h', 10, 3, BS)
  const hashes = hashBlocks({ data, block_size_bytes: BS })
  t.equal(hashes.length, 3 * 32)
  for (let i = 0; i < 3; i++) {
    const want = createHash('sha256')
      .update(data.subarray(i * BS, (i + 1) * BS))
      .digest()
    t.same(Buffer.from(hashes.subarray(i * 32, (i + 1) * 32)), want, `block ${i}`)
  }
  t.throws(() => hashBlocks({ data: new Uint8Array(BS + 1), block_size_bytes: BS }), {
    code: 'HVLAB_E_INTERNAL',
    message: /not a whole number of 4096-byte blocks/,
  })
})

t.test('the worker entry hashes and hands the list back', async (t) => {
  const data = patternData('w', 0, 2, BS)
  const moved = runBlockHash({ data, block_size_bytes: BS }) as Record<symbol, unknown>
  const value = moved[valueSymbol]
  t.ok(value instanceof Uint8Array, 'a Uint8Array is moved back')
  t.same(Buffer.from(value as Uint8Array), Buffer.from(hashBlocks({ data, block_size_bytes: BS })))
})

t.test('hashBlocksSkippingZeros: the same hashes as hashBlocks; blocks of zeros never reach the hasher', async (t) => {
  const data = Buffer.concat([Buffer.alloc(BS), patternData('z', 1, 1, BS), Buffer.alloc(2 * BS), patternData('z', 4, 1, BS)])
  data[3 * BS + 7] = 1 // block 3 is not all zeros: one byte decides
  const handed: number[] = []
  const hasher = async (d: Uint8Array): Promise<Uint8Array> => {
    handed.push(d.length / BS)
    return hashBlocks({ data: d, block_size_bytes: BS })
  }
  const got = await hashBlocksSkippingZeros(data, BS, hasher)
  t.same(Buffer.from(got), Buffer.from(hashBlocks({ data, block_size_bytes: BS })))
  t.same(handed, [3], 'blocks 1, 3 and 4 went to the hasher, in one call')
  handed.length = 0
  const zeros = await hashBlocksSkippingZeros(Buffer.alloc(3 * BS), BS, hasher)
  t.same(Buffer.from(zeros), Buffer.from(hashBlocks({ data: Buffer.alloc(3 * BS), block_size_bytes: BS })))
  t.same(handed, [], 'all zeros: the hasher is not called')
  const full = patternData('f', 0, 2, BS)
  t.same(Buffer.from(await hashBlocksSkippingZeros(full, BS, hasher)), Buffer.from(hashBlocks({ data: full, block_size_bytes: BS })))
  t.same(handed, [2], 'no zeros: the data goes as it is')
  await t.rejects(
    hashBlocksSkippingZeros(new Uint8Array(BS + 1), BS, async (d) => hashBlocks({ data: d, block_size_bytes: BS })),
    { code: 'HVLAB_E_INTERNAL' },
    'a ragged batch is refused by the hasher',
  )
})

t.test('differingBlocks: exactly the blocks whose hashes differ', async (t) => {
  const blocks = [3, 4, 5, 9]
  const a = patternData('x', 0, 4, BS)
  const b = Buffer.from(a)
  b.fill(1, 1 * BS, 1 * BS + 10) // second listed block (4) differs
  b.fill(2, 3 * BS, 3 * BS + 1) // fourth (9) differs
  const ha = hashBlocks({ data: a, block_size_bytes: BS })
  const hb = hashBlocks({ data: b, block_size_bytes: BS })
  t.same(differingBlocks(blocks, ha, hb), [4, 9])
  t.same(differingBlocks(blocks, ha, ha), [])
  t.throws(() => differingBlocks(blocks, ha, hb.subarray(0, 64)), { code: 'HVLAB_E_PROTOCOL', message: /do not match 4 blocks/ })
})

t.test('the pool hashes in workers, the same as the function, and bounds what is in flight', async (t) => {
  t.throws(() => new BlockHashPool({ threads: 0 }), { code: 'HVLAB_E_USAGE', message: /threads must be an integer 1–16/ })
  t.throws(() => new BlockHashPool({ inflight_max: 0 }), { code: 'HVLAB_E_USAGE' })
  const pool = new BlockHashPool({ threads: 2, inflight_max: 2, idle_timeout_ms: 500 })
  t.teardown(() => pool.close())
  const inputs = Array.from({ length: 6 }, (_, i) => patternData(`p${i}`, 0, 8, BS))
  const results = await Promise.all(inputs.map((d) => pool.hash(d, BS)))
  results.forEach((r, i) => t.same(Buffer.from(r), Buffer.from(hashBlocks({ data: inputs[i]!, block_size_bytes: BS })), `task ${i}`))
  t.equal(pool.blocks_hashed_total, 6 * 8, 'every block hashed once')
  await t.rejects(
    pool.hash(new Uint8Array(BS + 3), BS),
    { message: /not a whole number of 4096-byte blocks/ },
    'a bad task fails in the worker and is reported',
  )
  await pool.close()
  await t.rejects(pool.hash(inputs[0]!, BS), { code: 'HVLAB_E_STATE', message: /closed/ })
})
