/**
 * A replica server's judgement of each log shipment (agent/replica/shipment-check.ts): the
 * next cycle is applied; a replay is ignored (the replica unharmed); a gap asks for a
 * resync; a log from the future, another VM's, blocks out of order, off the disk or
 * truncated are refused before anything is written.
 */
import t from 'tap'
import { judgeShipment, type ReplicaState } from '../../agent/replica/shipment-check.js'
import { ReplicaLog } from '../../agent/replica/replica-log.js'

const BS = 8
const REPLICA: ReplicaState = { vm: 'vm1', applied_cycle: 4, disk_blocks: 16, block_size_bytes: BS }
const NOW = 100_000
const SKEW = 100

function shipment(cycle: number, blocks: { block: number; data: Uint8Array }[] = [{ block: 1, data: new Uint8Array(BS) }]) {
  return { vm: 'vm1', cycle, closed_at_ms: NOW - 50, blocks }
}

t.test('the next cycle is applied; a replay ignored; a gap refused with a resync', async (t) => {
  t.same(judgeShipment(shipment(5), REPLICA, NOW, SKEW), { action: 'apply' })
  t.match(judgeShipment(shipment(4), REPLICA, NOW, SKEW), { action: 'ignore', refusal: 'replayed', resync: false })
  t.match(judgeShipment(shipment(2), REPLICA, NOW, SKEW), { action: 'ignore', refusal: 'replayed' })
  t.match(judgeShipment(shipment(7), REPLICA, NOW, SKEW), { action: 'refuse', refusal: 'cycle-gap', resync: true })
})

t.test('refused: from the future, another VM, out of order, off the disk, truncated', async (t) => {
  t.match(judgeShipment({ ...shipment(5), closed_at_ms: NOW + SKEW + 1 }, REPLICA, NOW, SKEW), { action: 'refuse', refusal: 'from-future' })
  t.same(judgeShipment({ ...shipment(5), closed_at_ms: NOW + SKEW }, REPLICA, NOW, SKEW), { action: 'apply' }, 'within the skew')
  t.match(judgeShipment({ ...shipment(5), vm: 'vm2' }, REPLICA, NOW, SKEW), { action: 'refuse', refusal: 'wrong-vm' })
  const data = new Uint8Array(BS)
  const bad = [
    [
      { block: 3, data },
      { block: 2, data },
    ],
    [
      { block: 3, data },
      { block: 3, data },
    ],
    [{ block: 16, data }],
    [{ block: 1.5, data }],
    [{ block: 1, data: new Uint8Array(BS - 1) }],
  ]
  for (const blocks of bad)
    t.match(judgeShipment(shipment(5, blocks), REPLICA, NOW, SKEW), { action: 'refuse', refusal: 'malformed', resync: false })
})

t.test('what a ReplicaLog closes is well formed', async (t) => {
  const log = new ReplicaLog({ vm: 'vm1', block_size_bytes: BS, disk_blocks: 16, first_cycle: 5 })
  for (const b of [9, 3, 9, 15, 0]) log.append(b, new Uint8Array(BS).fill(b))
  t.same(judgeShipment(log.close(NOW), REPLICA, NOW, SKEW), { action: 'apply' })
})
