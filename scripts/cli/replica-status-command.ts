/**
 * `hvlab replica status [VM] [--json]`: each replicated VM's primary side (the host running
 * it) and replica side (its replica server), and the extended replica's when the replica
 * is forwarded; with no cluster to ask, what the replica servers say.
 */
import type { Command } from 'commander'
import { HvlabError } from '../../shared/errors.js'
import { labLayout } from '../../shared/lab-layout.js'
import type { VmRoleRecord } from '../../shared/protocol/cluster-messages.js'
import type { PrimarySideStatus, ReplicaSideStatus } from '../../shared/protocol/replica-messages.js'
import { chosenTopology, inCluster } from './cluster-choice.js'
import { ControlClient } from './control-client.js'
import { dirOption, printResult } from './options.js'
import { extendedOf, ifClusterReachable, sideOf, standaloneReplies, type ExtendedView } from './replica-queries.js'
import { brokerView, formatBroker } from './replica-broker-commands.js'
import { standaloneStatusRows } from './replica-standalone.js'
import { vmListNow } from './vm-queries.js'

/** What `replica status --json` prints: each replicated VM's primary side and its replica side. */
export interface ReplicaStatusView {
  vm: string
  primary_host: string | null
  to: string
  /** Replica between failover clusters (`to` a cluster): the member of it holding the replica, as its broker placed it; absent otherwise. */
  replica_host?: string | null
  /** Replication's bandwidth cap in the VM's role, Mbit/s (null: none, or no cluster to ask). */
  max_mbit: number | null
  primary: PrimarySideStatus | null
  replica: ReplicaSideStatus | null
  /** Extended replication: the replica server forwarding to `to` (its side as a primary) and the third server's replica. */
  extended: ExtendedView | null
  /** Reverse replication (after a planned failover): the replica server sending the VM's changes back to the cluster, to the member `to` its Replica Broker placed them on. */
  reverse: ReverseView | null
}

export interface ReverseView {
  to: string
  primary: PrimarySideStatus | null
  replica: ReplicaSideStatus | null
}

export function registerStatus(replica: Command): void {
  replica
    .command('status')
    .description(
      'how replication stands: its bandwidth cap, health, RPO lag, bytes pending, cycles applied, recovery points, on both sides',
    )
    .argument('[vm]', 'one VM (default: every replicated VM)')
    .option(
      '--json',
      'machine-readable: [{vm,primary_host,to,replica_host (between clusters),max_mbit,primary:{health,lag_ms,pending_bytes,…}|null,replica:{applied_cycle,recovery_points:[{cycle,at_ms,kind}],…}|null,extended:{to,primary,replica}|null,reverse:{to,primary,replica}|null}]',
    )
    .addOption(dirOption())
    .action(async (vm: string | undefined, o: { json?: boolean; dir: string }) => {
      const client = ControlClient.forDir(o.dir)
      const views = await replicaStatusNow(client, o.dir, vm ?? null)
      if (o.json === true) return printResult(o.json, views, () => '')
      const list = await ifClusterReachable(client, () => vmListNow(client))
      const broker = list === null ? '' : `\n${formatBroker(brokerView(list.roles))}`
      printResult(o.json, views, () => `${formatStatus(views)}${broker}`)
    })
}

/** Every replicated VM (or one) as its primary host and its replica server report it. */
export async function replicaStatusNow(client: ControlClient, dir: string, vm: string | null): Promise<ReplicaStatusView[]> {
  const list = await ifClusterReachable(client, () => vmListNow(client))
  if (list === null) return replicaSidesOnly(client, dir, vm)
  const roles = list.roles.filter((r) => r.replication !== undefined && (vm === null || r.name === vm))
  const standalone = await standaloneStatusRows(client, dir, vm, new Set(list.roles.map((r) => r.name)))
  if (vm !== null && roles.length === 0 && standalone.length === 0)
    throw new HvlabError('HVLAB_E_NOT_FOUND', `vm ${vm} is not replicated; \`hvlab replica enable ${vm} --to SERVER\` starts it`)
  const here = (await chosenTopology(labLayout(dir).topology)).cluster_name
  const others = await otherClustersRoles(client, roles)
  const clustered = await Promise.all(
    roles.map(async (r) => {
      if (r.replication!.to_cluster === true) return betweenClusters(client, here, r, others.get(r.replication!.to) ?? null)
      const to = r.replication!.to
      const primary = r.state === 'running' && r.owner !== null ? await sideOf(client, r.owner, r.name, 'primaries') : null
      const replica = await sideOf(client, to, r.name, 'replicas')
      const back = r.replication!.reversed_to
      const extended = back === undefined ? await extendedOf(client, to, r.name) : null // failed over: the server sends back, it forwards nothing
      const max_mbit = r.replication!.max_mbit ?? null
      const reverse =
        back === undefined
          ? null
          : { to: back, primary: await sideOf(client, to, r.name, 'primaries'), replica: await sideOf(client, back, r.name, 'replicas') }
      return {
        vm: r.name,
        primary_host: r.state === 'running' ? r.owner : null,
        to,
        max_mbit,
        primary,
        replica,
        extended,
        reverse,
      } as ReplicaStatusView
    }),
  )
  return [...clustered, ...standalone]
}

/**
 * A VM replicated between two failover clusters, seen from cluster `here`: the VM runs in
 * the one whose role has no `reversed_to` (its owner the primary), and the other cluster's
 * role names the member holding its replica (`replica_host`). Each side as far as it answers.
 */
