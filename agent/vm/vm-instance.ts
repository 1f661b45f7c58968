/**
 * A VM as a host runs it: a state (running / stopped), guest memory (`memory_mib` of 4 KiB
 * pages in a SharedArrayBuffer, allocated on first use so an idle lab VM costs no RAM), a
 * guest workload that dirties that memory at a configurable rate (`hvlab vm load`), a
 * guest heartbeat that ticks every second while it runs (what LooksAlive/IsAlive poll),
 * and device state (a small blob of counters and the workload settings) that moves with
 * it. It is a MigratableVm: live migration pauses, throttles and resumes it.
 *
 * Its disks (vm-disk.ts: disk 0 and its data disks) are attached once the VM runs
 * (`attachDisks`): each writes blocks with the owner's epoch at the load's `disk_iops`,
 * pauses and resumes with the VM, and stops with it. Each disk's next write seq travels in
 * the device state, so the destination of a migration continues the sequences a disk
 * checker follows.
 *
 * `VmHost` holds a host's VMs and fences them: `stopAll` (called when the host's quorum
 * lease has lapsed) stops every VM, and a start from a coordinator of an older epoch
 * than one already seen is refused, so a zombie coordinator cannot start anything.
 */
import type { Clock } from '../../shared/clock.js'
import { largeBuffersReleased } from '../../shared/large-buffer-release.js'
import { HvlabError } from '../../shared/errors.js'
import type { StorageMode } from '../../shared/protocol/migration-messages.js'
import { PAGE_SIZE_BYTES } from '../../shared/protocol/page-size.js'
import { VM_DISKS_MAX } from '../../shared/protocol/storage-limits.js'
import type { MigratableVm } from '../migration/migratable-vm.js'
import { GuestMemory } from './guest-memory.js'
import { prefaultGuestMemory } from './guest-memory-prefault.js'
import { GuestHang } from './guest-hang.js'
import { GuestWorkload } from './guest-workload.js'
import { VmDisk, type BlockIoPort, type DiskEventSink, type DiskWriteSink, type VmDiskCounters, type VmDiskWriteTarget } from './vm-disk.js'

export const GUEST_HEARTBEAT_INTERVAL_MS = 1000
export const VMS_PER_HOST_MAX = 256
const PAGES_PER_MIB = (1024 * 1024) / PAGE_SIZE_BYTES

export type VmState = 'running' | 'stopped'

/** What `hvlab vm load` sets: MiB/s of pages dirtied, the hot share of pages, disk writes per second. */
export interface VmLoad {
  dirty_mib_per_s: number
  hot_fraction: number
  disk_iops: number
}

/** The device state blob: emulated vCPU counters and the workload settings (JSON bytes, small). */
interface DeviceState {
  v: 1
  heartbeats: number
  /** Bumped every time the VM is resumed on a host (counts moves). */
  resumes: number
  load: VmLoad
  /** The seq of disk 0's next write (absent: no disk was attached). */
  disk_seq?: number
  /** Every disk's next write seq, disk 0 first (absent: one disk at most, `disk_seq`). */
  disk_seqs?: number[]
}

export class VmInstance implements MigratableVm {
  readonly storage: StorageMode = 'csv'
  private state_: VmState = 'stopped'
  private beats = 0
  private resumes = 0
  private cancel: (() => void) | undefined
  private readonly hang_ = new GuestHang()
  private memory_: GuestMemory | null
  private workload_: GuestWorkload | null = null
  private load_: VmLoad = { dirty_mib_per_s: 0, hot_fraction: 0.05, disk_iops: 0 }
  private paused_ = false
  private disks_: VmDisk[] = []
  /** Where each disk's next writes start, disk 0 first (from the source's device state, or the last detached disks). */
  private disk_seqs: number[] = []

  constructor(
    readonly name: string,
    readonly memory_mib: number,
    private readonly clock: Clock,
    memory?: GuestMemory,
  ) {
    if (memory && memory.page_count !== memory_mib * PAGES_PER_MIB) {
      throw new HvlabError('HVLAB_E_INTERNAL', `vm ${name}: ${memory.page_count} pages arrived for ${memory_mib} MiB`)
    }
    this.memory_ = memory ?? null
  }

