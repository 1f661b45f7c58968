/**
 * `hvlab vm list`'s STORAGE column: what each running VM's owner knows of its disk (its
 * inventory: agent/cluster/vm-storage-health.ts), asked of every owner at once. A VM that
 * runs nowhere, or whose owner does not answer, shows `-` (`unknown` in --json).
 */
import type { MessageOf } from '../../shared/protocol/messages.js'
import { HOST_REQUEST_TIMEOUT_MS } from './cluster-client.js'
import type { ControlClient } from './control-client.js'
import { vmListNow } from './vm-queries.js'

export type VmStorageState = 'ok' | 'lost' | 'none' | 'unknown'
export type VmStorageView = Record<string, { state: VmStorageState; reason: string }>

type RoleList = Awaited<ReturnType<typeof vmListNow>>

/** What `hvlab vm list --json` prints: the role list and each VM's storage as its owner sees it. */
export type VmListReport = RoleList & { storage: VmStorageView }

export async function vmListReport(client: ControlClient): Promise<VmListReport> {
  const list = await vmListNow(client)
  return { ...list, storage: await vmStorageNow(client, list.roles) }
}

/** Each role's storage as its owner reports it; `unknown` when it runs nowhere or the owner did not answer. */
export async function vmStorageNow(client: ControlClient, roles: RoleList['roles']): Promise<VmStorageView> {
  const owners = [...new Set(roles.flatMap((r) => (r.owner === null ? [] : [r.owner])))]
  const inventories = new Map<string, MessageOf<'vm-inventory-reply'>['vms']>()
  await Promise.all(
    owners.map(async (owner) => {
      try {
        const r = await client.request(
          owner,
          { t: 'vm-inventory-request', from: 'operator' },
          'vm-inventory-reply',
          HOST_REQUEST_TIMEOUT_MS,
        )
        inventories.set(owner, r.vms)
      } catch {
        // the owner did not answer: its vms show unknown
      }
    }),
  )
  return storageView(roles, inventories)
}

/** Pure: the storage view from the roles and their owners' inventories. */
export function storageView(
  roles: RoleList['roles'],
  inventories: ReadonlyMap<string, MessageOf<'vm-inventory-reply'>['vms']>,
): VmStorageView {
  const view: VmStorageView = {}
  for (const r of roles) {
    const vm = r.owner === null ? undefined : inventories.get(r.owner)?.find((v) => v.role === r.name)
    view[r.name] = vm?.storage ? { state: vm.storage.state, reason: vm.storage.reason } : { state: 'unknown', reason: '' }
  }
  return view
}
