/**
 * The host side of a VM's disk: VmAgent attaches the VM's disk writer to the target CLX
 * (or the CSV) made writable, with the host's current cluster epoch, moves it when the
 * target changes (a switchover), and detaches it when the VM stops; the CSV port writes
 * the VM's own block numbers into its region of the CSV.
 */
import t from 'tap'
import { ManualClock } from '../../shared/clock.js'
import { testVmAgent } from './vm-agent-fixture.js'
import { csvDiskPort } from '../../agent/csv/csv-disk-port.js'
import type { BlockIoPort } from '../../agent/vm/vm-disk.js'
import type { VmDiskTarget } from '../../agent/clx/disk-target.js'
import { VmInstance } from '../../agent/vm/vm-instance.js'

const MiB = 1024 * 1024

interface Written {
  array: string
  volume: string
  epoch: number
  block: number
  through: string
}

function setup() {
  const clock = new ManualClock(0)
  let epoch = 7
  const written: Written[] = []
  const port = (through: string): BlockIoPort => ({
    write: async (array, request) => {
      written.push({ array, volume: request.volume, epoch: request.epoch, block: request.block, through })
    },
    read: async (_array, request) => new Uint8Array(request.blocks * 4096),
  })
  const a = testVmAgent({
    clock,
    blockIoFor: (target) => port(target.csv ? `csv:${target.csv.name}/${target.csv.region}` : 'mesh'),
    writerEpoch: () => epoch,
  })
  const run = async (ms: number): Promise<void> => {
    for (let left = ms; left > 0; left -= 10) {
      clock.advance(10)
      await new Promise((r) => setImmediate(r))
    }
  }
  return { a, clock, written, run, setEpoch: (e: number) => (epoch = e) }
}

const onA: VmDiskTarget = { array: 'array-a', volume: 'web1-disk0', group: 'rc-web1', size_bytes: 64 * MiB, csv: null }
const onB: VmDiskTarget = { ...onA, array: 'array-b' }

t.test('a started vm writes its disk on the target, with the current epoch; a switchover moves it; a stop detaches it', async (t) => {
  const { a, written, run, setEpoch } = setup()
  t.ok(a.startVm('web1', 64, 1, 5, 'host-b1', [onA]).ok)
  const vm = a.vms.instance('web1')!
  t.equal(vm.disk?.target.array, 'array-a', 'the writer is attached to array-a')
  vm.setLoad({ disk_iops: 200 })
  await run(200)
  t.ok(written.length > 0, `writes went out (${written.length})`)
  t.ok(
    written.every((w) => w.array === 'array-a' && w.volume === 'web1-disk0' && w.epoch === 7 && w.through === 'mesh'),
    "to array-a, its volume, with the host's view epoch",
  )
  setEpoch(9)
  a.setDisks('web1', [onB])
  await run(200)
  t.equal(vm.disk?.target.array, 'array-b', 'the writer moved to array-b')
  const after = written.slice(written.findIndex((w) => w.array === 'array-b'))
  t.ok(after.length > 0 && after.every((w) => w.array === 'array-b' && w.epoch === 9), 'later writes go to array-b with the newer epoch')
  a.setDisks('web1', [onB])
  t.equal(vm.disk?.target.array, 'array-b', 'the same target again changes nothing')
  t.ok(a.stopVm('web1', 2, 'operator').ok)
  await run(50)
  const n = written.length
  await run(200)
  t.equal(written.length, n, 'a stopped vm writes nothing')
})

t.test('a vm with data disks writes every one; a switchover moves them all; a migration carries each write sequence', async (t) => {
  const { a, written, run } = setup()
  const disk1: VmDiskTarget = { ...onA, volume: 'web1-disk1' }
  t.ok(a.startVm('web1', 64, 1, 5, 'host-b1', [onA, disk1]).ok)
  const vm = a.vms.instance('web1')!
  vm.setLoad({ disk_iops: 200 })
  await run(200)
  const volumes = new Set(written.map((w) => w.volume))
  t.same([...volumes].sort(), ['web1-disk0', 'web1-disk1'], 'both disks are written, each at the load')
  t.same(
    vm.disks.map((d) => d.target.disk ?? 0),
    [0, 1],
    'each writer knows its disk',
  )
  a.setDisks('web1', [onB, { ...disk1, array: 'array-b' }])
  await run(200)
  t.same(
    vm.disks.map((d) => d.target.array),
    ['array-b', 'array-b'],
    'both writers moved',
  )
  const seqs = vm.disks.map((d) => d.nextSeq)
  const arrived = VmInstance.arrived('web1', vm.memory, vm.deviceState(), new ManualClock(0))
  arrived.start()
  const port: BlockIoPort = { write: async () => {}, read: async (_a, r) => new Uint8Array(r.blocks * 4096) }
  arrived.attachDisks([
    { target: { host: 'h', array: 'array-b', volume: 'web1-disk0', size_bytes: 64 * MiB, epoch: () => 5 }, io: port },
    { target: { host: 'h', array: 'array-b', volume: 'web1-disk1', size_bytes: 64 * MiB, epoch: () => 5 }, io: port },
  ])
  t.same(
    arrived.disks.map((d) => d.nextSeq),
    seqs,
    "the destination goes on with each disk's own sequence",
  )
  await arrived.detachDisks()
  a.stopVm('web1', 2, 'operator')
})

t.test('a vm on a CSV writes through the CSV port; without a target there is no disk', async (t) => {
  const { a, written, run } = setup()
  const csv: VmDiskTarget = { array: 'array-a', volume: 'csv-vol1', group: null, size_bytes: 8 * MiB, csv: { name: 'vol1', region: 'db1' } }
  t.ok(a.startVm('db1', 64, 1, 5, 'host-b1', [csv]).ok)
  a.vms.instance('db1')!.setLoad({ disk_iops: 200 })
  await run(200)
  t.ok(written.length > 0 && written.every((w) => w.through === 'csv:vol1/db1'), 'writes go through the CSV port of its region')
  t.ok(a.startVm('plain', 64, 1, 5, 'host-b1').ok)
  t.equal(a.vms.instance('plain')!.disk, null, 'a vm without storage has no disk writer')
})

t.test("the CSV port writes the vm's blocks into its region with the writer's epoch", async (t) => {
  const calls: unknown[] = []
  const port = csvDiskPort(
    {
      write: async (w) => {
        calls.push({ region: w.region, block: w.block, blocks: w.blocks, epoch: w.epoch, bytes: w.data.length })
        return { path: 'direct', via: null }
      },
      read: async (r) => {
        calls.push({ read: r })
        return { data: new Uint8Array(r.blocks * 4096).fill(7), path: 'redirected', via: 'host-a2' }
      },
    },
    'db1',
  )
  await port.write('array-a', { volume: 'ignored', host: 'host-a1', epoch: 12, block: 3, blocks: 2 }, new Uint8Array(8192))
  const data = await port.read('array-a', { volume: 'ignored', host: 'host-a1', block: 5, blocks: 1 })
  t.same(calls, [{ region: 'db1', block: 3, blocks: 2, epoch: 12, bytes: 8192 }, { read: { region: 'db1', block: 5, blocks: 1 } }])
  t.equal(data[0], 7, "the read returns the region's data")
})
