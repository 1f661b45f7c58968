/**
 * Puts VM roles into a host process: the host's VmAgent (runs VMs, answers the
 * coordinator, health checks, stops its VMs after the no-quorum grace), the RoleService
 * (runs the roles while this host is the coordinator with quorum), the role requests
 * between hosts, the operator requests (`role-command-request`, `role-list-request`,
 * forwarded to the coordinator by whichever host the CLI asked), and `vms` / `roles` in
 * GET /status. This file wires the parts:
 *   local-vm-ops.ts          starts and stops here, in order per VM, CLX first
 *   coordinator-reports.ts   a failed VM and a migration's outcome, told to the coordinator
 *   role-migration-host.ts   live migration with CLX switching a replicated disk over
 *   host-requests.ts         the coordinator's requests to a host (local or over the mesh)
 *   coordinator-commands.ts  a role command on the coordinator (a create gets its disk first)
 *   operator-requests.ts     operator requests, run on the coordinator (operator-wait.ts)
 *   vm-remove-requests.ts    `vm remove`: the role, then its disk (vm-removal.ts)
 *   role-peer-requests.ts    the requests this host answers for its peers
 *   replica-broker-service.ts the Replica Broker's placements, where its role runs
 */
import { HvlabError, describeError } from '../../shared/errors.js'
import type { LabProcess } from '../../shared/lab-process.js'
import type { RoleCommandMessage } from '../../shared/protocol/cluster-messages.js'
import type { ReplicationSetting } from '../../shared/protocol/replica-messages.js'
import { clusterOfHost } from '../../shared/topology.js'
import { meshArrayAdmin } from '../clx/array-admin.js'
import { ClxService } from '../clx/clx-service.js'
import { decodeRole } from './role-record.js'
import type { VmDiskTarget } from '../clx/disk-target.js'
import { csvDiskPort } from '../csv/csv-disk-port.js'
import type { CsvHost } from '../csv/csv-host.js'
import { meshBlockIoPort, type BlockIoPort } from '../vm/vm-disk.js'
import { newChurnMeasurements } from '../replica/churn-wiring.js'
import { allSinks, newReplicationHost } from '../replica/replication-wiring.js'
import type { ReplicationHost } from '../replica/replication-host.js'
import type { Membership } from './membership.js'
import { serveReplicaBroker } from '../replica/replica-broker-service.js'
import { startReverseReplicaServer } from '../replica/reverse-replica-server.js'
import { serveGuestHang } from '../vm/guest-hang-requests.js'
import type { ClusterService } from './cluster-service.js'
import { CoordinatorReports } from './coordinator-reports.js'
import { runRoleCommand } from './coordinator-commands.js'
import { DEFAULT_HEALTH_CHECK, scaledHealthCheck } from './health-check.js'
import { hostAsker, type AskHost } from './host-ask.js'
import { hostRequests } from './host-requests.js'
import { LocalVmOps } from './local-vm-ops.js'
import { OperatorRequests } from './operator-requests.js'
import { serveRolePeerRequests } from './role-peer-requests.js'
import { startRoleMigration } from './role-migration-host.js'
import { RoleService, type HostRequests } from './role-service.js'
import { VmAgent, noQuorumGraceMs, type VmAgentDeps } from './vm-agent.js'
import { serveVmRemove } from './vm-remove-requests.js'

export {
  CREATE_REQUEST_TIMEOUT_MS,
  MIGRATE_REQUEST_TIMEOUT_MS,
  OPERATOR_WAIT_MS,
  ROLE_REQUEST_TIMEOUT_MS,
  START_REQUEST_TIMEOUT_MS,
} from './role-request-timeouts.js'
export { perVmOrder } from './local-vm-ops.js'

/** How often the coordinator asks every host for its VM inventory (the simulation runs the same). */
export const INVENTORY_INTERVAL_MS = 3000

export interface RoleHost {
  agent: VmAgent
  service: RoleService
}

/** What the lab's environment adds to the host's VmAgent (agent/host-lab-env.ts): the disk write journal, unsafe test settings. */
export type RoleHostOptions = Pick<VmAgentDeps, 'disk_write_journal' | 'unsafe_ignore_quorum_loss'>

