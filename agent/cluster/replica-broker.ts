/**
 * The cluster's Hyper-V Replica Broker (seed 002: "a HA role called a Hyper-V Replica Broker
 * on a cluster (once only). This is where you can configure replication, authentication,
 * etc"): a cluster role named REPLICA_BROKER_ROLE, owned, placed and failed over like a VM's
 * role by the role controller (it runs as a small guest without a disk), its settings kept
 * in its role record in the replicated cluster database. Pure: reading it from the database,
 * its allow list, and on which member a failed-over VM's reverse replica lands.
 */
import { HvlabError } from '../../shared/errors.js'
import { REPLICA_BROKER_ROLE } from '../../shared/protocol/replica-limits.js'
import type { ReplicaBrokerSettings, ReplicationSetting } from '../../shared/protocol/replica-messages.js'
import { decodeRole } from './role-record.js'
import type { VmRole } from './vm-role.js'

/** The broker's role as the committed database has it. */
export interface Broker {
  readonly settings: ReplicaBrokerSettings
  /** The member it runs on (it answers there only); null while it runs nowhere (starting elsewhere, pending, stopped). */
  readonly running_on: string | null
}

/** The cluster's broker; null when it has none (`hvlab replica server enable cluster` makes it). */
export function brokerOf(config: Readonly<Record<string, string>>): Broker | null {
  const role = decodeRole(config, REPLICA_BROKER_ROLE)
  if (role?.replica_broker === undefined) return null
  return { settings: role.replica_broker, running_on: role.state === 'running' ? role.owner : null }
}

/** Throws HVLAB_E_REPLICA_NOT_ALLOWED unless the broker takes replication from replica server `server`. */
export function checkBrokerAllows(
  settings: ReplicaBrokerSettings,
  server: string,
  clusterOf: (host: string) => string | null = () => null,
): void {
  const cluster = clusterOf(server)
  if (settings.allow_any || settings.allow.includes(server) || (cluster !== null && settings.allow.includes(cluster))) return
  throw new HvlabError(
    'HVLAB_E_REPLICA_NOT_ALLOWED',
    `the cluster's Replica Broker does not take replication from ${server} (it allows ${settings.allow.join(', ') || 'none'}); add it: hvlab replica server enable cluster --allow ${[...settings.allow, server].join(',')}`,
  )
}

/**
 * The refusal of removing the broker (`replica server disable cluster`, or a raw removal of
 * its role) while VMs replicate back to the cluster through it: they run on their replica
 * server, and their changes come back only while the broker allows it; null when none does.
 */
export function brokerRemovalRefusal(roles: readonly Pick<VmRole, 'name' | 'replication'>[]): HvlabError | null {
  const using = roles.filter((r) => r.replication?.reversed_to !== undefined).map((r) => r.name)
  if (using.length === 0) return null
  return new HvlabError(
    'HVLAB_E_STATE',
    `vm ${using.join(', ')} replicate${using.length === 1 ? 's' : ''} to the cluster through the Replica Broker; fail ${using.length === 1 ? 'it' : 'them'} over or back into the cluster first: hvlab replica failover ${using[0]} --planned`,
  )
}

/** What the broker places a reverse replica from. */
export interface ReversePlacementInput {
  /** The member the broker runs on. */
  readonly broker_node: string
  /** The cluster's members now (its current view): the nodes that are up. */
  readonly members: readonly string[]
  /** Each cluster host's site. */
  readonly sites: Readonly<Record<string, string>>
  readonly vm: Pick<VmRole, 'preferred_owners' | 'possible_owners' | 'storage' | 'last_owner'>
  /** The member holding it now (the role's `replication.reversed_to`); undefined: not placed yet. */
  readonly current: string | undefined
}

/**
 * The member a VM's reverse replica goes to: one that can write the VM's volume (a CSV
 * region from every node; a replicated disk from a host it is presented to, CLX making it
 * writable in that host's site), up, and allowed to own the VM. It stays where it is while
 * that member qualifies; else the broker's own node, then the VM's preferred owners in their
 * order, then the rest by name; for a replicated disk those in the site the VM last ran in
 * (where its copy is writable) before the others. Null: no member can (a VM with a local disk never can).
 */
export function placeReverseReplica(i: ReversePlacementInput): string | null {
  const storage = i.vm.storage
  if (storage == null || storage.kind === 'local') return null
  const writes = (n: string): boolean => storage.kind === 'csv' || storage.hosts.includes(n)
  const may = (n: string): boolean => i.vm.possible_owners == null || i.vm.possible_owners.length === 0 || i.vm.possible_owners.includes(n)
  const eligible = i.members.filter((n) => writes(n) && may(n))
  if (i.current !== undefined && eligible.includes(i.current)) return i.current
  const rank = (n: string): number =>
    n === i.broker_node ? -1 : i.vm.preferred_owners.indexOf(n) >= 0 ? i.vm.preferred_owners.indexOf(n) : 1000
  // A replicated disk is writable in one site at a time: CLX would switch it to another site; a CSV region is writable from every node.
  const home = storage.kind === 'csv' || i.vm.last_owner === null ? undefined : i.sites[i.vm.last_owner]
  const away = (n: string): number => (home === undefined || i.sites[n] === home ? 0 : 1)
  const ordered = [...eligible].sort((a, b) => away(a) - away(b) || rank(a) - rank(b) || (a < b ? -1 : a > b ? 1 : 0))
  return ordered[0] ?? null
}

/**
 * Does `server` send the replication `r` keeps? Its replica server itself, or, for a VM of
 * another cluster (`to_cluster`: `to` names the cluster it runs in), any member of that
 * cluster: whichever runs the VM now.
 */
export function isReplicationSource(r: ReplicationSetting, server: string, clusterOf: (host: string) => string | null): boolean {
  return r.to === server || (r.to_cluster === true && clusterOf(server) === r.to)
}
