/**
 * Puts Hyper-V Replica's primary side into a cluster host (agent/cluster/role-host.ts):
 * the ReplicationHost reads each VM's replication from the committed cluster database (to
 * another cluster: its requests go where that cluster's broker placed the replica,
 * to-cluster-placements.ts),
 * its disk through the VM agent, and reaches replica servers over the lab's mesh; it
 * answers `hvlab replica status` for the VMs replicated from here (and for the reverse
 * replicas it holds).
 */
import { recoveryPointEveryMsOf } from '../../shared/topology.js'
import type { LabProcess } from '../../shared/lab-process.js'
import type { ReplicaSideStatus, ReplicationSetting } from '../../shared/protocol/replica-messages.js'
import { decodeRole } from '../cluster/role-record.js'
import type { VmAgent } from '../cluster/vm-agent.js'
import { DISK_BLOCK_SIZE_BYTES_DEFAULT, type DiskWriteSink } from '../vm/vm-disk.js'
import { guestQuiescer } from '../vm/guest-quiesce.js'
import type { PrimaryDisk } from './primary-resync.js'
import { diskSet, readSet, setBlocks } from './disk-set.js'
import { recoveryPointEveryMs } from './recovery-points.js'
import { ReplicationHost } from './replication-host.js'
import { ToClusterPlacements } from './to-cluster-placements.js'

export function newReplicationHost(
  p: LabProcess,
  database: () => { readonly config: Readonly<Record<string, string>> },
  agent: () => VmAgent,
  replicas: (vm: string | null) => ReplicaSideStatus[] = () => [],
  runsElsewhere: (vm: string, cluster: string) => void = () => undefined,
): ReplicationHost {
  const settingOf = (vm: string) => decodeRole(database().config, vm)?.replication
  // To another cluster: its requests go to the member that cluster's broker placed the replica on (to-cluster-placements.ts).
  // The VMs running here, and those stopped whose last changes still go (a planned failover waits for them).
  const toClusters: ToClusterPlacements = new ToClusterPlacements(
    p,
    (): { vm: string; setting: ReplicationSetting }[] =>
      [...new Set([...vmsRunning(agent()), ...host.replicating])].flatMap((vm) => {
        const setting = settingOf(vm)
        return setting === undefined ? [] : [{ vm, setting }]
      }),
    runsElsewhere,
  )
  toClusters.start()
  const host: ReplicationHost = new ReplicationHost({
    host: p.name,
    clock: p.clock,
    time_scale: p.topology.timeScale,
    running: () => vmsRunning(agent()),
    settingOf,
    memoryOf: (vm) => agent().vms.instance(vm)?.memory_mib ?? 1,
    movesOf: (vm) => agent().vms.instance(vm)?.resumeCount ?? 0,
    diskOf: (vm) => primaryDisk(p.name, agent(), vm),
    server: (name, vm) => p.mesh.connection(toClusters.hostFor(vm, name) ?? name),
    pointEveryMs: (name) => recoveryPointEveryMs(p.topology.timeScale, recoveryPointEveryMsOf(p.topology, name)),
    guestOf: (vm) => {
      const instance = agent().vms.instance(vm)
      return instance === undefined ? undefined : guestQuiescer(instance, p.clock)
    },
    runsElsewhere,
    // A replica event is a kind with its own details; TypeScript cannot pair them through the union, the timeline's schema checks them.
    emit: (e) => p.emitEvent(e.kind, e.details as never),
  })
  p.serveOperator('replica-status-request', (q) => ({
    t: 'replica-status-reply',
    server: p.name,
    replica_server: null,
    replicas: replicas(q.vm), // reverse replicas (reverse-replica-server.ts)
    primaries: host.status(q.vm),
  }))
  return host
}

/** The VM's disks as their writers write them from this host (`host`), read where they are now, as one block space (disk-set.ts); undefined: none attached. */
export function primaryDisk(host: string, agent: VmAgent, vm: string): PrimaryDisk | undefined {
  const disks = agent.disksIo(vm)
  if (disks.length === 0) return undefined
  const block_size_bytes = agent.vms.instance(vm)?.disk?.block_size_bytes ?? DISK_BLOCK_SIZE_BYTES_DEFAULT // the block its writers write
  const set = diskSet(disks.length, Math.floor(disks[0]!.target.size_bytes / block_size_bytes))
  return {
    block_size_bytes,
    blocks: setBlocks(set),
    disks: set.disks,
    read: (first, blocks) =>
      readSet(set, block_size_bytes, first, blocks, (disk, at, n) => {
        const { target, io } = disks[disk]!
        return io.read(target.array, { volume: target.volume, host, block: at, blocks: n })
      }),
  }
}

/** The VMs running on this host now. */
export function vmsRunning(agent: VmAgent): string[] {
  return agent.vms
    .list()
    .filter((v) => v.state === 'running')
    .map((v) => v.name)
}

/** Every write told to each sink in turn (the disk write journal, then Replica). */
export function allSinks(...sinks: readonly (DiskWriteSink | undefined)[]): DiskWriteSink {
  const present = sinks.filter((s): s is DiskWriteSink => s !== undefined)
  return {
    issued: (r, to) => present.forEach((s) => s.issued(r, to)),
    completed: (r, outcome, code, to) => present.forEach((s) => s.completed(r, outcome, code, to)),
  }
}