export function startRoleHost(p: LabProcess, cluster: ClusterService, csv: CsvHost, options: RoleHostOptions = {}): RoleHost {
  const log = p.log.child({ component: 'roles' })
  const m = cluster.membership
  const ask = hostAsker(p)
  const reports = new CoordinatorReports({ name: p.name, clock: p.clock, coordinator: () => m.view().coordinator, ask, log })
  const blockIoFor = hostBlockIo(p, csv)
  // Hyper-V Replica: the VMs' replicas this host holds, and the primary side of those it runs.
  const clusterOf = (host: string): string | null => clusterOfHost(p.topology, host)
  const replication = startReplicaSides(p, m, {
    clx: () => clx,
    agent: () => agent,
    command: (c) => operator.command(c, false),
    blockIoFor,
    clusterOf,
    log,
  })
  // `hvlab replica size`: the churn of a VM running here, measured from the same writes.
  const churn = newChurnMeasurements(p, () => agent)
  const sinks = allSinks(options.disk_write_journal, replication, churn)
  const agent = newVmAgent(p, cluster, blockIoFor, reports, { ...options, disk_write_journal: sinks })
  // Cluster Extension: one per host; makes a VM's remote-copy group writable in this site before it runs here.
  const clx = new ClxService({
    host: p.name,
    arrays: p.topology.arrays,
    admin: meshArrayAdmin(p.mesh),
    clock: p.clock,
    emit: (kind, details) => p.emitEvent(kind, details),
  })
  const c = m.settings()
  const roles_free_after_ms = c.clock_skew_ms + c.roles_stop_bound_ms
  const migration = startRoleMigration(p, { agent, clx, membership: m, reports, roles_free_after_ms })
  const local = new LocalVmOps({ agent, clx, site: p.site, log })
  const roles = newRoleService(p, cluster, hostRequests({ name: p.name, ask, agent, local, migration }), log)
  reports.attach(roles)
  const operator = newOperatorRequests(p, cluster, csv, roles, ask)
  serveVmRemove(p, m, roles, csv, ask)
  // The Replica Broker (a role like a VM's): where it runs, it places failed-over VMs' reverse replicas.
  serveReplicaBroker(p, {
    cluster: p.topology.cluster_name,
    database: () => m.database(),
    members: () => m.view().members,
    clusterOf,
    roleCommand: (c) => operator.command(c, false),
  })
  p.onPeer((conn) => {
    if (p.isClusterPeer(conn))
      serveRolePeerRequests(conn, { name: p.name, epoch: () => m.view().epoch, agent, local, migration, roles, operator })
  })
  p.serveOperator('role-command-request', (q) => operator.command(q.command, false))
  p.serveOperator('role-list-request', () => operator.list(false))
  p.serveOperator('vm-migrate-command-request', (q) => operator.migrate(q, false))
  p.serveOperator('vm-inventory-request', () => ({ t: 'vm-inventory-reply', from: p.name, vms: agent.inventory() }))
  serveGuestHang(p, agent)
  p.addStatus(() => ({
    vms: agent.inventory(),
    roles: { running_here: roles.running && roles.isLeader(), count: roles.list()?.length ?? null },
  }))
  agent.start()
  roles.start()
  replication.start()
  churn.start()
  return { agent, service: roles }
}

/** The host's VmAgent: runs its VMs on the lease, their disk I/O to an array or a CSV region. */
/**
 * Hyper-V Replica on this host: the receiving end of reverse replication (a VM failed over,
 * planned, to its replica server sends its changes back into its own disk here; another
 * cluster's VMs replicate here the same way), and the primary side of each replicated VM
 * running here, which ships its writes to its replica server (agent/replica/).
 */
function startReplicaSides(
  p: LabProcess,
  m: Membership,
  d: {
    clx(): ClxService
    agent(): VmAgent
    command(c: RoleCommandMessage): Promise<unknown>
    blockIoFor(target: VmDiskTarget): BlockIoPort
    clusterOf(host: string): string | null
    log: LabProcess['log']
  },
): ReplicationHost {
  const reverse = startReverseReplicaServer(p, {
    database: () => m.database(),
    clx: d.clx,
    blockIoFor: d.blockIoFor,
    epoch: () => m.view().epoch,
    clusterOf: d.clusterOf,
  })
  const stopOlderCopy = olderCopyStopper(d.command, (vm) => decodeRole(m.database().config, vm)?.replication, d.log)
  return newReplicationHost(
    p,
    () => m.database(),
    d.agent,
    (vm) => reverse.replicaStatus(vm),
    stopOlderCopy,
  )
}

