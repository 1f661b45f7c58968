/**
 * A replica disk on the replica server's storage (agent/replica/replica-store.ts): what was
 * persisted is there after a reopen; a crash at either step of persisting (the redo log
 * durable, the blocks written) ends, at the next open, with the whole cycle applied; a
 * stale redo log is dropped; a folder that is another VM's, or whose files are damaged, is
 * refused with a clear error and nothing is changed. With the receiver in front of it, a
 * replica server that restarts between cycles goes on from where it was.
 */
import t from 'tap'
import { existsSync, readFileSync, writeFileSync, truncateSync } from 'node:fs'
import { join } from 'node:path'
import type { LogShipment } from '../../agent/replica/replica-log.js'
import { ReplicaReceiver } from '../../agent/replica/replica-receiver.js'
import { ReplicaStore } from '../../agent/replica/replica-store.js'
import { shipmentParts } from '../../agent/replica/shipment-frames.js'
import { BLOCKS, BS, G, cycles } from './replica-cycles-fixture.js'

const diskOf = (store: ReplicaStore): Uint8Array => {
  const out = new Uint8Array(BLOCKS * BS)
  for (let b = 0; b < BLOCKS; b++) out.set(store.disk.readBlock(b), b * BS)
  return out
}

/** Applies a shipment in memory, as ReplicaReceiver does before the store persists it. */
function applyInMemory(store: ReplicaStore, s: LogShipment): void {
  for (const b of s.blocks) store.disk.writeBlock(b.block, b.data)
}

t.test('a new replica is all zeros at cycle 0; what was persisted is there after a reopen', async (t) => {
  const dir = t.testdir()
  const { shipments, images } = cycles(2)
  const store = await ReplicaStore.open(dir, G)
  t.equal(store.appliedCycle, 0)
  t.same(diskOf(store), new Uint8Array(BLOCKS * BS))
  for (const s of shipments) {
    applyInMemory(store, s)
    await store.persist(s)
  }
  const again = await ReplicaStore.open(dir, G)
  t.equal(again.appliedCycle, 2)
  t.same(diskOf(again), images[1], 'the disk of cycle 2')
  t.same(new Uint8Array(readFileSync(join(dir, 'disk.img'))), images[1], 'and so is disk.img')
  t.notOk(existsSync(join(dir, 'pending.hrl')), 'no redo log left')
})

for (const crashAfter of ['the redo log', 'the blocks'] as const) {
  t.test(`a crash after ${crashAfter}: the next open applies the whole cycle`, async (t) => {
    const dir = t.testdir()
    const { shipments, images } = cycles(2)
    const store = await ReplicaStore.open(dir, G)
    applyInMemory(store, shipments[0]!)
    await store.persist(shipments[0]!)
    await store.logPending(shipments[1]!)
    if (crashAfter === 'the blocks') await store.writeBlocks(shipments[1]!)
    // the process dies here: state.json still says cycle 1
    const reopened = await ReplicaStore.open(dir, G)
    t.equal(reopened.appliedCycle, 2)
    t.same(diskOf(reopened), images[1], 'the disk of cycle 2, in memory')
    t.same(new Uint8Array(readFileSync(join(dir, 'disk.img'))), images[1], 'and on disk')
    t.notOk(existsSync(join(dir, 'pending.hrl')))
  })
}

t.test('a redo log of a cycle already applied is dropped', async (t) => {
  const dir = t.testdir()
  const { shipments, images } = cycles(2)
  const store = await ReplicaStore.open(dir, G)
  for (const s of shipments) {
    applyInMemory(store, s)
    await store.persist(s)
  }
  await store.logPending(shipments[0]!) // an old one, as if its removal was lost
  const reopened = await ReplicaStore.open(dir, G)
  t.equal(reopened.appliedCycle, 2)
  t.same(diskOf(reopened), images[1], 'cycle 1 was not written over cycle 2')
  t.notOk(existsSync(join(dir, 'pending.hrl')))
})

t.test("another VM's folder or damaged files are refused, and left as they are", async (t) => {
  const dir = t.testdir()
  const { shipments } = cycles(1)
  const store = await ReplicaStore.open(dir, G)
  applyInMemory(store, shipments[0]!)
  await store.persist(shipments[0]!)
  await t.rejects(ReplicaStore.open(dir, { ...G, vm: 'vm2' }), { code: 'HVLAB_E_STATE', message: /vm vm1's/ })
  await t.rejects(ReplicaStore.open(dir, { ...G, disk_blocks: 64 }), { code: 'HVLAB_E_STATE' })
  const disk = readFileSync(join(dir, 'disk.img'))
  truncateSync(join(dir, 'disk.img'), 100)
  await t.rejects(ReplicaStore.open(dir, G), { code: 'HVLAB_E_STATE', message: /disk\.img is 100 bytes/ })
  writeFileSync(join(dir, 'disk.img'), disk)
  writeFileSync(join(dir, 'pending.hrl'), '{"cycle":2}\nxx')
  await t.rejects(ReplicaStore.open(dir, G), { code: 'HVLAB_E_STATE', message: /pending\.hrl/ })
  writeFileSync(
    join(dir, 'pending.hrl'),
    JSON.stringify({ cycle: 2, closed_at_ms: 1, writes_logged: 1, logged_bytes: 1, body_bytes: 9 }) + '\nshort',
  )
  await t.rejects(ReplicaStore.open(dir, G), { code: 'HVLAB_E_STATE', message: /blocks its header says/ })
  writeFileSync(join(dir, 'state.json'), '{"format":1}')
  await t.rejects(ReplicaStore.open(dir, G), { code: 'HVLAB_E_STATE', message: /not a replica state/ })
  t.same(readFileSync(join(dir, 'disk.img')), disk, 'disk.img untouched throughout')
})

t.test('the receiver applies into the store; the shell persists before answering; a restart goes on', async (t) => {
  const dir = t.testdir()
  const { shipments, images } = cycles(3, 5)
  const serve = async (store: ReplicaStore, s: LogShipment) => {
    const receiver = new ReplicaReceiver({
      vm: 'vm1',
      disk: store.disk,
      recovery_points: 0,
      point_every_ms: 0,
      clock_skew_ms: 1000,
      staged_bytes_max: 1 << 20,
      applied_cycle: store.appliedCycle,
    })
    const parts = shipmentParts(s, { block_size_bytes: BS, compression: 'deflate', part_body_bytes_max: 4 + 4 * (4 + BS) })
    let last = null
    for (const p of parts) last = receiver.onPart(p.message, p.attachment, s.closed_at_ms)
    if (last?.applied) await store.persist(last.applied)
    return last?.answer
  }
  let store = await ReplicaStore.open(dir, G)
  t.match(await serve(store, shipments[0]!), { outcome: 'applied', cycle: 1 })
  t.match(await serve(store, shipments[1]!), { outcome: 'applied', cycle: 2 })
  store = await ReplicaStore.open(dir, G) // the replica server restarted
  t.match(await serve(store, shipments[1]!), { outcome: 'ignored', refusal: 'replayed' }, 'cycle 2 again: already applied')
  t.match(await serve(store, shipments[2]!), { outcome: 'applied', cycle: 3 })
  t.same(diskOf(await ReplicaStore.open(dir, G)), images[2], 'the disk of cycle 3 after another restart')
})