  /** A VM that arrived by migration: its memory and device state are the source's at pause. */
  static arrived(name: string, memory: GuestMemory, device_state: Uint8Array, clock: Clock): VmInstance {
    const memory_mib = Math.ceil(memory.page_count / PAGES_PER_MIB)
    const vm = new VmInstance(name, memory_mib, clock, memory.page_count === memory_mib * PAGES_PER_MIB ? memory : undefined)
    if (!vm.memory_) vm.memory_ = memory
    const s = decodeDeviceState(device_state)
    if (s) {
      vm.beats = s.heartbeats
      vm.resumes = s.resumes + 1
      vm.load_ = { ...s.load, disk_iops: s.load.disk_iops ?? 0 }
      vm.disk_seqs = s.disk_seqs ?? (s.disk_seq === undefined ? [] : [s.disk_seq])
    }
    return vm
  }

  get state(): VmState {
    return this.state_
  }
  /** Guest heartbeats; carried across a migration, a hung guest stops counting. */
  get guestHeartbeats(): number {
    return this.beats
  }
  get paused(): boolean {
    return this.paused_
  }
  get load(): VmLoad {
    return { ...this.load_ }
  }
  get resumeCount(): number {
    return this.resumes
  }

  /** Guest memory, allocated on first use (zero pages cost nothing until written). */
  get memory(): GuestMemory {
    this.memory_ ??= GuestMemory.create(this.memory_mib * PAGES_PER_MIB)
    return this.memory_
  }

  start(): void {
    if (this.state_ === 'running') return
    this.state_ = 'running'
    this.paused_ = false
    this.scheduleBeat()
    this.applyLoad()
  }

  stop(): void {
    this.state_ = 'stopped'
    this.cancel?.()
    this.cancel = undefined
    this.workload_?.stop()
    this.workload_ = null
    void this.detachDisks()
  }

  /** Disk 0, if attached. */
  get disk(): VmDisk | null {
    return this.disks_[0] ?? null
  }

  /** The attached disks, disk 0 first. */
  get disks(): readonly VmDisk[] {
    return this.disks_
  }

  /**
   * Attaches the VM's disks, disk 0 first (the lead's start path calls this once the
   * storage is writable here): each writes at the load's disk_iops from now on, continuing
   * its write sequence. `journal` hears of each of their writes (the host's disk write journal).
   */
  attachDisks(
    disks: readonly { target: VmDiskWriteTarget; io: BlockIoPort }[],
    onEvent?: DiskEventSink,
    journal?: DiskWriteSink,
  ): VmDisk[] {
    if (this.state_ !== 'running')
      throw new HvlabError('HVLAB_E_STATE', `vm ${this.name} is not running; start it before attaching its disks`)
    if (this.disks_.length > 0)
      throw new HvlabError(
        'HVLAB_E_STATE',
        `vm ${this.name} already has its disks on ${this.disks_[0]!.target.array}/${this.disks_[0]!.target.volume}… attached; detach them first`,
      )
    this.disks_ = disks.map(({ target, io }, disk) => {
      const d = new VmDisk({
        vm: this.name,
        target: { ...target, disk },
        io,
        clock: this.clock,
        disk_iops: this.load_.disk_iops,
        first_seq: this.disk_seqs[disk] ?? 0,
        value: (seq) => this.diskValue(seq + disk),
        seed: (this.resumes + 1) * 104729 + disk,
        ...(onEvent ? { onEvent } : {}),
        ...(journal ? { journal } : {}),
      })
      if (this.paused_) void d.pause()
      return d
    })
    return this.disks_
  }

  /** One disk: `attachDisks` with one. */
  attachDisk(target: VmDiskWriteTarget, io: BlockIoPort, onEvent?: DiskEventSink, journal?: DiskWriteSink): VmDisk {
    return this.attachDisks([{ target, io }], onEvent, journal)[0]!
  }

  /** Disk `disk`'s next writes take seqs from `next_seq` on at least (a disk that holds its earlier writes; before `attachDisks`). */
  continueDiskSeq(next_seq: number, disk = 0): void {
    while (this.disk_seqs.length <= disk) this.disk_seqs.push(0)
    this.disk_seqs[disk] = Math.max(this.disk_seqs[disk]!, next_seq)
  }

  /** Detaches the disks after their in-flight writes finish; their final counters (none when none was attached). */
  async detachDisks(): Promise<VmDiskCounters[]> {
    const disks = this.disks_
    this.disks_ = []
    const counters = await Promise.all(disks.map((d) => d.detach()))
    disks.forEach((d, disk) => this.continueDiskSeq(d.nextSeq, disk))
    return counters
  }

  /** Disk 0's final counters after `detachDisks`, or null if none was attached. */
  async detachDisk(): Promise<VmDiskCounters | null> {
    return (await this.detachDisks())[0] ?? null
  }

  /** Disk 0's counters, or null when no disk is attached. */
  diskCounters(): VmDiskCounters | null {
    return this.disk?.counters() ?? null
  }