/**
 * The VM's replica side runs it as its own now (an unplanned failover there: its replica
 * server refuses the replication, replication-shell.ts, or another cluster's broker says so,
 * to-cluster-placements.ts): the copy here is the older one, and the cluster stops it. To
 * another cluster its replication ends too (seed 002: the policy is broken; that cluster
 * replicates it back into this copy); to a replica server it stays, naming the server that
 * `replica enable VM --to cluster` takes it back from. One stop at a time per VM; the next
 * check asks again if this one fails (no quorum).
 */
function olderCopyStopper(
  command: (c: RoleCommandMessage) => Promise<unknown>,
  replicationOf: (vm: string) => ReplicationSetting | undefined,
  log: LabProcess['log'],
): (vm: string, where: string) => void {
  const stopping = new Set<string>()
  return (vm, where) => {
    if (stopping.has(vm)) return
    stopping.add(vm)
    log.warn({ vm, where }, 'the VM failed over and runs there: the older copy here stops')
    const ends = replicationOf(vm)?.to_cluster === true
    void command({ op: 'stop', name: vm })
      .then(() => (ends ? command({ op: 'set', name: vm, changes: { replication: null } }) : undefined))
      .catch((e: unknown) => log.warn({ vm, err: describeError(e) }, 'the older copy did not stop; the next placement check asks again'))
      .finally(() => stopping.delete(vm))
  }
}

function newVmAgent(
  p: LabProcess,
  cluster: ClusterService,
  blockIoFor: (target: VmDiskTarget) => BlockIoPort,
  reports: CoordinatorReports,
  options: RoleHostOptions,
): VmAgent {
  const m = cluster.membership
  const c = m.settings()
  const me = p.topology.hosts.find((h) => h.name === p.name)
  if (me === undefined) throw new HvlabError('HVLAB_E_TOPOLOGY', `${p.name} is not a host of the topology`)
  return new VmAgent({
    host: p.name,
    memory_mib: me.memory_mib,
    clock: p.clock,
    holdsLease: (now) => m.holdsLease(now),
    leaseUntil: () => m.leaseUntil(),
    check_interval_ms: c.tick_ms,
    check_phase: c.tick_phase,
    no_quorum_grace_ms: noQuorumGraceMs(c.roles_stop_bound_ms, c.tick_ms),
    health: scaledHealthCheck(DEFAULT_HEALTH_CHECK, p.topology.timeScale),
    emitEvent: (kind, details) => p.emitEvent(kind, details),
    announce: (location) => p.announceVm(location),
    blockIoFor,
    writerEpoch: () => m.view().epoch,
    arrayReachable: (array) => p.mesh.connection(array) !== undefined,
    reportFailure: (f) => reports.vmFailed(f),
    ...options,
  })
}

/** How this host reaches a VM's disk: an array over the mesh, or its region of a CSV through the host's CsvVolume. */
function hostBlockIo(p: LabProcess, csv: CsvHost): (target: VmDiskTarget) => BlockIoPort {
  const arrayPort = meshBlockIoPort(p.mesh)
  return (target) => (target.csv ? csvDiskPort(csv.volume(target.csv.name), target.csv.region) : arrayPort)
}

/** The RoleService (it reads the view from the membership); a role record it cannot write now is written again later. */
function newRoleService(p: LabProcess, cluster: ClusterService, requests: HostRequests, log: LabProcess['log']): RoleService {
  const m = cluster.membership
  const c = m.settings()
  const roles = new RoleService({
    name: p.name,
    clock: p.clock,
    hosts: p.topology.hosts.map((h) => ({ name: h.name, memory_mib: h.memory_mib, site: h.site })),
    membership: m,
    writeConfig: (key, value) => {
      try {
        cluster.command({ kind: 'set-config', key, value })
      } catch (e) {
        log.warn({ err: describeError(e), key }, 'role record not written; retried later')
      }
    },
    requests,
    emitEvent: (kind, details) => p.emitEvent(kind, details),
    log,
    tick_ms: c.tick_ms,
    tick_phase: c.tick_phase,
    inventory_interval_ms: INVENTORY_INTERVAL_MS,
    live_migration: true,
    time_scale: p.topology.timeScale,
  })
  return roles
}

function newOperatorRequests(p: LabProcess, cluster: ClusterService, csv: CsvHost, roles: RoleService, ask: AskHost): OperatorRequests {
  const m = cluster.membership
  return new OperatorRequests({
    wait: { name: p.name, clock: p.clock, view: () => m.view(), runsRoles: () => roles.isLeader() && roles.running },
    ask,
    roles,
    runCommand: (command) => runRoleCommand({ p, roles, csv }, command),
    database: () => m.database(),
  })
}
