/**
 * VmDisk against a REAL array core in-process (VolumeStore + LunMasking + FencingTable +
 * BlockIo, as the array process wires them): writes land durably with the epoch and pass
 * the history checker after the array is reopened; a newer epoch from another writer
 * fences the disk (refused, stops for good, one event); pause/resume/detach; at most
 * the queue depth in flight; 0 iops idles. Time is a ManualClock; the array's I/O is real.
 */
import t from 'tap'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { BlockIo } from '../../array-emulator/block-io.js'
import { FencingTable } from '../../array-emulator/fencing.js'
import { LunMasking } from '../../array-emulator/lun-masking.js'
import { VolumeStore } from '../../array-emulator/volume-store.js'
import { checkAckedWrites, decodeDiskWrite, encodeDiskWrite } from '../../agent/vm/disk-write-record.js'
import { DISK_QUEUE_DEPTH, VmDisk, isStaleEpochRefusal, type BlockIoPort, type BlockWriteRequest } from '../../agent/vm/vm-disk.js'
import { ManualClock } from '../../shared/clock.js'
import { HvlabError } from '../../shared/errors.js'

const BS = 4096
const VOLUME_BLOCKS = 64

interface ArrayCore {
  dir: string
  store: VolumeStore
  io: BlockIo
  port: BlockIoPort
}

async function openArray(dir: string, create: boolean): Promise<ArrayCore> {
  const store = await VolumeStore.open(join(dir, 'volumes'))
  const masking = await LunMasking.open(dir)
  if (create) {
    await store.create('vm1-disk0', VOLUME_BLOCKS * BS)
    await masking.present('vm1-disk0', 'host-a1')
    await masking.present('vm1-disk0', 'host-b1')
  }
  const io = new BlockIo(store, masking, await FencingTable.open(dir), undefined, undefined)
  const port: BlockIoPort = {
    write: (_array, r, data) => io.write(r, data),
    read: (_array, r) => io.read(r),
  }
  return { dir, store, io, port }
}

async function freshArray(t: { teardown(fn: () => Promise<void>): void }): Promise<ArrayCore> {
  const dir = mkdtempSync(join(tmpdir(), 'hvlab-vmdisk-'))
  const a = await openArray(dir, true)
  t.teardown(async () => {
    await a.store.close() // a no-op if the test closed it already; a close that fails is a failure
    rmSync(dir, { recursive: true, force: true })
  })
  return a
}

/** Lets the array's real I/O finish (bounded). */
async function settle(disk: VmDisk): Promise<void> {
  for (let i = 0; i < 2000 && disk.counters().in_flight > 0; i++) await new Promise((r) => setTimeout(r, 1))
  if (disk.counters().in_flight > 0) throw new Error('writes still in flight after 2000 waits')
}

/** Advances the clock tick by tick, letting writes complete between ticks. */
async function run(clock: ManualClock, disk: VmDisk, ms: number): Promise<void> {
  for (let at = 0; at < ms; at += 10) {
    clock.advance(10)
    await settle(disk)
  }
}

function diskOn(a: ArrayCore, clock: ManualClock, o: { host?: string; epoch: () => number; iops: number; events?: unknown[] }): VmDisk {
  return new VmDisk({
    vm: 'vm1',
    target: { host: o.host ?? 'host-a1', array: 'array-a', volume: 'vm1-disk0', size_bytes: VOLUME_BLOCKS * BS, epoch: o.epoch },
    io: a.port,
    clock,
    disk_iops: o.iops,
    seed: 42,
    onEvent: (kind, details) => o.events?.push({ kind, details }),
  })
}

