/**
 * What the vm commands ask the cluster about a VM before acting on it: the role list, the
 * running role and its owner, and the owner's view of the VM (`vm inspect`). Tests call
 * vmListNow and vmInspectNow in-process for what `--json` prints.
 */
import { HvlabError } from '../../shared/errors.js'
import type { VmRoleRecord } from '../../shared/protocol/cluster-messages.js'
import type { MessageOf } from '../../shared/protocol/messages.js'
import { HOST_REQUEST_TIMEOUT_MS, askAnyHost } from './cluster-client.js'
import type { ControlClient } from './control-client.js'

/** `vm inspect` waits this long per MiB of guest memory on top of a request (the owner hashes it). */
const INSPECT_HASH_MS_PER_MIB = 50

/** What `hvlab vm list --json` prints (tests call it in-process). */
export async function vmListNow(client: ControlClient): Promise<Omit<MessageOf<'role-list-reply'>, 't'>> {
  const r = await askAnyHost(client, { t: 'role-list-request', forwarded: false }, 'role-list-reply')
  return { coordinator: r.coordinator, source: r.source, roles: r.roles }
}

/** What `hvlab vm inspect NAME --json` prints (tests call it in-process). */
export async function vmInspectNow(client: ControlClient, name: string): Promise<Omit<MessageOf<'vm-inspect-reply'>, 't'>> {
  const { owner, memory_mib } = await runningRole(client, name)
  return inspectOn(client, owner, name, memory_mib)
}

/** `vm inspect` of VM `name` on host `owner` (a cluster host, or a standalone host running it). */
export async function inspectOn(
  client: ControlClient,
  owner: string,
  name: string,
  memory_mib: number,
): Promise<Omit<MessageOf<'vm-inspect-reply'>, 't'>> {
  // The owner hashes the guest's memory to answer, in slices that let it serve its peers
  // between them: allow for a slow rate on a loaded machine (20 MiB/s) on top of a request.
  const timeout_ms = HOST_REQUEST_TIMEOUT_MS + memory_mib * INSPECT_HASH_MS_PER_MIB
  const { t: _t, ...rest } = await client.request(owner, { t: 'vm-inspect-request', vm: name }, 'vm-inspect-reply', timeout_ms)
  return rest
}

/** The host a VM role runs on now, from the coordinator (it must be running), or its replica server after a planned failover. */
export async function ownerOf(client: ControlClient, name: string): Promise<string> {
  return (await runningRole(client, name)).owner
}

/** The VM's role record, from the coordinator. */
export async function vmRole(client: ControlClient, name: string): Promise<VmRoleRecord> {
  return (await vmRoleNow(client, name)).role
}

/**
 * The VM's role record as a waiting command sees it: `current` false when no coordinator
 * answered and the record is a host's last committed copy (it may be behind).
 */
export async function vmRoleNow(client: ControlClient, name: string): Promise<{ role: VmRoleRecord; current: boolean }> {
  const r = await askAnyHost(client, { t: 'role-list-request', forwarded: false }, 'role-list-reply')
  const role = r.roles.find((x) => x.name === name)
  if (role === undefined) throw new HvlabError('HVLAB_E_NOT_FOUND', `no vm named ${name}; see \`hvlab vm list\``)
  return { role, current: r.source === 'coordinator' }
}

/** The VM's role, which must be running, with its owner. */
async function runningRole(client: ControlClient, name: string): Promise<{ owner: string; memory_mib: number }> {
  const v = await vmRole(client, name)
  const failedOverTo = v.replication?.reversed_to !== undefined ? v.replication.to : null
  if (failedOverTo !== null) return { owner: failedOverTo, memory_mib: v.memory_mib } // a planned failover: it runs on its replica server
  if (v.owner === null || v.state !== 'running') throw new HvlabError('HVLAB_E_STATE', `vm ${name} is ${v.state}; it must be running`)
  return { owner: v.owner, memory_mib: v.memory_mib }
}
