/**
 * Replica from one failover cluster to another (`replica enable VM --to cluster:NAME`): the
 * VM's role keeps `to` = the other cluster (`to_cluster`), and whichever host of this cluster
 * runs the VM asks that cluster's Replica Broker where its replica is (reverse-placement.ts,
 * through any member of it, every few seconds), then replicates there as to any replica
 * server. The broker places it again when that member is gone; the next answer says so, and
 * replication begins again there (a resync by block hashes). One asker per other cluster.
 * When that broker answers that the VM failed over there unplanned and runs there as its own
 * (HVLAB_E_REPLICA_RUNS_ELSEWHERE), the copy here is the older one: `runsElsewhere` stops it.
 */
import type { LabProcess } from '../../shared/lab-process.js'
import type { ReplicationSetting } from '../../shared/protocol/replica-messages.js'
import { clustersOf } from '../../shared/topology.js'
import { openConnection } from '../../shared/transport/peer-ask.js'
import { ReversePlacements } from './reverse-placement.js'

export class ToClusterPlacements {
  private readonly byCluster = new Map<string, ReversePlacements>()

  /**
   * `replicatedHere()`: the VMs replicated from here (running, or sending their last changes)
   * with their replication setting; `runsElsewhere(vm, cluster)`: cluster `cluster` runs `vm` as its own.
   */
  constructor(
    p: LabProcess,
    replicatedHere: () => readonly { vm: string; setting: ReplicationSetting }[],
    runsElsewhere: (vm: string, cluster: string) => void = () => undefined,
  ) {
    for (const c of clustersOf(p.topology).slice(1)) {
      const placements = new ReversePlacements({
        server: p.name,
        clock: p.clock,
        members: c.hosts.map((h) => h.name),
        reversed: () => replicatedHere().flatMap((r) => (isToCluster(r.setting, c.name) ? [r.vm] : [])),
        ask: async (node, message, timeout_ms) => (await openConnection(p.mesh, p.name, node).request(message, { timeout_ms })).message,
        runsElsewhere: (vm) => runsElsewhere(vm, c.name),
        log: p.log,
      })
      this.byCluster.set(c.name, placements)
    }
  }

  start(): void {
    for (const p of this.byCluster.values()) p.start()
  }

  /**
   * The member of cluster `cluster` that `vm`'s replica is on, as its broker placed it;
   * undefined until it has (the VM's writes are logged meanwhile, and sent once it has), or
   * when `cluster` is no other cluster of the lab (a server's name).
   */
  hostFor(vm: string, cluster: string): string | undefined {
    return this.byCluster.get(cluster)?.hostOf(vm)
  }
}

/** A VM running here replicates to cluster `cluster` (not one whose replica this cluster holds: `reversed_to`). */
const isToCluster = (s: ReplicationSetting, cluster: string): boolean =>
  s.to_cluster === true && s.to === cluster && s.reversed_to === undefined
