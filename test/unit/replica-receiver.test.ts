/**
 * The replica server's side of one VM (agent/replica/replica-receiver.ts), fed shipments
 * from a real ReplicaLog over the real part frames: after each applied cycle the replica
 * disk equals the primary's as it was when that log closed; a replayed shipment is ignored,
 * a gap, a log from the future or a corrupt part is refused, and none of them changes a
 * byte of the replica; a chosen recovery point gives back exactly that disk; a resync
 * clears the points and says which cycle comes next.
 */
import t, { type Test } from 'tap'
import { ReplicaLog, type LogShipment } from '../../agent/replica/replica-log.js'
import { ReplicaReceiver, type ReplicaDisk } from '../../agent/replica/replica-receiver.js'
import { shipmentParts } from '../../agent/replica/shipment-frames.js'
import { mulberry32 } from '../../shared/seeded-random.js'

const BS = 512
const BLOCKS = 64

class MemoryDisk implements ReplicaDisk {
  readonly blocks = BLOCKS
  readonly block_size_bytes = BS
  readonly bytes = new Uint8Array(BLOCKS * BS)
  readBlock(block: number): Uint8Array {
    return this.bytes.slice(block * BS, (block + 1) * BS)
  }
  writeBlock(block: number, data: Uint8Array): void {
    this.bytes.set(data, block * BS)
  }
  copy(): Uint8Array {
    return this.bytes.slice()
  }
}

/** A primary: its disk and its log, written at random from a seed. */
function primary(seed: number) {
  const rand = mulberry32(seed)
  const disk = new MemoryDisk()
  const log = new ReplicaLog({ vm: 'vm1', block_size_bytes: BS, disk_blocks: BLOCKS })
  const write = (n: number): void => {
    for (let i = 0; i < n; i++) {
      const block = Math.floor(rand() * BLOCKS)
      const data = new Uint8Array(BS).fill(Math.floor(rand() * 256))
      disk.writeBlock(block, data)
      log.append(block, data)
    }
  }
  return { disk, log, write }
}

function replica(points = 24, point_every_ms = 0) {
  const disk = new MemoryDisk()
  const receiver = new ReplicaReceiver({
    vm: 'vm1',
    disk,
    recovery_points: points,
    point_every_ms,
    clock_skew_ms: 1_000,
    staged_bytes_max: 1 << 20,
    applied_cycle: 0,
  })
  return { disk, receiver }
}

/** Sends a shipment in parts of 8 blocks; the answer to its last part. */
function send(t: Test, r: ReplicaReceiver, s: LogShipment, now_ms: number) {
  const parts = shipmentParts(s, { block_size_bytes: BS, compression: 'deflate', part_body_bytes_max: 4 + 8 * (4 + BS) })
  const answers = parts.map((p) => r.onPart(p.message, p.attachment, now_ms).answer)
  t.ok(
    answers.slice(0, -1).every((a) => a.outcome === 'staged'),
    'every part but the last is staged',
  )
  return answers.at(-1)!
}

t.test('each applied cycle makes the replica the primary as its log closed', async (t) => {
  const p = primary(20261206)
  const { disk, receiver } = replica()
  for (let cycle = 1; cycle <= 5; cycle++) {
    p.write(40)
    const s = p.log.close(cycle * 1000)
    const a = send(t, receiver, s, cycle * 1000)
    t.match(a, { outcome: 'applied', cycle, resync: false })
    t.same(disk.bytes, p.disk.bytes, `cycle ${cycle}: identical disks`)
  }
  t.equal(receiver.appliedCycle, 5)
})

t.test('replays, gaps, logs from the future and corrupt parts change nothing', async (t) => {
  const p = primary(7)
  const { disk, receiver } = replica()
  p.write(30)
  const first = p.log.close(1000)
  send(t, receiver, first, 1000)
  const before = disk.copy()
  t.match(send(t, receiver, first, 2000), { outcome: 'ignored', refusal: 'replayed', resync: false }, 'a replay')
  p.write(30)
  p.log.close(2000) // lost on the way
  p.write(30)
  const third = p.log.close(3000)
  t.match(send(t, receiver, third, 3000), { outcome: 'refused', refusal: 'cycle-gap', resync: true }, 'a gap asks for a resync')
  p.write(30)
  const future = { ...p.log.close(4000), cycle: 2, closed_at_ms: 60_000 }
  t.match(send(t, receiver, future, 4000), { outcome: 'refused', refusal: 'from-future' }, 'a log from the future')
  const [part] = shipmentParts({ ...future, closed_at_ms: 4000 }, { block_size_bytes: BS, compression: 'none' })
  const torn = part!.attachment.subarray(0, part!.attachment.length - 7)
  t.match(
    receiver.onPart(part!.message, torn, 4000).answer,
    { outcome: 'refused', refusal: 'malformed', resync: false },
    'a truncated part',
  )
  t.same(disk.bytes, before, 'the replica is unharmed')
  t.equal(receiver.appliedCycle, 1)
})

t.test('a recovery point gives back exactly that disk; a resync clears the points', async (t) => {
  const p = primary(99)
  const { disk, receiver } = replica(3)
  const images = new Map<number, Uint8Array>()
  for (let cycle = 1; cycle <= 5; cycle++) {
    p.write(25)
    send(t, receiver, p.log.close(cycle * 1000), cycle * 1000)
    images.set(cycle, disk.copy())
  }
  t.same(
    receiver.recoveryPoints().map((x) => x.cycle),
    [3, 4, 5],
    'three kept, the oldest merged away',
  )
  receiver.revertTo(3)
  t.same(disk.bytes, images.get(3), 'the disk of cycle 3, byte for byte')
  t.equal(receiver.appliedCycle, 3)
  receiver.resynced(9)
  t.same(receiver.recoveryPoints(), [], 'cleared')
  t.equal(receiver.appliedCycle, 8, 'cycle 9 comes next')
})

t.test('points are taken no more often than point_every_ms', async (t) => {
  const p = primary(5)
  const { receiver } = replica(24, 2500)
  for (let cycle = 1; cycle <= 6; cycle++) {
    p.write(5)
    send(t, receiver, p.log.close(cycle * 1000), cycle * 1000)
  }
  t.same(
    receiver.recoveryPoints().map((x) => x.cycle),
    [1, 4],
    'at 1 s and 4 s (6 s is 2 s after the last)',
  )
})
