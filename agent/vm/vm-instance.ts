/**
 * A VM as a host runs it for now: a small in-process object with a state (running /
 * stopped), its memory size, and a guest heartbeat that ticks every second while it runs
 * (what LooksAlive/IsAlive poll). The full emulated VM (guest memory, disks, workload)
 * replaces it later behind the same methods.
 *
 * `VmHost` holds a host's VMs and fences them: `stopAll` (called when the host's quorum
 * lease has lapsed) stops every VM, and a start from a coordinator of an older epoch
 * than one already seen is refused, so a zombie coordinator cannot start anything.
 */
import type { Clock } from '../../shared/clock.js'
import { HvlabError } from '../../shared/errors.js'

export const GUEST_HEARTBEAT_INTERVAL_MS = 1000
export const VMS_PER_HOST_MAX = 256

export type VmState = 'running' | 'stopped'

export class VmInstance {
  private state_: VmState = 'stopped'
  private beats = 0
  private cancel: (() => void) | undefined

  constructor(
    readonly name: string,
    readonly memory_mib: number,
    private readonly clock: Clock,
  ) {}

  get state(): VmState {
    return this.state_
  }
  /** Guest heartbeats since the VM last started; a hung guest stops counting. */
  get guestHeartbeats(): number {
    return this.beats
  }

  start(): void {
    if (this.state_ === 'running') return
    this.state_ = 'running'
    this.beats = 0
    this.scheduleBeat()
  }

  stop(): void {
    this.state_ = 'stopped'
    this.cancel?.()
    this.cancel = undefined
  }

  /** Fault injection: the guest hangs (heartbeats stop) while the VM stays "running". */
  hang(): void {
    this.cancel?.()
    this.cancel = undefined
  }

  private scheduleBeat(): void {
    this.cancel = this.clock.setTimer(GUEST_HEARTBEAT_INTERVAL_MS, () => {
      if (this.state_ !== 'running') return
      this.beats++
      this.scheduleBeat()
    })
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
    if (epoch < this.newest_epoch) {
      throw new HvlabError('HVLAB_E_REFUSED', `${this.host} will not start vm ${name} for cluster epoch ${epoch}: it has seen epoch ${this.newest_epoch}; that coordinator is stale`)
    }
    this.newest_epoch = epoch
    const have = this.vms.get(name)
    if (have) {
      have.vm.start()
      this.vms.set(name, { ...have, op, epoch })
      return
    }
    if (this.vms.size >= VMS_PER_HOST_MAX) throw new HvlabError('HVLAB_E_STATE', `${this.host} already runs ${VMS_PER_HOST_MAX} vms, its limit`)
    const free = this.memory_mib_max - this.memoryInUse()
    if (memory_mib > free) throw new HvlabError('HVLAB_E_STATE', `${this.host} has ${free} MiB free, vm ${name} needs ${memory_mib} MiB`)
    const vm = new VmInstance(name, memory_mib, this.clock)
    vm.start()
    this.vms.set(name, { vm, op, epoch })
  }

  /** Stops and forgets a VM; stopping one that is not here is fine (the stop is what was wanted). */
  stop(name: string): void {
    this.vms.get(name)?.vm.stop()
    this.vms.delete(name)
  }

  /** Quorum lost: every VM stops now. Returns the names stopped. */
  stopAll(): string[] {
    const names = [...this.vms.keys()].sort()
    for (const n of names) this.stop(n)
    return names
  }

  list(): VmRecord[] {
    return [...this.vms.values()]
      .map(({ vm, op, epoch }) => ({ name: vm.name, memory_mib: vm.memory_mib, state: vm.state, op, epoch, guest_heartbeats: vm.guestHeartbeats }))
      .sort((a, b) => (a.name < b.name ? -1 : 1))
  }

  /** The VM object itself (for fault injection), if it runs here. */
  instance(name: string): VmInstance | undefined {
    return this.vms.get(name)?.vm
  }

  memoryInUse(): number {
    let sum = 0
    for (const { vm } of this.vms.values()) sum += vm.memory_mib
    return sum
  }
}
