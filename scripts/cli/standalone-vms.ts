/**
 * VMs of a standalone Hyper-V host's own (`hvlab vm create NAME --on HOST`): a host outside
 * the failover cluster (a branch office's, a hosting provider's) runs VMs on its own storage,
 * not as cluster roles. Such a VM runs there alone; `hvlab replica enable NAME --to cluster`
 * replicates it to the cluster (replica-to-cluster.ts), whose planned failover then moves it
 * there. The host keeps it as it keeps its replicas (agent/replica/replica-server.ts,
 * state `created-here`), so `hvlab vm list|load|start|stop|remove|inspect` and `replica
 * status` find it there (roleOrStandalone); it may replicate to another standalone host too
 * (replica-standalone.ts).
 */
import { HvlabError } from '../../shared/errors.js'
import type { ReplicaSideStatus } from '../../shared/protocol/replica-messages.js'
import type { ControlClient } from './control-client.js'
import { out } from './options.js'
import { table } from './format.js'
import { ifClusterReachable, sideOf, standaloneHosts, standaloneReplies } from './replica-queries.js'
import { MIB } from './units.js'
import { vmListNow } from './vm-queries.js'

/** Creating a VM writes its blank disk on the host's storage first (up to 4 GiB). */
const STANDALONE_CREATE_TIMEOUT_MS = 60_000

export interface StandaloneVmSpec {
  readonly host: string
  readonly memory_mib: number
  /** Bytes of each disk. */
  readonly disk_bytes: number
  /** Disks (`--disks`); absent: 1. */
  readonly disks?: number
}

/** Creates VM `name` on standalone host `spec.host` and starts it; refused for a name the cluster or that host has already. */
export async function createOnStandalone(client: ControlClient, dir: string, name: string, spec: StandaloneVmSpec): Promise<void> {
  const hosts = await standaloneHosts(dir)
  if (!hosts.includes(spec.host))
    throw new HvlabError(
      'HVLAB_E_USAGE',
      `--on ${spec.host}: not a standalone host of this lab (${hosts.join(', ') || 'its topology has none'}); a cluster VM is created without --on`,
    )
  const roles = await ifClusterReachable(client, () => vmListNow(client))
  if (roles?.roles.some((r) => r.name === name) === true)
    throw new HvlabError('HVLAB_E_STATE', `the cluster has a vm named ${name}; name the new one otherwise`)
  const disks = spec.disks ?? 1
  const message = {
    t: 'standalone-vm-create-request' as const,
    vm: name,
    memory_mib: spec.memory_mib,
    disk_bytes: spec.disk_bytes,
    ...(disks > 1 ? { disks } : {}),
  }
  await client.request(spec.host, message, 'ok', STANDALONE_CREATE_TIMEOUT_MS)
  const what = disks > 1 ? `${disks} disks of ${spec.disk_bytes / MIB} MiB` : `a disk of ${spec.disk_bytes / MIB} MiB`
  out(
    `created vm ${name} on ${spec.host} (${spec.memory_mib} MiB, ${what} on ${spec.host}'s own storage) and started it; it is not a cluster role: \`hvlab replica enable ${name} --to cluster|SERVER\` replicates it to the cluster or a replica server`,
  )
}

/**
 * The standalone host where `vm` runs from its disk (created there, or failed over there),
 * the one running it first, with its status there; null: none has it. Asked for a VM that is
 * no cluster role's (roleOrStandalone), this is that VM's one host (two only after an
 * unplanned failover while its primary was cut off).
 */
export async function ownOnStandalone(
  client: ControlClient,
  dir: string,
  vm: string,
): Promise<{ host: string; side: ReplicaSideStatus } | null> {
  const found: { host: string; side: ReplicaSideStatus }[] = []
  for (const host of await standaloneHosts(dir)) {
    const side = await sideOf(client, host, vm, 'replicas')
    if (side !== null && side.state !== 'replicating') found.push({ host, side })
  }
  return found.find((f) => f.side.vm_running) ?? found[0] ?? null
}

/** Refuses a cluster VM named as a standalone host's own VM (the name then means two VMs, and `replica enable --to cluster` could not tell them apart). */
export async function refuseStandaloneName(client: ControlClient, dir: string, name: string): Promise<void> {
  const found = await ownOnStandalone(client, dir, name)
  if (found !== null) throw new HvlabError('HVLAB_E_STATE', `${found.host} has a vm named ${name} of its own; name the new one otherwise`)
}

/** A VM running from a standalone host's own disk, as `vm list` shows it: created there, or failed over there. */
export interface StandaloneVmView {
  vm: string
  host: string
  state: Exclude<ReplicaSideStatus['state'], 'replicating'>
  running: boolean
  memory_mib: number
}

/** Every VM the standalone hosts run from their own disks (a host that does not answer shows none). */
export async function standaloneVmsNow(client: ControlClient, dir: string): Promise<StandaloneVmView[]> {
  const views: StandaloneVmView[] = []
  for (const { host, reply } of await standaloneReplies(client, dir))
    for (const side of reply.replicas)
      if (side.state !== 'replicating')
        views.push({ vm: side.vm, host, state: side.state, running: side.vm_running, memory_mib: side.memory_mib })
  return views
}

/** PURE: `vm list`'s section for the standalone hosts' VMs; empty when there are none. */
export function formatStandaloneVms(views: readonly StandaloneVmView[]): string {
  if (views.length === 0) return ''
  const rows = [['NAME', 'HOST', 'STATE', 'MEMORY']]
  for (const v of views)
    rows.push([
      v.vm,
      v.host,
      `${v.running ? 'running' : 'stopped'} (${v.state === 'created-here' ? 'created there' : 'failed over there'})`,
      `${v.memory_mib} MiB`,
    ])
  return `\nvms on standalone hosts, from their own disks:\n${table(rows)}`
}

/**
 * What `vm start|stop|remove|load NAME` acts on: the cluster's role NAME (`onRole`), or, when
 * the cluster has none or cannot be reached (a disaster: the DR host's VMs matter then), the
 * VM a standalone host created as NAME (`onStandalone`, with that host).
 */
export async function roleOrStandalone<T>(
  client: ControlClient,
  dir: string,
  name: string,
  onRole: () => Promise<T>,
  onStandalone: (host: string, side: ReplicaSideStatus) => Promise<T>,
): Promise<T> {
  const inCluster = await ifClusterReachable(client, async () => (await vmListNow(client)).roles.some((r) => r.name === name))
  if (inCluster === true) return onRole()
  const found = await ownOnStandalone(client, dir, name)
  if (found !== null) return onStandalone(found.host, found.side)
  if (inCluster === null)
    throw new HvlabError('HVLAB_E_STATE', `no cluster host answers, and no standalone host has a vm named ${name} of its own`)
  return onRole() // the cluster's own answer: no such vm
}

/** Starts, stops or removes VM `vm` on standalone host `host`, and says so. */
export async function standaloneVmOp(client: ControlClient, host: string, vm: string, op: 'start' | 'stop' | 'remove'): Promise<void> {
  await client.request(host, { t: 'standalone-vm-request', vm, op }, 'ok', STANDALONE_CREATE_TIMEOUT_MS)
  if (op === 'start') out(`vm ${vm} is running on ${host} (a VM of its own, not a cluster role)`)
  else if (op === 'stop') out(`vm ${vm} is stopped on ${host}; it stays off, a restart of ${host} too, until \`hvlab vm start ${vm}\``)
  else out(`removed vm ${vm} from ${host}, and its disk on ${host}'s storage`)
}
