/**
 * `hvlab replica failover VM --planned` of a VM replicated from one failover cluster to
 * another (`replica enable VM --to cluster:NAME`): the cluster running the VM shuts it
 * down and its last changes reach the replica; its broker then places the VM's replica there
 * (its own volumes, so only what changes comes back), the other cluster's member drops its
 * replica, and that cluster starts the VM from its volumes with nothing lost, replicating
 * back to the first. Run again, it fails back the same way. Each side's broker must take
 * replication from the other cluster, checked before anything stops.
 *
 * Unplanned (the VM's cluster is lost: `hvlab --cluster NAME replica failover VM`, addressed
 * to the cluster holding the replica): refused while the VM's own cluster answers and runs
 * it (unless --force). The role there stops taking changes, the member holding the replica
 * returns its volumes to the latest cycle applied or a recovery point and drops the replica,
 * and the cluster starts the VM from them. Replication ends there, as the seed says: it is
 * set up again from the cluster the VM runs in.
 */
import { HvlabError } from '../../shared/errors.js'
import { labLayout } from '../../shared/lab-layout.js'
import type { VmRoleRecord } from '../../shared/protocol/cluster-messages.js'
import { REPLICA_BROKER_ROLE } from '../../shared/protocol/replica-limits.js'
import type { ReplicationSetting } from '../../shared/protocol/replica-messages.js'
import { roleCommand } from './cluster-client.js'
import { chosenTopology, inCluster } from './cluster-choice.js'
import type { ControlClient } from './control-client.js'
import { out } from './options.js'
import {
  dropReverseReplica,
  firstPlacement,
  lastChangesSent,
  startedIn,
  startFromHeldReplica,
  unplannedRefusal,
  type PointChoice,
} from './replica-failover-steps.js'
import { noRole, roleIfReachable } from './replica-queries.js'
import { secondsText } from './units.js'
import { vmListNow } from './vm-queries.js'
import type { WaitOpts } from './wait-for.js'

/**
 * `role` is the VM's role in the cluster the command addresses, replicating to or from
 * another cluster (`setting.to_cluster`): the VM runs in the one whose role has no
 * `reversed_to`, and fails over to the other.
 */
export async function plannedBetweenClusters(
  client: ControlClient,
  dir: string,
  role: VmRoleRecord,
  setting: ReplicationSetting,
  o: WaitOpts,
): Promise<void> {
  const [from, to] = await direction(dir, setting)
  const vm = role.name
  const source = await inCluster(from, () => roleIn(client, vm))
  const target = await inCluster(to, () => roleIn(client, vm))
  await checkBrokerAllows(client, to, from)
  await checkBrokerAllows(client, from, to) // the changes come back to `from` once it runs in `to`
  if (source.state !== 'running' || source.owner === null)
    throw new HvlabError(
      'HVLAB_E_STATE',
      `a planned failover shuts down the running primary; vm ${vm} is ${source.state} in cluster ${from}; nothing was shut down`,
    )
  const primary = source.owner
  const stopped_ms = Date.now()
  const placed = await inCluster(from, async () => {
    await roleCommand(client, { op: 'stop', name: vm })
    await lastChangesSent(client, primary, vm, o)
    return firstPlacement(client, vm, to, o.timeoutS) // its volumes in `from` take the changes back, and `from` starts it no more
  })
  const owner = await inCluster(to, async () => {
    await dropReverseReplica(client, target.replication!.reversed_to!, vm)
    const { reversed_to: _placed, ...forward } = source.replication! // its settings, the other way
    await roleCommand(client, { op: 'fail-back', name: vm, replication: { ...forward, to: from, to_cluster: true } })
    await roleCommand(client, { op: 'start', name: vm })
    return startedIn(client, vm, to, o)
  })
  out(
    `vm ${vm} failed over to cluster ${to}: it runs on ${owner} from every change it made in cluster ${from} (planned: nothing lost; down ${secondsText(Date.now() - stopped_ms)} s); replication is reversed, its changes go back to cluster ${from} (placed on ${placed}). \`hvlab replica failover ${vm} --planned\` fails it back`,
  )
}

export interface UnplannedOptions extends PointChoice {
  force?: boolean
}

/**
 * The unplanned failover: `role` is the VM's role in the cluster the command addresses; the
 * VM runs in the one whose role has no `reversed_to` and starts from its replica in the other.
 */
export async function unplannedBetweenClusters(
  client: ControlClient,
  dir: string,
  role: VmRoleRecord,
  setting: ReplicationSetting,
  o: UnplannedOptions,
): Promise<void> {
  const [from, to] = await direction(dir, setting)
  const vm = role.name
  const member = (await inCluster(to, () => roleIn(client, vm))).replication?.reversed_to
  if (member === undefined)
    throw new HvlabError(
      'HVLAB_E_STATE',
      `cluster ${to} holds no replica of vm ${vm} yet (its Replica Broker has not placed it); nothing was changed`,
    )
  const source = o.force === true ? null : await inCluster(from, () => roleIfReachable(client, vm).catch(noRole))
  const why = source === null ? null : unplannedRefusal(source)
  if (why !== null) throw why
  const started = await inCluster(to, () => startFromHeldReplica(client, vm, member, to, o))
  out(
    `vm ${vm} failed over to cluster ${to} (unplanned): ${started}. Its replication has ended: protect it again with \`hvlab --cluster ${to} replica enable ${vm} --to cluster:${from}\` once cluster ${from} is back`,
  )
}

/** The cluster the VM runs in and the one holding its replica, from the setting of its role in the cluster the command addresses. */
async function direction(dir: string, setting: ReplicationSetting): Promise<[from: string, to: string]> {
  const here = (await chosenTopology(labLayout(dir).topology)).cluster_name
  return setting.reversed_to === undefined ? [here, setting.to] : [setting.to, here]
}

/** The VM's role in the cluster the commands address now; it must replicate to or from another cluster. */
async function roleIn(client: ControlClient, vm: string): Promise<VmRoleRecord> {
  const role = (await vmListNow(client)).roles.find((r) => r.name === vm)
  if (role?.replication?.to_cluster !== true)
    throw new HvlabError(
      'HVLAB_E_STATE',
      `vm ${vm} has no role replicating between clusters in every cluster it needs; nothing was shut down`,
    )
  return role
}

/** Cluster `cluster`'s broker takes replication from cluster `from`: else refused before anything stops, saying how. */
async function checkBrokerAllows(client: ControlClient, cluster: string, from: string): Promise<void> {
  const broker = (await inCluster(cluster, () => vmListNow(client))).roles.find((r) => r.name === REPLICA_BROKER_ROLE)?.replica_broker
  const allows = broker !== undefined && (broker.allow_any || broker.allow.includes(from))
  if (!allows)
    throw new HvlabError(
      broker === undefined ? 'HVLAB_E_REPLICA_NO_BROKER' : 'HVLAB_E_REPLICA_NOT_ALLOWED',
      `the VM's changes replicate from cluster ${from} to cluster ${cluster}, so its Replica Broker must take replication from ${from}: hvlab --cluster ${cluster} replica server enable cluster --allow ${from}; nothing was shut down`,
    )
}
