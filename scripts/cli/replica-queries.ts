/**
 * What the replica commands ask of the lab (scripts/cli/replica-*.ts): the VM's role when
 * the cluster can be reached, each side's replication status, the replica servers of the
 * topology, and where a replica is forwarded (extended replication).
 */
import { HvlabError, isTransientError } from '../../shared/errors.js'
import type { VmRoleRecord } from '../../shared/protocol/cluster-messages.js'
import type { MessageOf } from '../../shared/protocol/messages.js'
import type { PrimarySideStatus, ReplicaSideStatus } from '../../shared/protocol/replica-messages.js'
import { labLayout } from '../../shared/lab-layout.js'
import type { LabStatus } from '../controller/lab-controller.js'
import { chosenHostsUp } from './cluster-choice.js'
import { HOST_REQUEST_TIMEOUT_MS } from './cluster-client.js'
import type { ControlClient } from './control-client.js'
import { vmListNow, vmRole } from './vm-queries.js'

/** Extended replication as `replica status` shows it: the replica server forwarding to `to` (its side as a primary) and the third server's replica. */
export interface ExtendedView {
  to: string
  primary: PrimarySideStatus
  replica: ReplicaSideStatus | null
}
/** A process that did not answer because it is down, cut off or busy: not a refusal. */
export const unreachable = (e: unknown): boolean => isTransientError(e) || HvlabError.has(e, 'HVLAB_E_PROCESS_DOWN')

/** What `ask` of the cluster answers, or null when the cluster cannot be reached (its hosts are down or cut off: a disaster). */
export async function ifClusterReachable<T>(client: ControlClient, ask: () => Promise<T>): Promise<T | null> {
  if (!(await anyHostUp(client))) return null // every cluster host is down
  try {
    return await ask()
  } catch (e) {
    if (unreachable(e) || !(await anyHostUp(client))) return null // the hosts went down meanwhile
    throw e
  }
}

async function anyHostUp(client: ControlClient): Promise<boolean> {
  const lab = await client.get<LabStatus>('/v1/status')
  return chosenHostsUp(lab).length > 0
}

/** The VM's role, or null when the cluster cannot be reached (its site is lost: an unplanned failover is why). */
export const roleIfReachable = (client: ControlClient, vm: string): Promise<VmRoleRecord | null> =>
  ifClusterReachable(client, () => vmRole(client, vm))

/** For a `.catch`: a VM the cluster does not know (a standalone host's own VM) has no role, as when the cluster cannot be reached. */
export function noRole(e: unknown): null {
  if (HvlabError.has(e, 'HVLAB_E_NOT_FOUND')) return null
  throw e
}

/** The standalone hosts of the lab's topology (replica servers once enabled). */
export async function standaloneHosts(dir: string): Promise<string[]> {
  const { loadTopology } = await import('../../shared/topology.js') // not when hvlab starts: it brings zod
  return loadTopology(labLayout(dir).topology).standalone_hosts.map((h) => h.name)
}

/** Each standalone host's replica status (replicas, primaries, settings); a host down or cut off is left out. */
export async function standaloneReplies(
  client: ControlClient,
  dir: string,
): Promise<{ host: string; reply: MessageOf<'replica-status-reply'> }[]> {
  const replies: { host: string; reply: MessageOf<'replica-status-reply'> }[] = []
  for (const host of await standaloneHosts(dir)) {
    const reply = await client
      .request(host, { t: 'replica-status-request', vm: null }, 'replica-status-reply', HOST_REQUEST_TIMEOUT_MS)
      .catch((e: unknown) => {
        if (unreachable(e)) return null // down too: it has nothing to show
        throw e
      })
    if (reply !== null) replies.push({ host, reply })
  }
  return replies
}

/**
 * Before a VM moves off replica server `server` (nothing stopped yet): once it runs on one
 * of `sources` (`where` says where, for the refusal) it replicates back to `server`, which
 * must take replication from every one of them. Throws HVLAB_E_STATE naming those it does not.
 */
export async function checkTakesReplicationFrom(
  client: ControlClient,
  server: string,
  sources: readonly string[],
  vm: string,
  where: string,
): Promise<void> {
  const s = await client.request(server, { t: 'replica-status-request', vm: null }, 'replica-status-reply', HOST_REQUEST_TIMEOUT_MS)
  const settings = s.replica_server
  const refused = sources.filter((m) => settings?.enabled !== true || (!settings.allow_any && !settings.allow.includes(m)))
  if (refused.length === 0) return
  throw new HvlabError(
    'HVLAB_E_STATE',
    `once vm ${vm} runs ${where} it replicates back to ${server}, which must take replication from ${sources.join(', ')}; it does not from ${refused.join(', ')}: hvlab replica server enable ${server} --allow ${sources.join(',')} first (nothing was stopped)`,
  )
}

/** With no cluster to ask (or a VM no cluster role's): the replica server holding the VM's replica. */
export async function serverHolding(client: ControlClient, dir: string, vm: string): Promise<string> {
  for (const name of await standaloneHosts(dir)) if ((await sideOf(client, name, vm, 'replicas'))?.state === 'replicating') return name
  throw new HvlabError('HVLAB_E_NOT_FOUND', `no replica server holds a replica of vm ${vm}`)
}

export async function primaryStatus(client: ControlClient, vm: string): Promise<PrimarySideStatus[] | null> {
  const role = (await vmListNow(client)).roles.find((r) => r.name === vm)
  if (role === undefined) throw new HvlabError('HVLAB_E_NOT_FOUND', `no vm named ${vm}; see \`hvlab vm list\``)
  if (role.state !== 'running' || role.owner === null) return null
  const p = await sideOf(client, role.owner, vm, 'primaries')
  return p === null ? [] : [p]
}

/** Where replica server `server` forwards `vm`'s replica (extended replication), and how; null: it does not. */
export async function extendedOf(client: ControlClient, server: string, vm: string): Promise<ExtendedView | null> {
  const forwarding = await sideOf(client, server, vm, 'primaries')
  if (forwarding === null) return null
  return { to: forwarding.to, primary: forwarding, replica: await sideOf(client, forwarding.to, vm, 'replicas') }
}

/** One side's status of `vm` from process `name`; null when it has none or does not answer. */
export async function sideOf<K extends 'primaries' | 'replicas'>(
  client: ControlClient,
  name: string,
  vm: string,
  side: K,
): Promise<MessageOf<'replica-status-reply'>[K][number] | null> {
  try {
    const r = await client.request(name, { t: 'replica-status-request', vm: null }, 'replica-status-reply', HOST_REQUEST_TIMEOUT_MS)
    return (r[side] as MessageOf<'replica-status-reply'>[K]).find((x) => x.vm === vm) ?? null
  } catch (e) {
    if (unreachable(e) || HvlabError.has(e, 'HVLAB_E_NOT_FOUND')) return null
    throw e
  }
}
