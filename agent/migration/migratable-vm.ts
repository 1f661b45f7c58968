/**
 * What live migration needs of a VM on a host: its memory, a way to pause, resume and
 * throttle the guest, and its device state (a small blob: vCPU registers, counters).
 * `LabVm` is the lab's emulated VM as migration sees it: memory plus an optional guest
 * workload; it is what the destination builds when a VM arrives.
 */
import { HvlabError } from '../../shared/errors.js'
import { DEVICE_STATE_BYTES_MAX, type StorageMode } from '../../shared/protocol/migration-messages.js'
import type { GuestMemory } from '../vm/guest-memory.js'
import type { GuestWorkload } from '../vm/guest-workload.js'

export interface MigratableVm {
  readonly name: string
  readonly memory: GuestMemory
  /** How its disks move with it: CSV (nothing), a node-owned disk, or a CLX group. */
  readonly storage: StorageMode
  readonly paused: boolean
  /** Stops every guest write at once (blackout) … */
  pause(): void
  /** … and lets them go on (the way back, or the destination taking over). */
  resume(): void
  /** Auto-converge: slow the guest by pct% (0 lifts it). */
  throttle(pct: number): void
  /** Device state to carry across: 1–DEVICE_STATE_BYTES_MAX bytes. */
  deviceState(): Uint8Array
}

export function checkDeviceState(vm: string, state: Uint8Array): Uint8Array {
  if (state.length < 1 || state.length > DEVICE_STATE_BYTES_MAX) {
    throw new HvlabError('HVLAB_E_INTERNAL', `vm ${vm}: device state of ${state.length} bytes is outside 1–${DEVICE_STATE_BYTES_MAX}`)
  }
  return state
}

/** Default device state: 64 bytes of emulated vCPU registers and counters. */
export const DEVICE_STATE_BYTES_DEFAULT = 64

export class LabVm implements MigratableVm {
  readonly name: string
  readonly memory: GuestMemory
  readonly storage: StorageMode
  workload: GuestWorkload | null
  private paused_ = false
  private device_state: Uint8Array

  constructor(options: { name: string; memory: GuestMemory; storage?: StorageMode; workload?: GuestWorkload; device_state?: Uint8Array }) {
    this.name = options.name
    this.memory = options.memory
    this.storage = options.storage ?? 'csv'
    this.workload = options.workload ?? null
    if (this.workload && this.workload.memory !== this.memory) {
      throw new HvlabError('HVLAB_E_INTERNAL', `vm ${this.name}: its workload writes another VM's memory`)
    }
    this.device_state = checkDeviceState(this.name, options.device_state ?? new Uint8Array(DEVICE_STATE_BYTES_DEFAULT).fill(0x5a))
  }

  get paused(): boolean {
    return this.paused_
  }

  pause(): void {
    this.paused_ = true
    this.workload?.pause()
  }

  resume(): void {
    this.paused_ = false
    this.workload?.resume()
  }

  throttle(pct: number): void {
    this.workload?.setThrottle(pct)
  }

  deviceState(): Uint8Array {
    return this.device_state
  }

  /** The destination loads the state that came with the blackout. */
  loadDeviceState(state: Uint8Array): void {
    this.device_state = checkDeviceState(this.name, Uint8Array.from(state))
  }
}
