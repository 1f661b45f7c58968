/**
 * Application-consistent points against a real guest disk writer on a manual clock: the
 * VM's disk (vm-disk.ts) writes two-block transactions (data, then commit record) with up
 * to 8 writes in flight to a disk whose writes take a seeded random 1–30 ms; every write it
 * completes goes to the primary's sender machine (replica-sender.ts), whose shipments are
 * applied to a replica image as a replica server would. A small driver carries out the
 * machine's effects, its `quiesce` through the guest's integration service
 * (guest-quiesce.ts). Checked on the replica image each shipment leaves
 * (disk-transactions.ts): an application-consistent one never holds a torn transaction,
 * while crash-consistent ones do (some writes are always in flight when a log closes).
 * A hung guest does not answer: its cycle closes crash-consistent at the timeout, and the
 * guest goes on writing.
 */
import t from 'tap'
import { healthThresholds } from '../../agent/replica/replica-health.js'
import { ReplicaSender, type ReplicaSenderEffect } from '../../agent/replica/replica-sender.js'
import { seqsOnDisk, tornTransactions } from '../../agent/vm/disk-transactions.js'
import { encodeDiskWrite } from '../../agent/vm/disk-write-record.js'
import { guestQuiescer, type QuiescibleVm } from '../../agent/vm/guest-quiesce.js'
import { VmDisk, type BlockIoPort } from '../../agent/vm/vm-disk.js'
import { ManualClock } from '../../shared/clock.js'
import { mulberry32 } from '../../shared/seeded-random.js'

const BS = 512
/** The guest writes a ring of AREA blocks of a disk of BLOCKS (the log stays far below half of it: no resync). */
const AREA = 24
const BLOCKS = 1024
const F = 100 // a cycle every 100 ms
const APP = { every_ms: 4 * F, timeout_ms: 50 }

interface Shipped {
  cycle: number
  kind: 'crash' | 'application'
  torn: number
}

function lab(seed: number, hung: () => boolean) {
  const clock = new ManualClock(0)
  const rand = mulberry32(seed)
  const io: BlockIoPort = {
    write: (_array, _r, _data) => new Promise((done) => void clock.setTimer(1 + Math.floor(rand() * 30), done)),
    read: () => Promise.reject(new Error('no reads here')),
  }
  const replica = new Uint8Array(BLOCKS * BS)
  const shipped: Shipped[] = []
  const events: string[] = []
  const sender = new ReplicaSender(
    { vm: 'vm1', block_size_bytes: BS, disk_blocks: BLOCKS, thresholds: healthThresholds(F, 1), app_consistent: APP },
    0,
  )
  const step = (input: Parameters<ReplicaSender['step']>[0]) => run(sender.step(input, clock.now()))
  const disk = new VmDisk({
    vm: 'vm1',
    target: { host: 'h', array: 'a', volume: 'v', size_bytes: AREA * BS, epoch: () => 1 },
    io,
    clock,
    disk_iops: 300,
    block_size_bytes: BS,
    journal: {
      issued: () => {},
      completed: (r, outcome) => {
        if (outcome !== 'refused') step({ kind: 'write', block: r.block, data: encodeDiskWrite(r, BS) })
      },
    },
  })
  const vm: QuiescibleVm = {
    state: 'running',
    paused: false,
    get hangState() {
      return { hung: hung() }
    },
    disks: [disk],
  }
  const guest = guestQuiescer(vm, clock)
  let cancelTimer: (() => void) | null = null
  function run(effects: readonly ReplicaSenderEffect[]): void {
    for (const fx of effects) {
      if (fx.kind === 'set-timer') {
        cancelTimer?.()
        cancelTimer = clock.setTimer(fx.at_ms - clock.now(), () => step({ kind: 'timer' }))
      } else if (fx.kind === 'quiesce') {
        void guest.quiesce(APP.timeout_ms).then((ok) => ok && step({ kind: 'quiesced', cycle: fx.cycle }))
      } else if (fx.kind === 'thaw') guest.thaw()
      else if (fx.kind === 'emit') events.push(fx.event.kind)
      else if (fx.kind === 'ship') {
        for (const b of fx.shipment.blocks) replica.set(b.data, b.block * BS)
        const torn = tornTransactions(seqsOnDisk(replica, BS, 'vm1', disk.area_blocks), disk.area_blocks).length
        shipped.push({ cycle: fx.shipment.cycle, kind: fx.shipment.point_kind ?? 'crash', torn })
        step({ kind: 'answer', cycle: fx.shipment.cycle, outcome: 'applied' })
      }
    }
  }
  run(sender.start())
  /** Runs `ms` of the lab, a millisecond at a time, letting the promises of each settle. */
  const advance = async (ms: number) => {
    for (let i = 0; i < ms; i++) {
      clock.advance(1)
      await new Promise((r) => setImmediate(r))
    }
  }
  return { advance, shipped, events, disk, sender, clock }
}

t.test('an application-consistent point never holds a torn transaction; crash-consistent ones do', async (t) => {
  for (const seed of [1, 2, 3]) {
    const l = lab(seed, () => false)
    await l.advance(20 * F)
    const app = l.shipped.filter((s) => s.kind === 'application')
    const crash = l.shipped.filter((s) => s.kind === 'crash')
    t.ok(app.length >= 4, `seed ${seed}: ${app.length} application-consistent cycles of ${l.shipped.length}`)
    t.same(
      app.filter((s) => s.torn > 0),
      [],
      `seed ${seed}: no torn transaction in an application-consistent point`,
    )
    const torn = crash.filter((s) => s.torn > 0).length
    t.ok(torn > 0, `seed ${seed}: ${torn} of ${crash.length} crash-consistent points hold a torn transaction`)
    t.notOk(l.events.includes('replica.quiesce-timeout'), 'the guest always answered in time')
    t.equal(l.disk.frozenGeneration, null, 'and writes on after the last one')
  }
})

t.test('a hung guest does not answer: crash-consistent at the timeout, said on the timeline, the guest not held', async (t) => {
  let hung = true
  const l = lab(4, () => hung)
  await l.advance(6 * F)
  t.ok(l.events.includes('replica.quiesce-timeout'), 'the timeout is on the timeline')
  t.same(
    l.shipped.filter((s) => s.kind === 'application'),
    [],
    'no application-consistent point from a hung guest',
  )
  t.ok(l.sender.status(l.clock.now()).quiesce_timeouts >= 1)
  const written = l.disk.counters().writes_acked
  await l.advance(F)
  t.ok(l.disk.counters().writes_acked > written, 'its disk writes go on')
  hung = false
  await l.advance(6 * F)
  const app = l.shipped.filter((s) => s.kind === 'application')
  t.ok(app.length >= 1, 'once it answers again, application-consistent points come back')
  t.same(
    app.filter((s) => s.torn > 0),
    [],
  )
})

t.test('a transaction is torn when one half is on the disk and the other block still holds an older write', async (t) => {
  // a ring of 4 blocks: transactions (4, 5) and (6, 7) overwrote (0, 1) and (2, 3); 7 never landed
  const seqs = new Map([
    [0, 4],
    [1, 5],
    [2, 6],
    [3, 3],
  ])
  t.same(
    tornTransactions(seqs, 4),
    [{ transaction: 3, present_seq: 6, missing_seq: 7 }],
    'seq 3 beside 6 is no tear: 2 was written and overwritten',
  )
  seqs.set(3, 7)
  t.same(tornTransactions(seqs, 4), [], 'with 7 on the disk, none')
})