t.test('writes land durably with the epoch and pass the history checker after the array reopens', async (t) => {
  const a = await freshArray(t)
  const clock = new ManualClock(1000)
  const disk = diskOn(a, clock, { epoch: () => 7, iops: 200 })
  t.equal(disk.state, 'writing')
  await run(clock, disk, 500) // 200/s for 0.5 s = 100 writes, more than one lap of the 64-block ring
  const c = disk.counters()
  t.equal(c.writes_issued, 100, 'the rate is honoured')
  t.equal(c.writes_acked, 100)
  t.equal(c.writes_refused + c.write_errors, 0)
  t.equal(c.last_acked_seq, 99)
  t.equal(c.last_epoch, 7)
  t.equal(disk.history().length, 100)
  await a.store.close()

  const reopened = await openArray(a.dir, false)
  t.teardown(() => reopened.store.close())
  const read = (block: number) => reopened.port.read('array-a', { volume: 'vm1-disk0', host: 'host-a1', block, blocks: 1 })
  const problems = await checkAckedWrites({ vm: 'vm1', acked: disk.history(), issued_through_seq: disk.issuedThroughSeq }, read)
  t.same(problems, [], 'every acknowledged write is on disk after reopening the array')
  const b5 = decodeDiskWrite(await read(5))
  t.equal(b5.kind, 'record')
  if (b5.kind === 'record')
    t.match(b5.record, { vm: 'vm1', seq: 69, epoch: 7, block: 5 }, 'block 5 holds the second lap (seq 69) with the epoch')
  await disk.detach()
})

t.test('a newer epoch from another writer fences the disk: refused, stops, one event', async (t) => {
  const a = await freshArray(t)
  const clock = new ManualClock(0)
  const events: { kind: string; details: Record<string, unknown> }[] = []
  const disk = diskOn(a, clock, { epoch: () => 3, iops: 100, events })
  await run(clock, disk, 100)
  t.equal(disk.counters().writes_acked, 10)

  // The cluster moved on: the VM's new owner writes with epoch 4 (one block outside what vm1 wrote so far).
  const other = encodeDiskWrite({ vm: 'vm1', seq: 1_000_000, epoch: 4, block: 60, value: 1 }, BS)
  await a.io.write({ volume: 'vm1-disk0', host: 'host-b1', epoch: 4, block: 60, blocks: 1 }, other)

  await run(clock, disk, 100)
  const c = disk.counters()
  t.equal(c.state, 'fenced')
  t.ok(c.writes_refused >= 1, 'the stale write was refused')
  t.equal(c.write_errors, 0, 'a stale-epoch refusal is not counted as an error')
  t.match(c.last_error, /reserved at epoch 4/)
  t.equal(events.length, 1, 'one vm.disk-fenced event')
  t.match(events[0], {
    kind: 'vm.disk-fenced',
    details: { vm: 'vm1', host: 'host-a1', array: 'array-a', volume: 'vm1-disk0', epoch: 3, seq: 10 },
  })

  const issued = c.writes_issued
  await run(clock, disk, 1000)
  t.equal(disk.counters().writes_issued, issued, 'a fenced disk does not keep trying')
  disk.resume()
  await run(clock, disk, 100)
  t.equal(disk.counters().writes_issued, issued, 'resume does not unfence it')
  disk.setIops(500)
  await run(clock, disk, 100)
  t.equal(disk.counters().writes_issued, issued, 'nor does a new rate')

  const read = (block: number) => a.port.read('array-a', { volume: 'vm1-disk0', host: 'host-a1', block, blocks: 1 })
  t.same(
    await checkAckedWrites({ vm: 'vm1', acked: disk.history(), issued_through_seq: disk.issuedThroughSeq }, read),
    [],
    'acked writes before the fence are intact',
  )
  t.equal(decodeDiskWrite(await read(10)).kind, 'empty', 'the refused write (seq 10, block 10) did not land')
  t.match(decodeDiskWrite(await read(60)), { kind: 'record', record: { epoch: 4 } }, "the new owner's write stands")
  t.equal((await disk.detach()).state, 'detached')
})

t.test('pause stops writing and waits for in-flight writes; resume carries on; detach stops for good', async (t) => {
  const a = await freshArray(t)
  const clock = new ManualClock(0)
  const disk = diskOn(a, clock, { epoch: () => 1, iops: 100 })
  await run(clock, disk, 50)
  clock.advance(10) // one write issued, not yet done
  t.equal(disk.counters().in_flight, 1)
  const paused = disk.pause()
  t.equal(disk.state, 'paused')
  await paused
  t.equal(disk.counters().in_flight, 0, 'pause resolved once nothing was in flight')
  const before = disk.counters().writes_issued
  await run(clock, disk, 500)
  t.equal(disk.counters().writes_issued, before, 'nothing issued while paused')
  disk.resume()
  await run(clock, disk, 100)
  t.equal(disk.counters().writes_issued, before + 10, 'resume writes at the rate again, with no burst for the pause')
  clock.advance(10)
  const final = await disk.detach()
  t.equal(final.in_flight, 0)
  t.equal(final.state, 'detached')
  t.equal(final.writes_acked, final.writes_issued, 'detach waited for the last write')
  await run(clock, disk, 500)
  t.equal(disk.counters().writes_issued, final.writes_issued, 'nothing after detach')
})

