/**
 * Extended replication (seed 004): a replica server forwards a replica it holds to a third
 * server, every 5 or 15 minutes, as a primary does (replication-shell.ts): the replica
 * server is that VM's primary for the third server. What it forwards is what its primary
 * wrote into the replica (ReplicaVm.onBlocks): each applied cycle's blocks go whole into
 * the forwarding log, so every forwarded log ends on an applied cycle and the extended
 * replica is as crash-consistent as the replica; resync blocks and an imported copy go in
 * as they are written. The forwarder begins with a resync against the third server (only
 * the blocks that differ travel), also after this server restarts. It ends when the
 * replica fails over here or the extension is removed.
 */
import type { Clock } from '../../shared/clock.js'
import type { Extension, PrimarySideStatus } from '../../shared/protocol/replica-messages.js'
import type { ReplicaEvent } from '../../shared/timeline/replica-events.js'
import type { PrimaryDisk } from './primary-resync.js'
import { readBlocks, type ReplicaDisk } from './replica-receiver.js'
import type { ReplicaVm } from './replica-vm.js'
import { ReplicationShell } from './replication-shell.js'
import type { PartRequester } from './shipment-sender.js'

export interface ExtendedReplicationDeps {
  /** This replica server. */
  readonly host: string
  readonly clock: Clock
  readonly time_scale: number
  /** The connection to server `name` now. */
  server(name: string): PartRequester | undefined
  emit(event: ReplicaEvent): void
}

export class ExtendedReplication {
  private readonly shells = new Map<string, ReplicationShell>()

  constructor(private readonly d: ExtendedReplicationDeps) {}

  /** Forwards `vm`'s replica as its extension says (again from a resync if it was forwarded already). */
  start(vm: ReplicaVm, extension: Extension): void {
    this.stop(vm)
    const shell = new ReplicationShell({
      vm: vm.vm,
      host: this.d.host,
      setting: { to: extension.to, frequency_ms: extension.frequency_ms, recovery_points: 0, compress: false },
      clock: this.d.clock,
      time_scale: this.d.time_scale,
      server: () => this.d.server(extension.to),
      disk: replicaAsPrimary(vm.store.disk, vm.store.disks),
      memory_mib: vm.memory_mib,
      writesInFlight: () => 0,
      emit: this.d.emit,
    })
    this.shells.set(vm.vm, shell)
    vm.onBlocks = (blocks) => {
      for (const b of blocks) shell.write(b.block, b.data) // blocks of the replica's one block space: disk 0's numbering (disk-set.ts)
    }
    shell.start()
  }

  stop(vm: ReplicaVm): void {
    vm.onBlocks = null
    this.shells.get(vm.vm)?.stop()
    this.shells.delete(vm.vm)
  }

  status(vm: string | null): PrimarySideStatus[] {
    return [...this.shells.entries()].filter(([name]) => vm === null || name === vm).map(([, s]) => s.status())
  }
}

/** The replica's disk, read as a primary's (its resync against the third server). */
function replicaAsPrimary(disk: ReplicaDisk, disks: number): PrimaryDisk {
  return {
    block_size_bytes: disk.block_size_bytes,
    blocks: disk.blocks,
    disks,
    read: async (first, blocks) => readBlocks(disk, first, blocks),
  }
}
