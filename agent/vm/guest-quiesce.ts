/**
 * The guest's VSS integration service for an application-consistent recovery point
 * (agent/replica/app-consistent-cycles.ts): asked to quiesce, the guest's application
 * finishes the transaction it has open and holds new ones (VmDisk.freeze), and the service
 * answers once nothing is in flight on any of the VM's disks; the primary closes its replica log then and says
 * `thaw`. A guest that cannot answer does not: a stopped, paused (a migration's blackout)
 * or hung one answers false at once, and its primary's timeout gives a crash-consistent
 * point instead.
 *
 * The hold is bounded on the guest's side too (`hold_ms`, as VSS bounds a freeze): it
 * thaws by itself once that has passed, so a primary that never says `thaw` (it went down)
 * cannot leave the VM's application stuck.
 */
import type { Clock } from '../../shared/clock.js'
import type { VmDisk } from './vm-disk.js'

/** What the service needs of the VM (a VmInstance). */
export interface QuiescibleVm {
  readonly state: 'running' | 'stopped'
  readonly paused: boolean
  readonly hangState: { readonly hung: boolean }
  readonly disks: readonly Pick<VmDisk, 'freeze' | 'thaw' | 'frozenGeneration'>[]
}

/** The primary's view of a guest's integration service. */
export interface GuestQuiescer {
  /** True once the guest is quiesced (it holds its writes until `thaw`, or `hold_ms`); false: it does not answer. */
  quiesce(hold_ms: number): Promise<boolean>
  thaw(): void
}

export function guestQuiescer(vm: QuiescibleVm, clock: Clock): GuestQuiescer {
  return {
    async quiesce(hold_ms) {
      if (vm.state !== 'running' || vm.paused || vm.hangState.hung) return false
      const held = vm.disks.map(async (disk) => {
        const frozen = disk.freeze()
        const generation = disk.frozenGeneration
        clock.setTimer(hold_ms, () => disk.thaw(generation ?? undefined))
        return (await frozen) === disk.frozenGeneration // still held, not thawed by the bound meanwhile
      })
      return (await Promise.all(held)).every(Boolean) // no disk: no application writes to hold
    },
    thaw() {
      for (const disk of vm.disks) disk.thaw()
    },
  }
}