t.test('at most the queue depth in flight; writes due while full are skipped, not queued', async (t) => {
  const clock = new ManualClock(0)
  const pending: { r: BlockWriteRequest; done: () => void }[] = []
  const port: BlockIoPort = {
    write: (_array, r) => new Promise<void>((done) => pending.push({ r, done })),
    read: () => Promise.reject(new Error('no reads here')),
  }
  const disk = new VmDisk({
    vm: 'vm1',
    target: { host: 'h', array: 'a', volume: 'v', size_bytes: 1024 * BS, epoch: () => 1 },
    io: port,
    clock,
    disk_iops: 100,
  })
  clock.advance(1000)
  t.equal(pending.length, DISK_QUEUE_DEPTH, `only ${DISK_QUEUE_DEPTH} writes were sent`)
  t.equal(disk.counters().in_flight, DISK_QUEUE_DEPTH)
  t.equal(disk.counters().writes_skipped, 100 - DISK_QUEUE_DEPTH, 'the rest were skipped')
  t.same(new Set(pending.map((p) => p.r.block)).size, DISK_QUEUE_DEPTH, 'each in flight on its own block')
  let detached = false
  const detaching = disk.detach().then(() => (detached = true))
  await new Promise((r) => setTimeout(r, 5))
  t.notOk(detached, 'detach waits for in-flight writes')
  for (const p of pending.splice(0)) p.done()
  await detaching
  t.equal(disk.counters().writes_acked, DISK_QUEUE_DEPTH)
})

t.test('never two writes in flight on one block, even on a tiny volume', async (t) => {
  const clock = new ManualClock(0)
  const pending: { r: BlockWriteRequest; done: () => void }[] = []
  const port: BlockIoPort = {
    write: (_a, r) => new Promise<void>((done) => pending.push({ r, done })),
    read: () => Promise.reject(new Error('none')),
  }
  const disk = new VmDisk({
    vm: 'vm1',
    target: { host: 'h', array: 'a', volume: 'v', size_bytes: 3 * BS, epoch: () => 1 },
    io: port,
    clock,
    disk_iops: 1000,
  })
  clock.advance(100)
  t.same(
    pending.map((p) => p.r.block),
    [0, 1, 2],
    'three blocks, three writes in flight',
  )
  pending[1]!.done()
  pending.splice(1, 1)
  await new Promise((r) => setImmediate(r))
  clock.advance(10)
  t.same(
    pending.map((p) => p.r.block),
    [0, 2],
    'seq 3 (block 0) waits: block 0 still has a write in flight',
  )
  for (const p of pending.splice(0)) p.done()
  await disk.detach()
})

t.test('0 iops idles; a new rate starts it; errors that are not fencing are counted and writing goes on', async (t) => {
  const clock = new ManualClock(0)
  let fail = true
  let writes = 0
  const port: BlockIoPort = {
    write: async () => {
      writes++
      if (fail) throw new HvlabError('HVLAB_E_TIMEOUT', 'array-a did not answer block-write within 10000 ms')
    },
    read: () => Promise.reject(new Error('none')),
  }
  const disk = new VmDisk({
    vm: 'vm1',
    target: { host: 'h', array: 'array-a', volume: 'v', size_bytes: 64 * BS, epoch: () => 1 },
    io: port,
    clock,
  })
  t.equal(disk.state, 'idle')
  clock.advance(2000)
  t.equal(writes, 0, 'no writes at 0 iops')
  disk.setIops(50)
  t.equal(disk.state, 'writing')
  for (let i = 0; i < 10; i++) {
    clock.advance(20)
    await new Promise((r) => setImmediate(r))
  }
  t.equal(writes, 10)
  t.equal(disk.counters().write_errors, 10)
  t.equal(disk.state, 'writing', 'a timeout does not fence')
  fail = false
  clock.advance(100)
  await new Promise((r) => setImmediate(r))
  t.equal(disk.counters().writes_acked, 5)
  disk.setIops(0)
  const issued = disk.counters().writes_issued
  clock.advance(1000)
  t.equal(disk.counters().writes_issued, issued, 'back to idle')
  t.throws(() => disk.setIops(-1), { code: 'HVLAB_E_USAGE' })
  t.throws(() => disk.setIops(1.5), { code: 'HVLAB_E_USAGE' })
  await disk.detach()
})

