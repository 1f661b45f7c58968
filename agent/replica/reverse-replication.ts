/**
 * Reverse replication on a replica server (seed 002: after a planned failover "the
 * replication policy is reversed so that changes in the DR site are replicated to the now
 * offline VMs in the primary site"). Each VM that failed over here planned and runs here
 * replicates its changes back to the cluster: to the member its Replica Broker placed the
 * VM's reverse replica on (reverse-placement.ts), into the VM's own disk on the cluster's
 * storage (reverse-replica-server.ts), with the machinery a cluster
 * host's primary side uses (replication-host.ts): its disk writes to its log, a cycle at its
 * frequency, a resync first that compares block hashes, so only what changed here travels.
 * A fail-back stops the VM here: its last changes go back first. The same sending side
 * serves a VM running here that replicates to another standalone host (its own
 * `replication` setting, after `hvlab replica enable` of a standalone host's VM or a planned
 * failover between standalone hosts).
 */
import { describeError } from '../../shared/errors.js'
import type { LabProcess } from '../../shared/lab-process.js'
import { openConnection } from '../../shared/transport/peer-ask.js'
import type { ReplicationSetting } from '../../shared/protocol/replica-messages.js'
import { readBlocks } from './replica-receiver.js'
import type { ReplicaServer } from './replica-server.js'
import type { ReplicaVm } from './replica-vm.js'
import type { ReplicaVmRunner } from './replica-vm-runner.js'
import { ReplicationHost, type ReplicationHostDeps } from './replication-host.js'
import { ReversePlacements } from './reverse-placement.js'

export function newReverseReplication(
  p: LabProcess,
  server: () => ReplicaServer,
  runner: () => ReplicaVmRunner,
): { host: ReplicationHost; placements: ReversePlacements } {
  const placements = new ReversePlacements({
    server: p.name,
    clock: p.clock,
    members: p.topology.hosts.map((h) => h.name),
    reversed: () => server().reversed.map((r) => r.vm),
    ask: async (node, message, timeout_ms) => (await openConnection(p.mesh, p.name, node).request(message, { timeout_ms })).message,
    runsElsewhere: (vm) => {
      p.log.warn({ vm }, 'the VM runs in the cluster again (failed back unplanned): the older copy here stops')
      server()
        .retire(vm)
        .catch((e: unknown) =>
          p.log.warn({ vm, err: describeError(e) }, 'the older copy did not stop; the next placement check asks again'),
        )
    },
    log: p.log,
  })
  const host = reverseReplicationHost({
    host: p.name,
    clock: p.clock,
    time_scale: p.topology.timeScale,
    sending: () => server().sending,
    placedOn: (vm) => placements.hostOf(vm),
    running: (vm) => runner().running(vm),
    server: (name) => p.mesh.connection(name),
    // A replica event is a kind with its own details; TypeScript cannot pair them through the union, the timeline's schema checks them.
    emit: (e) => p.emitEvent(e.kind, e.details as never),
  })
  return { host, placements }
}

export interface ReverseReplicationDeps extends Pick<ReplicationHostDeps, 'host' | 'clock' | 'time_scale' | 'server' | 'emit'> {
  /** The VMs running here whose changes replicate from here (ReplicaServer.sending): back to the cluster, or to a standalone host. */
  sending(): readonly ReplicaVm[]
  /** The cluster member the Replica Broker placed `vm`'s reverse replica on (reverse-placement.ts); undefined: none yet. */
  placedOn(vm: string): string | undefined
  /** The failed-over VM runs here now. */
  running(vm: string): boolean
}

/**
 * The primary side of every VM running here whose changes replicate (reversed to the
 * cluster, or to a standalone host), as a cluster host has it for the VMs it runs.
 */
export function reverseReplicationHost(d: ReverseReplicationDeps): ReplicationHost {
  const reversed = (vm: string): ReplicaVm | undefined => d.sending().find((r) => r.vm === vm)
  return new ReplicationHost({
    host: d.host,
    clock: d.clock,
    time_scale: d.time_scale,
    running: () =>
      d
        .sending()
        .filter((r) => d.running(r.vm))
        .map((r) => r.vm),
    settingOf: (vm) => {
      const r = reversed(vm)
      return r?.replication ?? reverseSetting(r, d.placedOn(vm))
    },
    memoryOf: (vm) => reversed(vm)?.memory_mib ?? 1,
    diskOf: (vm) => {
      const store = reversed(vm)?.store
      if (store === undefined) return undefined
      const { disk, disks } = store
      return {
        block_size_bytes: disk.block_size_bytes,
        blocks: disk.blocks,
        disks,
        read: async (block, blocks) => readBlocks(disk, block, blocks),
      }
    },
    server: d.server,
    emit: d.emit,
  })
}

/**
 * The reverse direction as a replication to the member holding the reverse replica, with the
 * recovery points the forward direction kept (the member keeps them beside the VM's disk).
 * Another member placed gives another setting, so the replication begins again there.
 */
function reverseSetting(vm: ReplicaVm | undefined, placed: string | undefined): ReplicationSetting | undefined {
  const r = vm?.reverse
  if (r === null || r === undefined || placed === undefined) return undefined
  return { to: placed, frequency_ms: r.frequency_ms, recovery_points: r.recovery_points ?? 0, compress: r.compress }
}
