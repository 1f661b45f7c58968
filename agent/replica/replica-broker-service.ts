/**
 * The Replica Broker's service on a cluster host: answers where a failed-over VM's reverse
 * replica goes (`replica-broker-place-request`), from the operator (a planned failover,
 * `first`) or from the replica server running the VM (which asks again and again, so a
 * replica whose member is gone is placed again). Only the member the broker's role runs on
 * places (agent/cluster/replica-broker.ts); another names that member. The placement is
 * recorded in the VM's role (`replication.reversed_to`, through the coordinator like any
 * role change), which is also what lets that member take the VM's changes
 * (reverse-replica-server.ts).
 */
import { HvlabError } from '../../shared/errors.js'
import type { LabProcess } from '../../shared/lab-process.js'
import type { RoleCommandMessage } from '../../shared/protocol/cluster-messages.js'
import type { MessageOf } from '../../shared/protocol/messages.js'
import { brokerOf, checkBrokerAllows, isReplicationSource, placeReverseReplica } from '../cluster/replica-broker.js'
import { decodeRole } from '../cluster/role-record.js'
import type { VmRole } from '../cluster/vm-role.js'
import type { ReplicationSetting } from '../../shared/protocol/replica-messages.js'

export interface ReplicaBrokerDeps {
  /** The failover cluster this host is a member of. */
  readonly cluster: string
  /** The committed cluster database as this host has it. */
  database(): { readonly config: Readonly<Record<string, string>> }
  /** The cluster's members now (its current view). */
  members(): readonly string[]
  /** The failover cluster host `host` is a member of (a VM of another cluster replicates from whichever of its hosts runs it); null: none. */
  clusterOf(host: string): string | null
  /** Runs a role command where the roles run (operator-requests.ts). */
  roleCommand(command: RoleCommandMessage): Promise<unknown>
}

type PlaceRequest = MessageOf<'replica-broker-place-request'>
type PlaceReply = MessageOf<'replica-broker-place-reply'>

export function serveReplicaBroker(p: LabProcess, d: ReplicaBrokerDeps): void {
  const sites = Object.fromEntries(p.topology.hosts.map((h) => [h.name, h.site]))
  const place = (q: PlaceRequest): Promise<PlaceReply> => placeReverse(p.name, sites, d, q)
  p.serveOperator('replica-broker-place-request', place)
  p.onPeer((c) =>
    c.onRequest('replica-broker-place-request', async ({ message: q }) => {
      // A replica server asks for its own reverse replicas only.
      if (q.server !== c.remoteName)
        throw new HvlabError(
          'HVLAB_E_REPLICA_NOT_ALLOWED',
          `${c.remoteName} asked for ${q.server}'s reverse replica; a server asks for its own`,
        )
      return { message: await place(q) }
    }),
  )
}

export async function placeReverse(
  me: string,
  sites: Readonly<Record<string, string>>,
  d: ReplicaBrokerDeps,
  q: PlaceRequest,
): Promise<PlaceReply> {
  const config = d.database().config
  const broker = brokerOf(config)
  if (broker === null)
    throw new HvlabError(
      'HVLAB_E_REPLICA_NO_BROKER',
      `the cluster has no Replica Broker to take vm ${q.vm}'s changes back; enable it: hvlab replica server enable cluster --allow ${q.server}`,
    )
  if (broker.running_on !== me) return { t: 'replica-broker-place-reply', vm: q.vm, host: null, broker_owner: broker.running_on }
  checkBrokerAllows(broker.settings, q.server, d.clusterOf)
  const role = decodeRole(config, q.vm)
  if (role === null) throw new HvlabError('HVLAB_E_NOT_FOUND', `the cluster has no vm ${q.vm}`)
  const r = role.replication
  if (!q.first) checkNotRunningHere(role, q.server, d)
  if (r === undefined || !isReplicationSource(r, q.server, d.clusterOf))
    throw new HvlabError(
      'HVLAB_E_REPLICA_NOT_ALLOWED',
      `vm ${q.vm} does not replicate to ${q.server}; its changes come back only from its replica server`,
    )
  if (q.first) checkFirstPlacement(role, r)
  else if (r.reversed_to === undefined)
    throw new HvlabError(
      'HVLAB_E_STATE',
      `vm ${q.vm} does not replicate back to the cluster (\`hvlab replica failover ${q.vm} --planned\`, or \`replica enable ${q.vm} --to cluster\` after an unplanned one); nothing to place`,
    )
  const host = placeReverseReplica({ broker_node: me, members: d.members(), sites, vm: role, current: r.reversed_to })
  if (host === null)
    throw new HvlabError('HVLAB_E_STATE', `no member of the cluster up now can write vm ${q.vm}'s volume; its changes go back once one is`)
  if (host !== r.reversed_to) await d.roleCommand({ op: 'set', name: q.vm, changes: { replication: { ...r, reversed_to: host } } })
  return { t: 'replica-broker-place-reply', vm: q.vm, host, broker_owner: me }
}

/**
 * A replica server, or a host of another cluster, asks where its changes of a VM go, and the
 * VM's role here replicates from it no more: the VM failed over (or back) here unplanned and
 * runs here as this cluster's own, its replication ended. The asker's copy is the older one:
 * HVLAB_E_REPLICA_RUNS_ELSEWHERE tells it to stop it (reverse-replication.ts,
 * to-cluster-placements.ts).
 */
function checkNotRunningHere(role: VmRole, server: string, d: Pick<ReplicaBrokerDeps, 'cluster' | 'clusterOf'>): void {
  const from = d.clusterOf(server)
  const r = role.replication
  if (from === d.cluster || r?.reversed_to !== undefined) return // a replica this cluster holds of a VM running elsewhere
  if (r !== undefined && isReplicationSource(r, server, d.clusterOf)) return
  const [there, how] =
    from === null
      ? [server, `hvlab replica enable ${role.name} --to ${server}`]
      : [`cluster ${from}`, `hvlab --cluster ${d.cluster} replica enable ${role.name} --to cluster:${from}`]
  throw new HvlabError(
    'HVLAB_E_REPLICA_RUNS_ELSEWHERE',
    `vm ${role.name} runs in cluster ${d.cluster} as its own, replicating from ${there} no more (an unplanned failover): the copy on ${there} is older and stops; to protect the VM again, replicate it back: ${how}`,
  )
}

/** The operator's first placement (a planned failover, or `replica enable VM --to cluster`): the cluster has the VM stopped, not yet placed. */
function checkFirstPlacement(role: VmRole, r: ReplicationSetting): void {
  if (r.reversed_to !== undefined)
    throw new HvlabError('HVLAB_E_STATE', `vm ${role.name} replicates back to the cluster already (placed on ${r.reversed_to})`)
  if (role.state !== 'stopped')
    throw new HvlabError(
      'HVLAB_E_STATE',
      `vm ${role.name} is ${role.state}: its replica is placed in the cluster only once the cluster has it stopped`,
    )
}
