/**
 * `vm-remove-request` on a host: from the operator (any host) or forwarded by another host.
 * It runs where the roles run (operator-wait.ts): here on the coordinator (vm-removal.ts),
 * else forwarded to it once; a forwarded one is answered only by the coordinator.
 */
import type { LabProcess } from '../../shared/lab-process.js'
import type { MessageOf } from '../../shared/protocol/messages.js'
import type { CsvHost } from '../csv/csv-host.js'
import type { AskHost } from './host-ask.js'
import type { Membership } from './membership.js'
import { onCoordinator } from './operator-wait.js'
import type { RoleService } from './role-service.js'
import { removeVm } from './vm-removal.js'

/** A removal may take down a replicated disk on two arrays step by step. */
export const VM_REMOVE_REQUEST_TIMEOUT_MS = 60_000

export function serveVmRemove(p: LabProcess, m: Membership, roles: RoleService, csv: CsvHost, ask: AskHost): void {
  const wait = { name: p.name, clock: p.clock, view: () => m.view(), runsRoles: () => roles.isLeader() && roles.running }
  const handle = (q: MessageOf<'vm-remove-request'>, forwarded: boolean): Promise<MessageOf<'vm-remove-reply'>> =>
    onCoordinator(
      wait,
      () => removeVm({ p, roles, csv }, q.name, q.keep_disk),
      (coordinator) =>
        ask(
          coordinator,
          { t: 'vm-remove-request', name: q.name, keep_disk: q.keep_disk, forwarded: true },
          'vm-remove-reply',
          VM_REMOVE_REQUEST_TIMEOUT_MS,
        ),
      forwarded,
    )
  p.serveOperator('vm-remove-request', (q) => handle(q, false))
  p.onPeer((conn) => {
    if (p.isClusterPeer(conn)) conn.onRequest('vm-remove-request', async ({ message: q }) => ({ message: await handle(q, true) }))
  })
}
