/**
 * A VM's disks as Replica sees them (agent/replica/disk-set.ts): one block space, disk k's
 * block b at k × blocks_per_disk + b; a read across disks goes to each disk for its part,
 * and a disk left out reads as blank without being read.
 */
import t from 'tap'
import { allDisks, diskSet, isIncluded, readSet, setBlockOf, setBlocks } from '../../agent/replica/disk-set.js'

const BS = 4

/** Block b of disk k holds the bytes [k, b, k, b]. */
const reads: string[] = []
const readDisk = async (disk: number, first: number, blocks: number): Promise<Uint8Array> => {
  reads.push(`${disk}:${first}+${blocks}`)
  const out = new Uint8Array(blocks * BS)
  for (let i = 0; i < blocks; i++) out.set([disk + 1, first + i, disk + 1, first + i], i * BS)
  return out
}

t.test('one block space: disk 0 first, then each data disk', async (t) => {
  const s = diskSet(3, 10)
  t.same(s.included, [0, 1, 2], 'every disk by default')
  t.equal(setBlocks(s), 30)
  t.equal(setBlockOf(s, 0, 7), 7)
  t.equal(setBlockOf(s, 2, 3), 23)
  t.same(allDisks(2), [0, 1])
  t.same(diskSet(3, 10, [2, 0, 2]).included, [0, 2], 'distinct and ascending')
})

t.test('a read across disks asks each for its part; a disk left out is blank and not read', async (t) => {
  reads.length = 0
  const all = await readSet(diskSet(3, 10), BS, 8, 14, readDisk)
  t.same(reads, ['0:8+2', '1:0+10', '2:0+2'], 'split at the disk boundaries')
  t.same([...all.subarray(0, BS)], [1, 8, 1, 8], "disk 0's block 8 first")
  t.same([...all.subarray(2 * BS, 3 * BS)], [2, 0, 2, 0], "then disk 1's block 0")
  t.same([...all.subarray(13 * BS)], [3, 1, 3, 1], "last, disk 2's block 1")
  reads.length = 0
  const some = diskSet(3, 10, [0, 2])
  t.notOk(isIncluded(some, 1))
  const without = await readSet(some, BS, 8, 14, readDisk)
  t.same(reads, ['0:8+2', '2:0+2'], 'disk 1 is not read')
  t.ok(
    without.subarray(2 * BS, 12 * BS).every((b) => b === 0),
    'its blocks are blank',
  )
  t.same([...without.subarray(13 * BS)], [3, 1, 3, 1])
})

t.test('refusals: a disk the VM does not have, a read past the set, a shapeless set', async (t) => {
  t.throws(() => diskSet(2, 10, [0, 2]), { code: 'HVLAB_E_USAGE', message: /has 2 disk\(s\), 0–1; it has no disk 2/ })
  t.throws(() => diskSet(2, 10, [-1]), { code: 'HVLAB_E_USAGE' })
  t.throws(() => diskSet(0, 10), { code: 'HVLAB_E_INTERNAL' })
  t.throws(() => diskSet(2, 1.5), { code: 'HVLAB_E_INTERNAL' })
  await t.rejects(readSet(diskSet(2, 10), BS, 15, 6, readDisk), { code: 'HVLAB_E_INTERNAL', message: /outside the disk set's 20/ })
})
