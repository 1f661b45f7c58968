/**
 * The coordinator's requests to a host (start, stop, migrate a VM; list the VMs it runs)
 * as the RoleService makes them: a request to this host itself is a local call, kept
 * asynchronous and in order like a remote one; any other goes over the mesh.
 */
import type { InventoryVmRecord } from '../../shared/protocol/cluster-messages.js'
import type { MigrationHost } from '../migration/migration-host.js'
import type { AskHost } from './host-ask.js'
import type { LocalVmOps } from './local-vm-ops.js'
import { MIGRATE_REQUEST_TIMEOUT_MS, START_REQUEST_TIMEOUT_MS } from './role-request-timeouts.js'
import type { HostRequests } from './role-service.js'
import type { VmAgent } from './vm-agent.js'

export interface HostRequestsDeps {
  /** This host. */
  name: string
  ask: AskHost
  agent: VmAgent
  local: LocalVmOps
  migration: Pick<MigrationHost, 'migrate'>
}

/** Keeps requests to ourselves asynchronous and in order, like remote ones. */
async function local(): Promise<void> {
  await Promise.resolve()
}

export function hostRequests(deps: HostRequestsDeps): HostRequests {
  const { name, ask } = deps
  return {
    async start(node, r) {
      if (node === name) return local().then(() => deps.local.start(r, name))
      const reply = await ask(node, { t: 'vm-start-request', from: name, ...r }, 'vm-op-reply', START_REQUEST_TIMEOUT_MS)
      return { ok: reply.ok, reason: reply.reason, storage_refused: reply.storage_refused === true, no_lease: reply.no_lease === true }
    },
    async stop(node, r) {
      if (node === name) return local().then(() => deps.local.stop(r.role, r.op, r.reason))
      const reply = await ask(node, { t: 'vm-stop-request', from: name, ...r }, 'vm-op-reply')
      return { ok: reply.ok, reason: reply.reason }
    },
    async migrate(node, r) {
      if (node === name) return local().then(() => deps.migration.migrate(r))
      const reply = await ask(node, { t: 'vm-migrate-request', from: name, ...r }, 'vm-op-reply', MIGRATE_REQUEST_TIMEOUT_MS)
      return { ok: reply.ok, reason: reply.reason }
    },
    async inventory(node): Promise<InventoryVmRecord[]> {
      if (node === name) return local().then(() => deps.agent.inventory())
      return (await ask(node, { t: 'vm-inventory-request', from: name }, 'vm-inventory-reply')).vms
    },
  }
}
