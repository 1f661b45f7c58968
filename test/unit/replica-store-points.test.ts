/**
 * Recovery points on the replica server's storage (agent/replica/recovery-point-files.ts,
 * kept by replica-store.ts): they survive a reopen and each still reverts the disk to
 * exactly the cycle it was taken at; a crash after any step of persisting a shipment (or
 * in the middle of appending its undo entries) leaves a set of points that are all true;
 * merging away and clearing are durable; a revert cut short is finished at the next open.
 */
import t, { type Test } from 'tap'
import { cpSync, existsSync, readdirSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { LogShipment } from '../../agent/replica/replica-log.js'
import { ReplicaReceiver } from '../../agent/replica/replica-receiver.js'
import { ReplicaStore } from '../../agent/replica/replica-store.js'
import { shipmentParts } from '../../agent/replica/shipment-frames.js'
import { BLOCKS, BS, G, cycles } from './replica-cycles-fixture.js'

interface Replica {
  store: ReplicaStore
  receiver: ReplicaReceiver
}

/** The store opened from `dir` and a receiver on it that takes a point after every cycle, as ReplicaVm wires them. */
async function open(dir: string, points_max = 24): Promise<Replica> {
  const store = await ReplicaStore.open(dir, G, points_max)
  const newest = store.points.at(-1)
  const receiver = new ReplicaReceiver({
    vm: 'vm1',
    disk: store.disk,
    recovery_points: points_max,
    point_every_ms: 0,
    clock_skew_ms: 1000,
    staged_bytes_max: 1 << 20,
    applied_cycle: store.appliedCycle,
    restored_points: store.points,
    ...(newest === undefined ? {} : { last_point_ms: newest.taken_ms }),
  })
  return { store, receiver }
}

/** The steps of ReplicaStore.persist (ship stops after `steps` of them, as a crash would; default: none). */
const STEPS = 5

async function ship(r: Replica, s: LogShipment, steps = STEPS): Promise<void> {
  const parts = shipmentParts(s, { block_size_bytes: BS, compression: 'none', part_body_bytes_max: 1 << 16 })
  let last = null
  for (const p of parts) last = r.receiver.onPart(p.message, p.attachment, s.closed_at_ms)
  const applied = last?.applied
  const points = last?.points
  if (!applied || !points) throw new Error(`cycle ${s.cycle} was not applied: ${JSON.stringify(last?.answer)}`)
  for (const step of r.store.persistSteps(applied, points).slice(0, steps)) await step()
}

const diskOf = (store: ReplicaStore): Uint8Array => {
  const out = new Uint8Array(BLOCKS * BS)
  for (let b = 0; b < BLOCKS; b++) out.set(store.disk.readBlock(b), b * BS)
  return out
}

const testDirs = new WeakMap<Test, string>()
let dirs = 0
/** A new folder in the test's own (t.testdir() is one folder a test, made anew at each call). */
function fresh(t: Test): string {
  if (!testDirs.has(t)) testDirs.set(t, t.testdir())
  return join(testDirs.get(t)!, `replica-${dirs++}`)
}

const pointCycles = (r: Replica) => r.receiver.recoveryPoints().map((p) => p.cycle)

/** Reverts a copy of the replica in `dir` to each of its points and checks disk.img after yet another reopen. */
async function checkEveryPoint(t: Test, dir: string, images: readonly Uint8Array[], what: string): Promise<void> {
  const cycles_ = pointCycles(await open(dir))
  for (const cycle of cycles_) {
    const copy = fresh(t)
    cpSync(dir, copy, { recursive: true })
    const r = await open(copy)
    await r.store.revert(cycle, r.receiver.revertTo(cycle))
    const again = await open(copy)
    t.same(new Uint8Array(readFileSync(join(copy, 'disk.img'))), images[cycle - 1], `${what}: point ${cycle} reverts to exactly its disk`)
    t.equal(again.store.appliedCycle, cycle)
    t.same(pointCycles(again), [], 'and the points are gone (the replica runs from there)')
  }
}

t.test('the points survive a reopen, each still reverting the disk to exactly its cycle', async (t) => {
  const dir = fresh(t)
  const { shipments, images } = cycles(6)
  const r = await open(dir)
  for (const s of shipments) await ship(r, s)
  t.same(pointCycles(r), [1, 2, 3, 4, 5, 6])
  const again = await open(dir)
  t.same(again.receiver.recoveryPoints(), r.receiver.recoveryPoints(), 'the same points, with their times, after a reopen')
  t.same(diskOf(again.store), images[5])
  await checkEveryPoint(t, dir, images, 'after a reopen')
})

t.test('a crash after any step of persisting a shipment leaves points that are all true', async (t) => {
  const { shipments, images } = cycles(5, 3)
  for (let steps = 0; steps <= STEPS; steps++) {
    const dir = fresh(t)
    const r = await open(dir)
    for (const s of shipments.slice(0, 3)) await ship(r, s)
    await ship(r, shipments[3]!, steps) // the server is killed here
    const reopened = await open(dir)
    const applied = reopened.store.appliedCycle
    t.equal(applied, steps >= 2 ? 4 : 3, `crash after ${steps} steps: cycle 4 applied once its redo log was durable`)
    t.same(pointCycles(reopened), steps >= STEPS ? [1, 2, 3, 4] : [1, 2, 3], 'a point only once its file is written')
    for (const s of shipments.slice(applied)) await ship(reopened, s) // the primary sends what was not applied
    t.same(diskOf(reopened.store), images.at(-1))
    await checkEveryPoint(t, dir, images, `crash after ${steps} steps`)
  }
})

t.test('a crash in the middle of appending undo entries: the torn batch is cut off, the points stay true', async (t) => {
  const { shipments, images } = cycles(5, 9)
  for (const damage of ['cut short', 'garbled'] as const) {
    const dir = fresh(t)
    const r = await open(dir)
    for (const s of shipments.slice(0, 3)) await ship(r, s)
    const file = join(dir, 'points', '3.undo')
    const whole = readFileSync(file).length
    await ship(r, shipments[3]!, 1) // the undo batch of cycle 4, then the crash
    const written = readFileSync(file)
    if (damage === 'cut short') truncateSync(file, written.length - 100)
    else writeFileSync(file, Buffer.concat([written.subarray(0, written.length - 1), Buffer.from([written.at(-1)! ^ 0xff])]))
    const reopened = await open(dir)
    t.equal(readFileSync(file).length, whole, `${damage}: the torn batch is cut off`)
    t.equal(reopened.store.appliedCycle, 3)
    for (const s of shipments.slice(3)) await ship(reopened, s)
    await checkEveryPoint(t, dir, images, damage)
  }
})

t.test('merging away the oldest point beyond the limit deletes it durably; a lower limit at reopen merges too', async (t) => {
  const dir = fresh(t)
  const { shipments, images } = cycles(5, 4)
  const r = await open(dir, 3)
  for (const s of shipments) await ship(r, s)
  t.same(pointCycles(r), [3, 4, 5])
  t.same(readdirSync(join(dir, 'points')).sort(), ['3.undo', '4.undo', '5.undo'], 'the merged points are deleted')
  const lower = await open(dir, 2)
  t.same(pointCycles(lower), [4, 5])
  t.same(readdirSync(join(dir, 'points')).sort(), ['4.undo', '5.undo'])
  await checkEveryPoint(t, dir, images, 'after merges')
})

t.test('clearing the points is durable', async (t) => {
  const dir = fresh(t)
  const { shipments } = cycles(3, 5)
  const r = await open(dir)
  for (const s of shipments) await ship(r, s)
  await r.store.clearPoints()
  r.receiver.dropPoints()
  t.same(pointCycles(await open(dir)), [], 'none after a reopen')
  t.same(readdirSync(join(dir, 'points')), [])
})

t.test('a revert cut short is finished at the next open, from the points still there', async (t) => {
  const { shipments, images } = cycles(4, 6)
  for (const cut of ['before its state', 'while deleting the points'] as const) {
    const dir = fresh(t)
    const r = await open(dir)
    for (const s of shipments) await ship(r, s)
    writeFileSync(join(dir, 'revert.json'), JSON.stringify({ format: 1, cycle: 2 }))
    const back = [...r.receiver.revertTo(2)].map(([block, data]) => ({ block, data }))
    const some = cut === 'before its state' ? back.slice(0, Math.ceil(back.length / 2)) : back
    await r.store.writeBlocks({ ...shipments[0]!, blocks: some })
    if (cut === 'while deleting the points') {
      await r.store.markApplied(2)
      rmSync(join(dir, 'points', '1.undo')) // the oldest goes first
    }
    const reopened = await open(dir)
    t.same(diskOf(reopened.store), images[1], `${cut}: the disk of cycle 2`)
    t.same(new Uint8Array(readFileSync(join(dir, 'disk.img'))), images[1])
    t.equal(reopened.store.appliedCycle, 2)
    t.same(pointCycles(reopened), [])
    t.notOk(existsSync(join(dir, 'revert.json')), 'done')
  }
})

t.test('a point whose file cannot be read is deleted with every older one; the newer stay true', async (t) => {
  const dir = fresh(t)
  const { shipments, images } = cycles(5, 8)
  const r = await open(dir)
  for (const s of shipments) await ship(r, s)
  writeFileSync(join(dir, 'points', '3.undo'), 'not a point\n')
  const reopened = await open(dir)
  t.same(pointCycles(reopened), [4, 5])
  t.same(readdirSync(join(dir, 'points')).sort(), ['4.undo', '5.undo'])
  await checkEveryPoint(t, dir, images, 'after a damaged point')
})
