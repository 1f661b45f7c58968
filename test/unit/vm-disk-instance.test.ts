/**
 * A VM with its disk: attachDisk/detachDisk on a VmInstance, the load's disk_iops applied
 * live (`hvlab vm load --disk-iops`), the disk paused with the VM (blackout) and stopped
 * with it, write values from guest memory, and the write sequence carried to a migration's
 * destination in the device state. Also the guest workload's disk_iops setting.
 */
import t from 'tap'
import { decodeDiskWrite } from '../../agent/vm/disk-write-record.js'
import { GuestMemory } from '../../agent/vm/guest-memory.js'
import { GuestWorkload } from '../../agent/vm/guest-workload.js'
import { VmInstance } from '../../agent/vm/vm-instance.js'
import type { BlockIoPort, BlockWriteRequest, VmDiskWriteTarget } from '../../agent/vm/vm-disk.js'
import { ManualClock } from '../../shared/clock.js'

const BS = 4096

function recordingPort(): { port: BlockIoPort; writes: { r: BlockWriteRequest; data: Uint8Array }[] } {
  const writes: { r: BlockWriteRequest; data: Uint8Array }[] = []
  return {
    writes,
    port: {
      write: async (_array, r, data) => void writes.push({ r, data }),
      read: async () => new Uint8Array(BS),
    },
  }
}

const target = (epoch = 2): VmDiskWriteTarget => ({
  host: 'host-a1',
  array: 'array-a',
  volume: 'vm1-disk0',
  size_bytes: 256 * BS,
  epoch: () => epoch,
})

async function tick(clock: ManualClock, ms: number): Promise<void> {
  for (let at = 0; at < ms; at += 10) {
    clock.advance(10)
    await new Promise((r) => setImmediate(r))
  }
}

t.test('attach, live disk_iops, pause with the VM, detach on stop', async (t) => {
  const clock = new ManualClock(0)
  const { port, writes } = recordingPort()
  const vm = new VmInstance('vm1', 1, clock)
  t.throws(() => vm.attachDisk(target(), port), { code: 'HVLAB_E_STATE', message: /not running/ })
  vm.start()
  t.equal(vm.diskCounters(), null, 'no disk yet')
  t.same(
    vm.setLoad({ disk_iops: 100 }),
    { dirty_mib_per_s: 0, hot_fraction: 0.05, disk_iops: 100 },
    'the disk rate is part of the load, before a disk is attached',
  )
  const disk = vm.attachDisk(target(), port)
  t.throws(() => vm.attachDisk(target(), port), { code: 'HVLAB_E_STATE', message: /already has its disks on array-a\/vm1-disk0/ })
  await tick(clock, 100)
  t.equal(writes.length, 10, 'writes at the load rate')
  t.match(vm.diskCounters(), {
    array: 'array-a',
    volume: 'vm1-disk0',
    state: 'writing',
    disk_iops: 100,
    writes_acked: 10,
    last_acked_seq: 9,
    last_epoch: 2,
  })

  vm.setLoad({ disk_iops: 300 })
  await tick(clock, 100)
  t.equal(writes.length, 40, 'the new rate applies live')
  t.throws(() => vm.setLoad({ disk_iops: -5 }), { code: 'HVLAB_E_USAGE' })
  t.throws(() => vm.setLoad({ disk_iops: 2.5 }), { code: 'HVLAB_E_USAGE' })
  t.equal(vm.load.disk_iops, 300, 'a refused load changes nothing')

  vm.pause()
  t.equal(disk.state, 'paused', 'the blackout pauses the disk')
  await tick(clock, 200)
  t.equal(writes.length, 40)
  vm.resume()
  await tick(clock, 100)
  t.equal(writes.length, 70, 'and resume restarts it')

  vm.stop()
  await new Promise((r) => setImmediate(r))
  t.equal(vm.disk, null)
  t.equal(disk.state, 'detached', 'stopping the VM detaches its disk')
  await tick(clock, 100)
  t.equal(writes.length, 70)
  t.equal(await vm.detachDisk(), null, 'nothing left to detach')
})

t.test('write values come from guest memory', async (t) => {
  const clock = new ManualClock(0)
  const { port, writes } = recordingPort()
  const vm = new VmInstance('vm1', 1, clock)
  vm.start()
  vm.memory.write(3 * 4096, new Uint8Array([0x78, 0x56, 0x34, 0x12]))
  vm.setLoad({ disk_iops: 100 })
  vm.attachDisk(target(), port)
  await tick(clock, 50)
  const rec = decodeDiskWrite(writes[3]!.data)
  t.match(rec, { kind: 'record', record: { vm: 'vm1', seq: 3, block: 3, value: 0x12345678, epoch: 2 } })
  t.match(decodeDiskWrite(writes[2]!.data), { kind: 'record', record: { value: 0 } }, 'an untouched page gives 0')
  await vm.detachDisk()
})

t.test('the disk sequence moves with the VM; an old device state still decodes', async (t) => {
  const clock = new ManualClock(0)
  const src = recordingPort()
  const vm = new VmInstance('vm1', 1, clock)
  vm.start()
  vm.setLoad({ disk_iops: 100 })
  vm.attachDisk(target(2), src.port)
  await tick(clock, 100)
  vm.pause()
  const state = vm.deviceState()
  const arrived = VmInstance.arrived('vm1', vm.memory, state, clock)
  vm.release()
  t.equal(arrived.load.disk_iops, 100, 'the disk rate moved with the VM')
  arrived.start()
  const dst = recordingPort()
  arrived.attachDisk(target(3), dst.port)
  await tick(clock, 30)
  t.same(
    dst.writes.map((w) => w.r.block),
    [10, 11, 12],
    'the destination continues the sequence',
  )
  t.same(
    dst.writes.map((w) => w.r.epoch),
    [3, 3, 3],
    "with the new owner's epoch",
  )
  const c = await arrived.detachDisk()
  t.equal(c?.last_acked_seq, 12)
  arrived.attachDisk(target(3), dst.port)
  await tick(clock, 10)
  t.equal(dst.writes.at(-1)?.r.block, 13, 'a re-attached disk continues too')
  arrived.stop()

  const old = new TextEncoder().encode(JSON.stringify({ v: 1, heartbeats: 4, resumes: 1, load: { dirty_mib_per_s: 5, hot_fraction: 0.1 } }))
  const fromOld = VmInstance.arrived('vm2', GuestMemory.create(256), old, clock)
  t.same(fromOld.load, { dirty_mib_per_s: 5, hot_fraction: 0.1, disk_iops: 0 })
  t.equal(fromOld.guestHeartbeats, 4)
})

t.test('the guest workload keeps and checks disk_iops; a refused setLoad changes nothing', async (t) => {
  const w = new GuestWorkload(GuestMemory.create(4), new ManualClock(0), { dirty_mib_per_s: 1, disk_iops: 200 })
  t.equal(w.disk_iops, 200)
  w.setLoad({ dirty_mib_per_s: 2 })
  t.equal(w.disk_iops, 200, 'absent keeps it')
  t.throws(() => w.setLoad({ dirty_mib_per_s: 3, disk_iops: 10_001 }), {
    code: 'HVLAB_E_USAGE',
    message: /disk_iops must be an integer 0–10000/,
  })
  t.equal(w.disk_iops, 200)
  t.equal(w.touches_per_s, 512, 'the dirty rate was not changed by the refused call either')
  w.setLoad({ dirty_mib_per_s: 3, disk_iops: 0 })
  t.equal(w.disk_iops, 0)
})
