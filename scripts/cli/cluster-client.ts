/**
 * How the CLI reaches the failover cluster (the one `hvlab --cluster NAME` chose:
 * cluster-choice.ts): a request to any of its up hosts (those holding the quorum lease
 * first), tried on the next host when one cannot answer. The cluster, vm, node and CSV
 * commands use it.
 */
import { HvlabError } from '../../shared/errors.js'
import type { RoleCommandMessage } from '../../shared/protocol/cluster-messages.js'
import type { Message, MessageOf, MessageType } from '../../shared/protocol/messages.js'
import type { LabStatus } from '../controller/lab-controller.js'
import { chosenClusterStatus, chosenHostsUp } from './cluster-choice.js'
import type { ControlClient } from './control-client.js'

/** A role request may wait for a view change on the host (it forwards to the coordinator). */
const ROLE_REQUEST_TIMEOUT_MS = 15_000
/** How long one host may take to answer a cluster request. */
export const HOST_REQUEST_TIMEOUT_MS = 3000

/**
 * Sends a request to an up host, trying the next one when a host cannot answer; refusals
 * (a wrong name, a paused target …) come back at once.
 */
export async function askAnyHost<T extends MessageType>(
  client: ControlClient,
  message: Message,
  expect: T,
  timeout_ms = ROLE_REQUEST_TIMEOUT_MS,
): Promise<MessageOf<T>> {
  const lab = await client.get<LabStatus>('/v1/status')
  // Hosts that hold quorum first: a host cut off from the majority can only answer from
  // its stale copy of the cluster database.
  const holdsQuorum = (name: string): boolean => chosenClusterStatus(lab)?.hosts[name]?.holds_lease === true
  const up = chosenHostsUp(lab).sort((a, b) => Number(holdsQuorum(b)) - Number(holdsQuorum(a)))
  if (up.length === 0)
    throw new HvlabError('HVLAB_E_STATE', 'no host is up; start the lab with `hvlab up` or restart a host with `hvlab restart NAME`')
  let last: unknown
  let lastHost = ''
  for (const host of up) {
    lastHost = host
    try {
      return await client.request(host, message, expect, timeout_ms)
    } catch (e) {
      last = e
      // Another host may answer: this one did not in time, its link closed, or it went down since the status was read.
      const code = e instanceof HvlabError ? e.code : 'HVLAB_E_INTERNAL'
      const next =
        code === 'HVLAB_E_TIMEOUT' || code === 'HVLAB_E_CLOSED' || code === 'HVLAB_E_LAB' || HvlabError.has(e, 'HVLAB_E_PROCESS_DOWN')
      if (!next) throw withoutHostPrefix(e, host)
    }
  }
  throw withoutHostPrefix(last, lastHost)
}

/** `vm create` may first provision the VM's replicated disk on both arrays. */
const CREATE_TIMEOUT_MS = 90_000

/** Creates a VM role (stopped) with its disk, through any up host. */
export const createRole = (client: ControlClient, spec: Extract<RoleCommandMessage, { op: 'create' }>['spec']): Promise<unknown> =>
  askAnyHost(client, { t: 'role-command-request', command: { op: 'create', spec }, forwarded: false }, 'ok', CREATE_TIMEOUT_MS)

/** Sends a role command (create, start, move, pause …) to the cluster through any up host. */
export const roleCommand = (client: ControlClient, command: RoleCommandMessage): Promise<unknown> =>
  askAnyHost(client, { t: 'role-command-request', command, forwarded: false }, 'ok')

/** The controller relays a host's refusal with that host as its origin ("host-a1: cannot …"); any host would have said the same, so the operator gets the sentence. */
function withoutHostPrefix(e: unknown, host: string): unknown {
  return e instanceof HvlabError && e.origin === host ? e.withoutOrigin() : e
}