  /** Frees the VM after it left for another host (its memory goes with the last reference). */
  release(): void {
    this.stop()
    this.memory_ = null
  }

  /**
   * Fault injection: the guest hangs (heartbeats stop) while the VM stays "running", for
   * `for_ms` or (null, the default) until `releaseHang` or a restart (a new instance).
   */
  hang(for_ms: number | null = null): void {
    this.hang_.hang(this.clock.now(), for_ms)
  }

  /** Ends a hang; returns whether the guest was hung. */
  releaseHang(): boolean {
    return this.hang_.release(this.clock.now())
  }

  /** Whether the guest is hung now, and until when (`until_ms` null: until released). */
  get hangState(): { hung: boolean; until_ms: number | null } {
    return this.hang_.state(this.clock.now())
  }

  /** `hvlab vm load`: changes the guest's write rate live. */
  setLoad(load: Partial<VmLoad>): VmLoad {
    const next = { ...this.load_, ...load }
    if (this.workload_) this.workload_.setLoad(next)
    else new GuestWorkload(GuestMemory.create(1), this.clock, next) // validates the numbers
    this.load_ = next
    this.applyLoad()
    for (const d of this.disks_) d.setIops(next.disk_iops)
    return this.load
  }

  pause(): void {
    this.paused_ = true
    this.workload_?.pause()
    for (const d of this.disks_) void d.pause()
  }

  resume(): void {
    this.paused_ = false
    this.workload_?.resume()
    for (const d of this.disks_) d.resume()
  }

  throttle(pct: number): void {
    this.workload_?.setThrottle(pct)
  }

  deviceState(): Uint8Array {
    const n = Math.max(this.disk_seqs.length, this.disks_.length)
    const seqs = Array.from({ length: n }, (_, k) => Math.max(this.disk_seqs[k] ?? 0, this.disks_[k]?.nextSeq ?? 0))
    const s: DeviceState = {
      v: 1,
      heartbeats: this.beats,
      resumes: this.resumes,
      load: this.load_,
      ...((seqs[0] ?? 0) > 0 ? { disk_seq: seqs[0] } : {}),
      ...(n > 1 ? { disk_seqs: seqs } : {}),
    }
    return new TextEncoder().encode(JSON.stringify(s))
  }

  /** A disk write's value: a word of guest memory when it exists (so disk and memory agree), else 0. */
  private diskValue(seq: number): number {
    const m = this.memory_
    if (!m) return 0
    const page = seq % m.page_count
    const word = m.read(page * PAGE_SIZE_BYTES, 4)
    return ((word[0] ?? 0) | ((word[1] ?? 0) << 8) | ((word[2] ?? 0) << 16) | ((word[3] ?? 0) << 24)) >>> 0
  }

  /** Starts the writer when there is load and the VM runs; the writer stops at 0 MiB/s. */
  private applyLoad(): void {
    if (this.state_ !== 'running') return
    if (this.load_.dirty_mib_per_s === 0) {
      this.workload_?.stop()
      this.workload_ = null
      return
    }
    if (!this.workload_) {
      void prefaultGuestMemory(this.memory) // first writes to fresh pages off the main thread (guest-memory-prefault.ts)
      this.workload_ = new GuestWorkload(this.memory, this.clock, { ...this.load_, seed: (this.resumes + 1) * 7919 })
      if (this.paused_) this.workload_.pause()
      this.workload_.start()
    }
  }

  private scheduleBeat(): void {
    this.cancel = this.clock.setTimer(GUEST_HEARTBEAT_INTERVAL_MS, () => {
      if (this.state_ !== 'running') return
      if (!this.paused_ && !this.hang_.isHung(this.clock.now())) this.beats++
      this.scheduleBeat()
    })
  }
}

function decodeDeviceState(bytes: Uint8Array): DeviceState | null {
  try {
    const s = JSON.parse(new TextDecoder().decode(bytes)) as Partial<DeviceState>
    if (
      s.v !== 1 ||
      typeof s.heartbeats !== 'number' ||
      typeof s.resumes !== 'number' ||
      typeof s.load?.dirty_mib_per_s !== 'number' ||
      typeof s.load.hot_fraction !== 'number'
    )
      return null
    if (s.load.disk_iops !== undefined && (!Number.isInteger(s.load.disk_iops) || s.load.disk_iops < 0)) return null
    const seq = (n: unknown): boolean => Number.isSafeInteger(n) && (n as number) >= 0
    if (s.disk_seq !== undefined && !seq(s.disk_seq)) return null
    if (s.disk_seqs !== undefined && (!Array.isArray(s.disk_seqs) || s.disk_seqs.length > VM_DISKS_MAX || !s.disk_seqs.every(seq)))
      return null
    return s as DeviceState
  } catch {
    return null
  }
}