t.test('the stale-epoch refusal is recognised as it comes over the wire, and nothing else is', async (t) => {
  // Over the wire: the finer code HVLAB_E_FENCED (family HVLAB_E_REFUSED), the array as its origin.
  const sentence =
    'write to volume v by host h1 refused: it carries reservation epoch 2 but the volume is reserved at epoch 3 (host h2); this host has been fenced'
  const wire = new HvlabError('HVLAB_E_FENCED', sentence, { origin: 'array-a' })
  t.ok(isStaleEpochRefusal(wire))
  t.equal(wire.code, 'HVLAB_E_REFUSED', 'still a refusal to everything that switches on the family')
  t.notOk(isStaleEpochRefusal(new HvlabError('HVLAB_E_REFUSED', sentence, { origin: 'array-a' })), 'the sentence alone decides nothing')
  t.notOk(isStaleEpochRefusal(new HvlabError('HVLAB_E_REFUSED', 'array-a: volume v is not presented to host h1')))
  t.notOk(isStaleEpochRefusal(new HvlabError('HVLAB_E_TIMEOUT', 'reserved at epoch 3')))
  t.notOk(isStaleEpochRefusal(new Error('reserved at epoch 3')))
})

t.test('a disk that does not fit is refused with a clear message', async (t) => {
  const clock = new ManualClock(0)
  const port: BlockIoPort = { write: async () => {}, read: async () => new Uint8Array(BS) }
  t.throws(
    () => new VmDisk({ vm: 'vm1', target: { host: 'h', array: 'a', volume: 'v', size_bytes: 100, epoch: () => 1 }, io: port, clock }),
    { code: 'HVLAB_E_USAGE', message: /holds no whole 4096-byte block/ },
  )
  t.throws(
    () =>
      new VmDisk({
        vm: 'vm1',
        target: { host: 'h', array: 'a', volume: 'v', size_bytes: BS, epoch: () => 1 },
        io: port,
        clock,
        queue_depth: 99,
      }),
    { code: 'HVLAB_E_USAGE', message: /queue depth/ },
  )
})

t.test('the achieved write rate: writes acked and skipped per second over the last interval, next to the requested rate', async (t) => {
  const clock = new ManualClock(0)
  const pending: (() => void)[] = []
  const port: BlockIoPort = {
    write: () => new Promise<void>((done) => pending.push(done)),
    read: () => Promise.reject(new Error('no reads here')),
  }
  const disk = new VmDisk({
    vm: 'vm1',
    target: { host: 'h', array: 'a', volume: 'v', size_bytes: 1024 * BS, epoch: () => 1 },
    io: port,
    clock,
    disk_iops: 100,
  })
  t.match(disk.counters(), { writes_acked_per_s: 0, writes_skipped_per_s: 0 }, 'nothing measured yet')
  // A slow array: the queue fills, so of 100 writes due in a second 8 go out and 92 are skipped.
  clock.advance(1000)
  for (const done of pending.splice(0)) done()
  await new Promise((r) => setImmediate(r))
  const c = disk.counters()
  t.equal(c.disk_iops, 100, 'the rate asked for')
  t.equal(c.writes_acked_per_s, 0, 'acks came after the interval ended')
  t.equal(c.writes_skipped_per_s, 100 - DISK_QUEUE_DEPTH, 'writes skipped per second while the queue was full')
  // A fast array from here on: every write acked at once.
  port.write = async () => undefined
  for (let i = 0; i < 100; i++) {
    clock.advance(10)
    await new Promise((r) => setImmediate(r))
  }
  const fast = disk.counters()
  t.ok(fast.writes_acked_per_s! >= 90 && fast.writes_acked_per_s! <= 110, `about 100 acked per second (${fast.writes_acked_per_s})`)
  t.equal(fast.writes_skipped_per_s, 0, 'none skipped')
  await disk.detach()
})
