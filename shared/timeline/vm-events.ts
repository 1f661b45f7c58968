/**
 * A host's VMs on the timeline: started, stopped, moved in and out (VmAgent, the
 * migration host), their guests' hangs, their disks' fencing and their load.
 */
import { defineEvents, detail } from './details.js'

const maybeNumber = () => detail.number().nullable()

export const vmEvents = defineEvents({
  'vm.started': { vm: detail.name(), op: detail.uint(), epoch: detail.uint(), by: detail.name() },
  'vm.stopped': { vm: detail.name(), op: detail.uint(), reason: detail.text() },
  'vm.arrived': { vm: detail.name(), op: detail.uint(), epoch: detail.uint(), from: detail.name() },
  'vm.departed': { vm: detail.name(), to: detail.name() },
  'vm.guest-hung': { vm: detail.name(), node: detail.name(), for_ms: maybeNumber(), reason: detail.text() },
  'vm.guest-released': { vm: detail.name(), node: detail.name() },
  /** The array refused the VM's write: an older reservation epoch (vm-disk.ts). */
  'vm.disk-fenced': {
    vm: detail.name(),
    host: detail.name(),
    array: detail.name(),
    volume: detail.name(),
    epoch: detail.uint(),
    seq: detail.uint(),
    reason: detail.text().nullable(),
  },
  /** Where a VM runs now, told to the lab's switch too (`how`: gratuitous-arp). */
  'vm.location': { vm: detail.name(), host: detail.name(), how: detail.word() },
  'vm.load': { vm: detail.name(), dirty_mib_per_s: maybeNumber(), hot_fraction: maybeNumber(), disk_iops: maybeNumber() },
  'vm.migration-started': { vm: detail.name(), to: detail.name(), mode: detail.word(), op: detail.uint(), migration_id: detail.name() },
  'vm.migration-ended': {
    vm: detail.name(),
    to: detail.name(),
    mode: detail.word(),
    outcome: detail.word(),
    reason: detail.text().optional(),
    total_ms: detail.number().optional(),
    blackout_ms: maybeNumber().optional(),
    /** Live: the guest's pause on the source → its resume on the destination (wall clocks). */
    guest_paused_ms: maybeNumber().optional(),
    downtime_ms: maybeNumber().optional(),
  },
  /** A migration in doubt is settled: the destination runs it, or the source resumed it. */
  'vm.migration-settled': { vm: detail.name(), to: detail.name(), runs_on: detail.name(), reason: detail.text().optional() },
})