export interface VmRecord {
  name: string
  memory_mib: number
  state: VmState
  /** The start op of the coordinator that started it (echoed in replies). */
  op: number
  epoch: number
  guest_heartbeats: number
}

export class VmHost {
  private readonly vms = new Map<string, { vm: VmInstance; op: number; epoch: number }>()
  private newest_epoch = 0

  constructor(
    readonly host: string,
    private readonly memory_mib_max: number,
    private readonly clock: Clock,
  ) {}

  /** Starts a VM for the coordinator of `epoch`; refuses an older epoch, missing memory, or too many VMs. */
  start(name: string, memory_mib: number, op: number, epoch: number): void {
    this.checkEpoch(name, epoch, 'start')
    const have = this.vms.get(name)
    if (have) {
      have.vm.start()
      this.vms.set(name, { ...have, op, epoch })
      return
    }
    this.checkRoom(name, memory_mib, 0)
    const vm = new VmInstance(name, memory_mib, this.clock)
    vm.start()
    this.vms.set(name, { vm, op, epoch })
  }

  /** May a VM of `memory_mib` arrive here for the coordinator of `epoch`? `reserved_mib` is other arrivals. Throws why not. */
  checkArrival(name: string, memory_mib: number, epoch: number, reserved_mib: number): void {
    if (this.vms.has(name)) throw new HvlabError('HVLAB_E_STATE', `${this.host} already has vm ${name}`)
    this.checkEpoch(name, epoch, 'take')
    this.checkRoom(name, memory_mib, reserved_mib)
  }

  /** A VM arrived by migration and runs here now, as start `op` of the coordinator of `epoch`. */
  adopt(vm: VmInstance, op: number, epoch: number): void {
    if (this.vms.has(vm.name)) throw new HvlabError('HVLAB_E_INTERNAL', `${this.host} already has vm ${vm.name}`)
    if (this.vms.size >= VMS_PER_HOST_MAX)
      throw new HvlabError('HVLAB_E_STATE', `${this.host} already runs ${VMS_PER_HOST_MAX} vms, its limit`)
    vm.start()
    this.vms.set(vm.name, { vm, op, epoch })
  }

  /** The VM left for another host: forget it without a stop event (it runs there). */
  release(name: string): void {
    this.vms.get(name)?.vm.release()
    this.vms.delete(name)
    largeBuffersReleased()
  }

  /** Stops and forgets a VM; stopping one that is not here is fine (the stop is what was wanted). */
  stop(name: string): void {
    this.vms.get(name)?.vm.stop()
    if (this.vms.delete(name)) largeBuffersReleased()
  }

  /** Quorum lost: every VM stops now. Returns the names stopped. */
  stopAll(): string[] {
    const names = [...this.vms.keys()].sort()
    for (const n of names) this.stop(n)
    return names
  }

  list(): VmRecord[] {
    return [...this.vms.values()]
      .map(({ vm, op, epoch }) => ({
        name: vm.name,
        memory_mib: vm.memory_mib,
        state: vm.state,
        op,
        epoch,
        guest_heartbeats: vm.guestHeartbeats,
      }))
      .sort((a, b) => (a.name < b.name ? -1 : 1))
  }

  /** The VM object itself, if it runs here. */
  instance(name: string): VmInstance | undefined {
    return this.vms.get(name)?.vm
  }

  memoryInUse(): number {
    let sum = 0
    for (const { vm } of this.vms.values()) sum += vm.memory_mib
    return sum
  }

  private checkEpoch(name: string, epoch: number, verb: string): void {
    if (epoch < this.newest_epoch) {
      throw new HvlabError(
        'HVLAB_E_REFUSED',
        `${this.host} will not ${verb} vm ${name} for cluster epoch ${epoch}: it has seen epoch ${this.newest_epoch}; that coordinator is stale`,
      )
    }
    this.newest_epoch = epoch
  }

  private checkRoom(name: string, memory_mib: number, reserved_mib: number): void {
    if (this.vms.size >= VMS_PER_HOST_MAX)
      throw new HvlabError('HVLAB_E_STATE', `${this.host} already runs ${VMS_PER_HOST_MAX} vms, its limit`)
    const free = this.memory_mib_max - this.memoryInUse() - reserved_mib
    if (memory_mib > free) throw new HvlabError('HVLAB_E_STATE', `${this.host} has ${free} MiB free, vm ${name} needs ${memory_mib} MiB`)
  }
}
