/**
 * The Replica log (agent/replica/replica-log.ts): closing keeps the latest write of each
 * block and nothing else, in block order; cycles number on; the log's size counts every
 * write, and past half of the disk it asks for a resync; a write off the disk is refused.
 */
import t from 'tap'
import { ReplicaLog } from '../../agent/replica/replica-log.js'
import { mulberry32 } from '../../shared/seeded-random.js'

const BS = 8
const block = (fill: number) => new Uint8Array(BS).fill(fill)

t.test('a closed log keeps only the latest write of each block, in block order', async (t) => {
  const log = new ReplicaLog({ vm: 'vm1', block_size_bytes: BS, disk_blocks: 16 })
  log.append(5, block(1))
  log.append(2, block(2))
  log.append(5, block(3))
  log.append(9, block(4))
  log.append(2, block(5))
  t.equal(log.pendingBytes, 3 * BS, 'three blocks to ship')
  t.equal(log.loggedBytes, 5 * BS, 'five writes logged')
  const s = log.close(1234)
  t.same(
    s.blocks.map((b) => [b.block, b.data[0]]),
    [
      [2, 5],
      [5, 3],
      [9, 4],
    ],
  )
  t.match(s, { vm: 'vm1', cycle: 1, closed_at_ms: 1234, writes_logged: 5, logged_bytes: 5 * BS })
  const next = log.close(2000)
  t.match(next, { cycle: 2, blocks: [], writes_logged: 0 }, 'the next log starts empty')
})

t.test('coalescing is the reverse-order replay: the same as applying every write in order', async (t) => {
  const rand = mulberry32(20261206)
  const log = new ReplicaLog({ vm: 'vm1', block_size_bytes: BS, disk_blocks: 32, first_cycle: 7 })
  const disk = new Map<number, number>()
  for (let i = 0; i < 500; i++) {
    const b = Math.floor(rand() * 32)
    const v = Math.floor(rand() * 256)
    const data = block(v)
    log.append(b, data)
    data.fill(0) // the log copied it
    disk.set(b, v)
  }
  const s = log.close(1)
  t.equal(s.cycle, 7)
  t.same(new Map(s.blocks.map((b) => [b.block, b.data[0]!])), disk)
  t.equal(new Set(s.blocks.map((b) => b.block)).size, s.blocks.length, 'each block once')
})

t.test('a log past half of the disk asks for a resync; a write off the disk or of the wrong size is refused', async (t) => {
  const log = new ReplicaLog({ vm: 'vm1', block_size_bytes: BS, disk_blocks: 4 })
  log.append(0, block(1))
  log.append(0, block(2))
  t.notOk(log.needsResync, 'exactly half: not yet')
  log.append(0, block(3))
  t.ok(log.needsResync, 'past half (three writes to one block still count three)')
  t.equal(log.pendingBytes, BS, 'though it would ship one block')
  t.throws(() => log.append(4, block(1)), /outside the disk's 4 blocks/)
  t.throws(() => log.append(-1, block(1)), /outside/)
  t.throws(() => log.append(1, new Uint8Array(3)), /not one 8-byte block/)
  t.throws(() => new ReplicaLog({ vm: 'x', block_size_bytes: 0, disk_blocks: 1 }), /block size/)
})

t.test('a log opened before its cycle was known is numbered once, before its first close', async (t) => {
  const log = new ReplicaLog({ vm: 'vm1', block_size_bytes: BS, disk_blocks: 16 })
  log.append(2, new Uint8Array(BS).fill(2))
  log.numberFrom(12)
  t.equal(log.openCycle, 12)
  t.match(log.close(5), { cycle: 12, blocks: [{ block: 2 }] }, 'the writes logged before are its')
  t.equal(log.openCycle, 13)
  t.throws(() => log.numberFrom(20), /cycle 12 was closed, it cannot be renumbered/)
  t.throws(() => new ReplicaLog({ vm: 'x', block_size_bytes: BS, disk_blocks: 1 }).numberFrom(0), /a cycle is a whole number from 1/)
})
