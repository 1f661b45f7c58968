/**
 * A standalone Hyper-V host runs replica VMs after a failover (seed 002: "the replica VM
 * is started"): each VM's guest runs here with its memory and its applications' load, its
 * disks are the replica's disk on this server's storage, one slice per disk (disk-set.ts;
 * each block write durable before it is acknowledged), it answers its guest pings, and the lab's virtual switch learns that
 * it runs here, so clients reach it at its stable address. `hvlab vm load` reaches its
 * guest here too; its disk writes go to a sink (reverse replication hears them).
 */
import type { GuestLoadSetting } from '../../shared/protocol/guest-load.js'
import type { LabProcess } from '../../shared/lab-process.js'
import { startGuestService } from '../vm/guest-service.js'
import { VmHost } from '../vm/vm-instance.js'
import { nextWriteSeq } from '../vm/disk-write-record.js'
import type { BlockIoPort, DiskWriteSink } from '../vm/vm-disk.js'
import { inspectVm, setVmLoad } from '../migration/migration-operator.js'
import { readBlocks, type ReplicaDisk } from './replica-receiver.js'
import type { ReplicaStore } from './replica-store.js'

/** Why a VM starts on this standalone host: its replica failed over here, or it was created here (`hvlab vm create --on`). */
export type StartedBy = 'replica-failover' | 'create' | 'start' | 'automatic-start'

/** A failed-over VM is this host's own: its start op and epoch never change (no cluster starts it). */
const STANDALONE_OP = 1
const STANDALONE_EPOCH = 1

export class ReplicaVmRunner {
  readonly vms: VmHost

  /**
   * `sink` hears the failed-over VMs' disk writes (reverse replication), not a test copy's;
   * `onLoad` hears a VM's guest load once `hvlab vm load` changed it.
   */
  constructor(
    private readonly p: LabProcess,
    memory_mib: number,
    private readonly sink?: DiskWriteSink,
    onLoad?: (vm: string, load: GuestLoadSetting) => Promise<void>,
  ) {
    this.vms = new VmHost(p.name, memory_mib, p.clock)
    startGuestService(p, (name) => this.vms.instance(name))
    p.serveOperator('vm-load-request', async (q) => {
      const ok = setVmLoad(p, this.vms, q)
      await onLoad?.(q.vm, this.vms.instance(q.vm)!.load)
      return ok
    })
    p.serveOperator('vm-inspect-request', (q) => inspectVm(p, this.vms, q.vm))
  }

  running(vm: string): boolean {
    return this.vms.instance(vm)?.state === 'running'
  }

  /**
   * Starts `vm` here on the replica's disk in `store` (`by`: a failover, or a VM created
   * here on a new disk), with the load its role kept; its clients reach it here.
   */
  run(vm: string, memory_mib: number, store: ReplicaStore, load: GuestLoadSetting | undefined, by: StartedBy = 'replica-failover'): void {
    this.start(vm, memory_mib, { disk: store.disk, disks: store.disks }, localDiskPort(store), by, load, this.sink)
    this.p.announceVm({ vm, at: 'here', op: STANDALONE_OP, epoch: STANDALONE_EPOCH })
  }

  /**
   * A test failover (seed 002): `test_vm` starts here on `copy`, a copy of the replica taken
   * now, on an isolated network (the virtual switch is not told: no client reaches it, so it
   * cannot answer for the production VM); its writes stay in the copy, dropped at the end.
   */
  runIsolated(test_vm: string, memory_mib: number, copy: ReplicaDisk, disks: number, load: GuestLoadSetting | undefined): void {
    this.start(test_vm, memory_mib, { disk: copy, disks }, memoryDiskPort(copy), 'test-failover', load)
  }

  stop(vm: string, reason: 'test failover ended' | 'fail-back' | 'stopped' | 'runs in the cluster'): void {
    if (this.vms.instance(vm) === undefined) return
    this.vms.stop(vm)
    this.p.emitEvent('vm.stopped', { vm, op: STANDALONE_OP, reason })
  }

  /** Starts `vm` on `image`: its disks are slices of it, disk 0 first, each written through `io` at its offset. */
  private start(
    vm: string,
    memory_mib: number,
    image: { disk: ReplicaDisk; disks: number },
    io: BlockIoPort,
    by: StartedBy | 'test-failover',
    load: GuestLoadSetting | undefined,
    sink?: DiskWriteSink,
  ): void {
    this.vms.start(vm, memory_mib, STANDALONE_OP, STANDALONE_EPOCH)
    const instance = this.vms.instance(vm)!
    const { disk } = image
    const per_disk = disk.blocks / image.disks
    const disks = Array.from({ length: image.disks }, (_, k) => {
      const first = k * per_disk
      // A VM started here before (failed over and back, then over again) wrote this disk with this host's one epoch: it goes on past those writes.
      instance.continueDiskSeq(nextWriteSeq(vm, sliceBlocks(disk, first, per_disk)), k)
      const target = {
        host: this.p.name,
        array: this.p.name,
        volume: k === 0 ? vm : `${vm}-disk${k}`, // a name for people: the slice is where its I/O goes
        size_bytes: per_disk * disk.block_size_bytes,
        epoch: () => STANDALONE_EPOCH,
      }
      return { target, io: shiftedPort(io, first) }
    })
    instance.attachDisks(disks, (kind, details) => this.p.emitEvent(kind, details), sink)
    if (load !== undefined) instance.setLoad(load)
    this.p.emitEvent('vm.started', { vm, op: STANDALONE_OP, epoch: STANDALONE_EPOCH, by })
  }
}

/** The blocks of one disk's slice of the image. */
function* sliceBlocks(disk: ReplicaDisk, first: number, blocks: number): Generator<Uint8Array> {
  for (let b = first; b < first + blocks; b++) yield disk.readBlock(b)
}

/** Block I/O of one disk whose blocks start at block `first` of the image. */
function shiftedPort(io: BlockIoPort, first: number): BlockIoPort {
  if (first === 0) return io
  return {
    write: (array, request, data) => io.write(array, { ...request, block: request.block + first }, data),
    read: (array, request) => io.read(array, { ...request, block: request.block + first }),
  }
}

/** Block I/O on a disk in memory only (a test failover's copy). */
function memoryDiskPort(disk: ReplicaDisk): BlockIoPort {
  return {
    async write(_array, request, data) {
      for (let i = 0; i < request.blocks; i++)
        disk.writeBlock(request.block + i, data.subarray(i * disk.block_size_bytes, (i + 1) * disk.block_size_bytes))
    },
    read: async (_array, request) => readBlocks(disk, request.block, request.blocks),
  }
}

/** Block I/O on the replica's disk: the block in memory, then durably on this server's storage. */
export function localDiskPort(store: ReplicaStore): BlockIoPort {
  const bs = store.disk.block_size_bytes
  return {
    async write(_array, request, data) {
      const blocks = Array.from({ length: request.blocks }, (_, i) => ({
        block: request.block + i,
        data: data.subarray(i * bs, (i + 1) * bs),
      }))
      for (const b of blocks) store.disk.writeBlock(b.block, b.data)
      await store.writeBlocks({ vm: request.volume, cycle: 0, closed_at_ms: 0, blocks, writes_logged: 0, logged_bytes: 0 })
    },
    read: async (_array, request) => readBlocks(store.disk, request.block, request.blocks),
  }
}