async function betweenClusters(
  client: ControlClient,
  here: string,
  role: VmRoleRecord,
  otherRoles: readonly VmRoleRecord[] | null,
): Promise<ReplicaStatusView> {
  const r = role.replication!
  const other = otherRoles?.find((x) => x.name === role.name) ?? null
  const [running, holding, to] = r.reversed_to === undefined ? [role, other, r.to] : [other, role, here]
  const primary_host = running?.state === 'running' ? running.owner : null
  const replica_host = holding?.replication?.reversed_to ?? null
  return {
    vm: role.name,
    primary_host,
    to,
    replica_host,
    max_mbit: running?.replication?.max_mbit ?? null,
    primary: primary_host === null ? null : await sideOf(client, primary_host, role.name, 'primaries'),
    replica: replica_host === null ? null : await sideOf(client, replica_host, role.name, 'replicas'),
    extended: null,
    reverse: null,
  }
}

/** The roles of each other cluster `roles` replicate to or from, one cluster after the other (inCluster is one choice at a time); null: that cluster cannot be reached (lost). */
async function otherClustersRoles(client: ControlClient, roles: readonly VmRoleRecord[]): Promise<Map<string, VmRoleRecord[] | null>> {
  const byCluster = new Map<string, VmRoleRecord[] | null>()
  for (const r of roles) {
    const other = r.replication?.to_cluster === true ? r.replication.to : null
    if (other === null || byCluster.has(other)) continue
    const list = await inCluster(other, () => ifClusterReachable(client, () => vmListNow(client)))
    byCluster.set(other, list?.roles ?? null)
  }
  return byCluster
}

/** The primary side of `vm` on the host running it; null when it does not run. */
/** With no cluster to ask (a disaster): what the replica servers say of their replicas; no primary side. */
async function replicaSidesOnly(client: ControlClient, dir: string, vm: string | null): Promise<ReplicaStatusView[]> {
  const views: ReplicaStatusView[] = []
  const standalone = await standaloneStatusRows(client, dir, vm, new Set()) // a standalone host's own VMs replicating to another: one row each
  for (const { host: server, reply } of await standaloneReplies(client, dir)) {
    for (const replica of reply.replicas)
      if ((vm === null || replica.vm === vm) && replica.state !== 'created-here' && !standalone.some((s) => s.vm === replica.vm))
        views.push({
          vm: replica.vm,
          primary_host: null,
          to: server,
          max_mbit: null,
          primary: null,
          replica,
          extended: null,
          reverse: null,
        })
  }
  views.push(...standalone)
  if (vm !== null && views.length === 0)
    throw new HvlabError('HVLAB_E_NOT_FOUND', `no replica server holds a replica of vm ${vm}, and the cluster cannot be reached`)
  return views
}

function formatStatus(views: readonly ReplicaStatusView[]): string {
  if (views.length === 0) return 'no vm is replicated; `hvlab replica enable VM --to SERVER` starts one'
  const rows = views.flatMap((v) => [
    statusRow(v.vm, v.primary_host, v.replica_host == null ? v.to : `${v.to} (${v.replica_host})`, v.max_mbit, v.primary, v.replica),
    ...extendedRow(v),
    ...reverseRow(v),
  ])
  const head = ['VM', 'PRIMARY', 'REPLICA', 'CAP MBIT/S', 'HEALTH', 'RPO LAG', 'PENDING B', 'APPLIED', 'POINTS', 'LAST ERROR']
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)))
  return [head, ...rows]
    .map((r) =>
      r
        .map((c, i) => c.padEnd(widths[i]!))
        .join('  ')
        .trimEnd(),
    )
    .join('\n')
}

type StatusRow = [
  vm: string,
  primary: string,
  replica: string,
  cap_mbit: string,
  health: string,
  lag: string,
  pending: string,
  applied: string,
  points: string,
  error: string,
]

/** One direction of replication as a row: `p` the sending side, `r` the receiving one. */
function statusRow(
  vm: string,
  from: string | null,
  to: string,
  max_mbit: number | null,
  p: PrimarySideStatus | null,
  r: ReplicaSideStatus | null,
): StatusRow {
  return [
    vm,
    from ?? '-',
    to,
    max_mbit === null ? '-' : String(max_mbit),
    healthWords(p, r),
    p === null ? '-' : `${(p.lag_ms / 1000).toFixed(1)} s`,
    p === null ? '-' : String(p.pending_bytes),
    r === null ? '-' : String(r.applied_cycle),
    r === null ? '-' : pointsWords(r.recovery_points),
    p?.last_error ?? '',
  ]
}

/** The points kept, and how many of them are application-consistent when any are. */
function pointsWords(points: ReplicaSideStatus['recovery_points']): string {
  const app = points.filter((p) => p.kind === 'application').length
  return app === 0 ? String(points.length) : `${points.length} (${app} app)`
}

function healthWords(p: PrimarySideStatus | null, r: ReplicaSideStatus | null): string {
  if (r?.state === 'failed-over') return r.vm_running ? 'failed over (runs there)' : 'failed over'
  if (r?.state === 'created-here') return r.vm_running ? 'created there (runs there)' : 'created there'
  if (p === null) return '-'
  if (p.waiting_for !== null) return `${p.health} (waiting: ${p.waiting_for})`
  return p.resyncing ? `${p.health} (resyncing)` : p.health
}

/** Reverse replication's row: the replica server running the VM, sending its changes back to the cluster host. */
function reverseRow(v: ReplicaStatusView): StatusRow[] {
  const r = v.reverse
  return r === null ? [] : [statusRow(`${v.vm} (reverse)`, v.to, r.to, null, r.primary, r.replica)]
}

/** Extended replication's row: the replica server forwarding to the third. */
function extendedRow(v: ReplicaStatusView): StatusRow[] {
  const e = v.extended
  return e === null ? [] : [statusRow(`${v.vm} (extended)`, v.to, e.to, null, e.primary, e.replica)]
}
