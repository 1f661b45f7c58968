/**
 * A cluster host as the receiving end of reverse replication (reverse-replication.ts):
 * after a planned failover the VM runs on its replica server, which sends its changes back
 * to the cluster: here, when the cluster's Replica Broker placed the VM's reverse replica on
 * this host (replica-broker-service.ts), into the VM's own disk on the cluster's storage
 * (volume-disk-image.ts) — the disk the VM starts from when it fails back, with nothing to
 * copy then. The replica's state (the cycle applied, the shipment being applied) is kept
 * under `data/<host>/replica-reverse/`, so a restart of this host goes on from it.
 *
 * Whom it takes changes from is data, not a list: the broker's allow list, and the VM's role
 * in the committed cluster database must say the VM failed over to that replica server (or,
 * for a VM of another cluster, runs in that cluster: any of its members sends), its reverse
 * replica placed on this host. The same end takes a VM of another cluster's replica
 * (`replica enable VM --to cluster:NAME` there).
 * A cluster host runs no replica VM itself: the VM fails back through the cluster.
 */
import { join } from 'node:path'
import { HvlabError } from '../../shared/errors.js'
import type { LabProcess } from '../../shared/lab-process.js'
import { recoveryPointEveryMsOf } from '../../shared/topology.js'
import { csvDiskTargets, diskTargetsFor, type VmDiskTarget } from '../clx/disk-target.js'
import type { ClxService } from '../clx/clx-service.js'
import { brokerOf, checkBrokerAllows, isReplicationSource } from '../cluster/replica-broker.js'
import { decodeRole } from '../cluster/role-record.js'
import type { BlockIoPort } from '../vm/vm-disk.js'
import type { DiskImage } from './disk-image.js'
import { ReplicaServer, type ReplicaAuthorization, type ReplicaRunner } from './replica-server.js'
import type { ReplicaGeometry } from './replica-store.js'
import { volumeDiskImage } from './volume-disk-image.js'

export interface ReverseReplicaDeps {
  /** The committed cluster database as this host has it. */
  database(): { readonly config: Readonly<Record<string, string>> }
  clx(): ClxService
  blockIoFor(target: VmDiskTarget): BlockIoPort
  /** The cluster epoch this host holds now (its writes carry it). */
  epoch(): number
  /** The failover cluster host `host` is a member of (a VM of another cluster replicates from whichever of its hosts runs it); null: none. */
  clusterOf(host: string): string | null
}

export type ReverseReplicaServer = ReplicaServer<ReplicaAuthorization>

export function startReverseReplicaServer(p: LabProcess, d: ReverseReplicaDeps): ReverseReplicaServer {
  const dir = join(p.layout.processData(p.name), 'replica-reverse')
  const every = recoveryPointEveryMsOf(p.topology, p.name)
  const server = new ReplicaServer(p.name, dir, p.topology.timeScale, reverseAuthorization(d.database, d.clusterOf), NO_RUNNER, {
    image: (g) => volumeImage(p, d, g),
    ...(every === undefined ? {} : { recovery_point_every_ms: every }),
  })
  p.onPeer((c) => server.servePrimary(c, p.clock))
  p.serveOperator('replica-reverse-drop-request', async (q) => {
    await server.drop(q.vm)
    p.log.info({ vm: q.vm }, 'reverse replica dropped: the VM failed back')
    return { t: 'ok' }
  })
  p.serveOperator('replica-reverse-takeover-request', async (q) => {
    await server.handOver(q.vm, q.recovery_cycle)
    p.log.info({ vm: q.vm, recovery_cycle: q.recovery_cycle }, 'replica handed over: the VM fails over into this cluster')
    return { t: 'ok' }
  })
  return server
}

/**
 * Takes a VM's changes back only from a replica server the cluster's Replica Broker allows,
 * and only the VM's whose committed role says it failed over to that server, its reverse
 * replica placed on this host by the broker.
 */
export function reverseAuthorization(
  database: ReverseReplicaDeps['database'],
  clusterOf: ReverseReplicaDeps['clusterOf'] = () => null,
): ReplicaAuthorization {
  return {
    settings: { enabled: false, allow_any: false, allow: [] }, // not a replica server of its own: reverse replication only
    check(host, primary, vm) {
      const broker = brokerOf(database().config)
      if (broker === null)
        throw new HvlabError(
          'HVLAB_E_REPLICA_NOT_ALLOWED',
          `the cluster takes a VM's changes back through its Replica Broker, and has none; enable it: hvlab replica server enable cluster --allow ${primary}`,
        )
      checkBrokerAllows(broker.settings, primary, clusterOf)
      const r = vm === undefined ? undefined : decodeRole(database().config, vm)?.replication
      if (r?.reversed_to !== host || !isReplicationSource(r, primary, clusterOf))
        throw new HvlabError(
          'HVLAB_E_REPLICA_NOT_ALLOWED',
          `${host} takes a VM's changes back only from the replica server it failed over to (\`hvlab replica failover VM --planned\`), once the Replica Broker placed its reverse replica here; vm ${vm ?? '?'} has not failed over to ${primary} with its reverse replica on ${host}`,
        )
    },
  }
}

/** The VM's volumes, made writable from this host's site (CLX) for replicated disks; CSV regions are writable from every node. */
async function volumeImage(p: LabProcess, d: ReverseReplicaDeps, g: ReplicaGeometry): Promise<DiskImage> {
  const spec = decodeRole(d.database().config, g.vm)?.storage
  let targets: VmDiskTarget[]
  if (spec?.kind === 'csv') targets = csvDiskTargets(spec)
  else if (spec?.kind === 'replicated') targets = diskTargetsFor(spec, await d.clx().prepareForStart(g.vm, spec.group, p.site))
  else
    throw new HvlabError(
      'HVLAB_E_STATE',
      `vm ${g.vm} has no disk on the cluster's storage for its changes to replicate back to; fail it back by replicating it again`,
    )
  return volumeDiskImage({ host: p.name, disks: targets.map((target) => ({ target, io: d.blockIoFor(target) })), epoch: d.epoch })
}

/** A cluster host runs no replica VM outside the cluster: its VMs fail back through the cluster. */
const NO_RUNNER: ReplicaRunner = {
  running: () => false,
  run: refuseToRun,
  runIsolated: refuseToRun,
  stop: () => undefined,
}

function refuseToRun(): never {
  throw new HvlabError(
    'HVLAB_E_STATE',
    'a cluster host runs no replica VM outside the cluster; fail the VM back with `hvlab replica failover VM --planned`',
  )
}
