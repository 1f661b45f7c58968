/**
 * Reverse replication on a replica server (seed 002: after a planned failover "the
 * replication policy is reversed so that changes in the DR site are replicated to the now
 * offline VMs in the primary site"). Each VM that failed over here planned and runs here
 * replicates its changes back to the cluster host that was its primary, into the VM's own
 * disk on the cluster's storage (reverse-replica-server.ts), with the machinery a cluster
 * host's primary side uses (replication-host.ts): its disk writes to its log, a cycle at its
 * frequency, a resync first that compares block hashes, so only what changed here travels.
 * A fail-back stops the VM here: its last changes go back first.
 */
import type { LabProcess } from '../../shared/lab-process.js'
import type { ReplicationSetting } from '../../shared/protocol/replica-messages.js'
import { readBlocks } from './replica-receiver.js'
import type { ReplicaServer } from './replica-server.js'
import type { ReplicaVm } from './replica-vm.js'
import type { ReplicaVmRunner } from './replica-vm-runner.js'
import { ReplicationHost, type ReplicationHostDeps } from './replication-host.js'

export function newReverseReplication(p: LabProcess, server: () => ReplicaServer, runner: () => ReplicaVmRunner): ReplicationHost {
  return reverseReplicationHost({
    host: p.name,
    clock: p.clock,
    time_scale: p.topology.timeScale,
    reversed: () => server().reversed,
    running: (vm) => runner().running(vm),
    server: (name) => p.mesh.connection(name),
    // A replica event is a kind with its own details; TypeScript cannot pair them through the union, the timeline's schema checks them.
    emit: (e) => p.emitEvent(e.kind, e.details as never),
  })
}

export interface ReverseReplicationDeps extends Pick<ReplicationHostDeps, 'host' | 'clock' | 'time_scale' | 'server' | 'emit'> {
  /** The replicas failed over here (planned) whose changes replicate back (ReplicaServer.reversed). */
  reversed(): readonly ReplicaVm[]
  /** The failed-over VM runs here now. */
  running(vm: string): boolean
}

/** The primary side of every reversed VM running here, as a cluster host has it for the VMs it runs. */
export function reverseReplicationHost(d: ReverseReplicationDeps): ReplicationHost {
  const reversed = (vm: string): ReplicaVm | undefined => d.reversed().find((r) => r.vm === vm)
  return new ReplicationHost({
    host: d.host,
    clock: d.clock,
    time_scale: d.time_scale,
    running: () =>
      d
        .reversed()
        .filter((r) => d.running(r.vm))
        .map((r) => r.vm),
    settingOf: (vm) => reverseSetting(reversed(vm)),
    memoryOf: (vm) => reversed(vm)?.memory_mib ?? 1,
    diskOf: (vm) => {
      const disk = reversed(vm)?.store.disk
      if (disk === undefined) return undefined
      return {
        block_size_bytes: disk.block_size_bytes,
        blocks: disk.blocks,
        read: async (block, blocks) => readBlocks(disk, block, blocks),
      }
    },
    server: d.server,
    emit: d.emit,
  })
}

/** The reverse direction as a replication: no recovery points (the cluster side keeps the VM's disk only). */
function reverseSetting(vm: ReplicaVm | undefined): ReplicationSetting | undefined {
  const r = vm?.reverse
  return r === null || r === undefined ? undefined : { to: r.to, frequency_ms: r.frequency_ms, recovery_points: 0, compress: r.compress }
}
