/**
 * The role requests this host answers for its peer hosts: the coordinator's start, stop,
 * migrate and inventory requests to a VM's host (a start or migration from an older
 * epoch than this host's view is stale), the hosts' reports to the coordinator, and
 * operator requests another host forwarded here. VMs are started, stopped and moved by
 * the cluster's hosts only (the role is proved in the handshake), and a request must come
 * from the host that sends it.
 */
import { HvlabError } from '../../shared/errors.js'
import type { Message } from '../../shared/protocol/messages.js'
import type { PeerConnection } from '../../shared/transport/peer-connection.js'
import type { MigrationHost } from '../migration/migration-host.js'
import type { LocalVmOps } from './local-vm-ops.js'
import type { OperatorRequests } from './operator-requests.js'
import type { RoleService } from './role-service.js'
import type { VmAgent, VmOpResult } from './vm-agent.js'

export interface RolePeerRequestsDeps {
  /** This host. */
  name: string
  /** The epoch of this host's current view. */
  epoch(): number
  agent: VmAgent
  local: LocalVmOps
  migration: Pick<MigrationHost, 'migrate'>
  roles: Pick<RoleService, 'running' | 'vmFailed' | 'vmMigrated'>
  operator: OperatorRequests
}

/** Attaches the role request handlers to a new connection of a fellow member (LabProcess.isClusterPeer). */
export function serveRolePeerRequests(conn: PeerConnection, deps: RolePeerRequestsDeps): void {
  if (conn.remoteRole !== 'host') return
  serveVmOps(conn, deps)
  serveReports(conn, deps)
  const { operator } = deps
  conn.onRequest('role-command-request', async ({ message: q }) => ({ message: await operator.command(q.command, true) }))
  conn.onRequest('role-list-request', async () => ({ message: await operator.list(true) }))
  conn.onRequest('vm-migrate-command-request', async ({ message: q }) => ({ message: await operator.migrate(q, true) }))
}

function fromPeer(conn: PeerConnection, from: string): void {
  if (from !== conn.remoteName) throw new HvlabError('HVLAB_E_AUTH', `${conn.remoteName} sent a request claiming to be from ${from}`)
}

function opReply(role: string, op: number, r: VmOpResult): Message {
  return { t: 'vm-op-reply', role, op, ok: r.ok, reason: r.reason.slice(0, 512) }
}

/** The refusal of a start or migration from an older epoch than this host's view. */
function staleReply(deps: RolePeerRequestsDeps, q: { role: string; op: number; epoch: number }, what: string): { message: Message } | null {
  if (q.epoch >= deps.epoch()) return null
  return {
    message: opReply(q.role, q.op, {
      ok: false,
      reason: `${deps.name} is at cluster epoch ${deps.epoch()}; a ${what} from epoch ${q.epoch} is stale`,
    }),
  }
}

/** The coordinator's requests to the host of a VM. */
function serveVmOps(conn: PeerConnection, deps: RolePeerRequestsDeps): void {
  conn.onRequest('vm-start-request', ({ message: q }) => {
    fromPeer(conn, q.from)
    const stale = staleReply(deps, q, 'start')
    if (stale !== null) return stale
    return deps.local.start(q, q.from).then((r) => ({
      message: {
        ...opReply(q.role, q.op, r),
        ...(r.storage_refused ? { storage_refused: true } : {}),
        ...(r.no_lease ? { no_lease: true } : {}),
      },
    }))
  })
  conn.onRequest('vm-stop-request', async ({ message: q }) => {
    fromPeer(conn, q.from)
    return { message: opReply(q.role, q.op, await deps.local.stop(q.role, q.op, q.reason)) }
  })
  conn.onRequest('vm-inventory-request', () => ({ message: { t: 'vm-inventory-reply', from: deps.name, vms: deps.agent.inventory() } }))
  conn.onRequest('vm-migrate-request', ({ message: q }) => {
    fromPeer(conn, q.from)
    return staleReply(deps, q, 'migration') ?? { message: opReply(q.role, q.op, deps.migration.migrate(q)) }
  })
}

/** A host's reports to this host as the coordinator. */
function serveReports(conn: PeerConnection, deps: RolePeerRequestsDeps): void {
  const { roles } = deps
  conn.onRequest('vm-failed-report', ({ message: q }) => {
    fromPeer(conn, q.from)
    roles.vmFailed(q.from, q.role, q.op, q.gone, q.reason)
    return { message: { t: 'ok' } }
  })
  conn.onRequest('vm-migrated-report', ({ message: q }) => {
    fromPeer(conn, q.from)
    if (!roles.running) throw new HvlabError('HVLAB_E_STATE', `${deps.name} does not run the vm roles now; report to the coordinator`)
    roles.vmMigrated(q.from, q.role, q.to, q.op, q.ok, q.reason)
    return { message: { t: 'ok' } }
  })
}
