/**
 * `hvlab replica enable VM --to cluster`: after an unplanned failover the VM runs on its
 * replica server and replication is not reversed (seed 002: "the policy is broken. To get
 * back to the primary site, you will have to reconfigure replication"). This reconfigures
 * it, standalone host to cluster: the cluster's Replica Broker places the VM's replica on a
 * member that can write the VM's own volume and records it in the role (so the cluster does
 * not start the VM meanwhile), and the replica server sends the VM's changes there, as after a
 * planned failover, beginning with a compare resync against that volume: only the blocks
 * that differ travel. `replica failover VM --planned` then fails it back with nothing lost.
 *
 * A VM created on a standalone host (`hvlab vm create NAME --on HOST`, standalone-vms.ts)
 * replicates to the cluster the same way: the cluster makes it a role first, stopped, with a
 * blank disk, so every block it wrote travels once; its planned failover then moves it into
 * the cluster, and it replicates back to that host from there, as any cluster VM.
 */
import { HvlabError } from '../../shared/errors.js'
import type { VmRoleRecord } from '../../shared/protocol/cluster-messages.js'
import type { ReplicationSetting } from '../../shared/protocol/replica-messages.js'
import { labLayout } from '../../shared/lab-layout.js'
import type { VmStorageRequest } from '../../shared/protocol/cluster-messages.js'
import { HOST_REQUEST_TIMEOUT_MS, askAnyHost, createRole, roleCommand } from './cluster-client.js'
import { chosenTopology } from './cluster-choice.js'
import type { ControlClient } from './control-client.js'
import { out } from './options.js'
import { brokerFor, roleRecords } from './replica-broker-commands.js'
import { firstPlacement } from './replica-failover-steps.js'
import { sideOf } from './replica-queries.js'
import { ownOnStandalone } from './standalone-vms.js'
import { REMOVE_TIMEOUT_MS } from './vm-remove-command.js'
import { vmListNow } from './vm-queries.js'
import { done, waitFor, waiting, type WaitOpts } from './wait-for.js'

export interface ToClusterOptions extends WaitOpts {
  dir: string
  frequency: ReplicationSetting['frequency_ms']
  compress: boolean
}

export async function replicateToCluster(client: ControlClient, vm: string, o: ToClusterOptions): Promise<void> {
  const role = (await vmListNow(client)).roles.find((r) => r.name === vm)
  if (role === undefined) return createdHereToCluster(client, vm, o)
  const setting = failedOverSetting(role)
  const replica = await sideOf(client, setting.to, vm, 'replicas')
  if (replica?.state !== 'failed-over' || !replica.vm_running)
    throw new HvlabError(
      'HVLAB_E_STATE',
      `vm ${vm} does not run on its replica server ${setting.to} after a failover; only a VM failed over there replicates to the cluster (\`hvlab replica failover ${vm}\`)`,
    )
  await brokerFor(await roleRecords(client), vm, setting.to, 'nothing was changed')
  // Nothing replicates back if the server refuses: the placement goes, and the cluster may start the VM again.
  const undo = () => roleCommand(client, { op: 'fail-back', name: vm, replication: setting })
  await reverseFrom(client, vm, setting.to, undo, 'only the blocks that differed', o)
}

/**
 * A VM created on a standalone host replicates to the cluster: the cluster makes it a role,
 * stopped, with a blank disk of its disk's size on the cluster's storage (the default kind,
 * as `vm create` gives), recorded as running on that host with its replication reversed, so
 * the cluster does not start it; its Replica Broker places the replica, and the host sends
 * every block it wrote (the blank volume differs there), then each cycle.
 * `replica failover VM --planned` moves it into the cluster.
 */
async function createdHereToCluster(client: ControlClient, vm: string, o: ToClusterOptions): Promise<void> {
  const found = await ownOnStandalone(client, o.dir, vm)
  if (found === null)
    throw new HvlabError('HVLAB_E_NOT_FOUND', `no vm named ${vm}, in the cluster or created on a standalone host; see \`hvlab vm list\``)
  const { host, side } = found
  if (!side.vm_running)
    throw new HvlabError('HVLAB_E_STATE', `vm ${vm} does not run on ${host}; only a running VM replicates to the cluster`)
  await brokerFor(await roleRecords(client), vm, host, 'nothing was changed')
  const disks = side.disks ?? 1
  await createRole(client, { name: vm, memory_mib: side.memory_mib, storage: await clusterDisk(o.dir, side.disk_bytes / disks, disks) })
  const setting = { to: host, frequency_ms: o.frequency, recovery_points: 0, compress: o.compress }
  // Undone if nothing replicates: the placement goes (a role running on its replica server is not removed), then the role and its blank volume.
  const remove = async () => {
    await roleCommand(client, { op: 'fail-back', name: vm, replication: setting }).catch(() => undefined) // not placed yet: nothing to take back
    await askAnyHost(client, { t: 'vm-remove-request', name: vm, keep_disk: false, forwarded: false }, 'vm-remove-reply', REMOVE_TIMEOUT_MS)
  }
  try {
    await roleCommand(client, { op: 'set', name: vm, changes: { replication: setting } })
  } catch (e) {
    await remove()
    throw e
  }
  await reverseFrom(client, vm, host, remove, 'every block it had written (its volume was blank)', o)
}

/** The disks of a VM coming into the cluster: the kind `vm create` gives by default, `disks` of `size_bytes`; it must be the cluster's storage. */
async function clusterDisk(dir: string, size_bytes: number, disks: number): Promise<VmStorageRequest> {
  const { chooseVmStorage } = await import('../../shared/vm-storage-choice.js')
  const storage = chooseVmStorage({}, (await chosenTopology(labLayout(dir).topology)).arrays)
  if (storage.kind === 'local')
    throw new HvlabError(
      'HVLAB_E_STATE',
      "the cluster has no shared storage for the VM's replica (replicated storage needs one array in each of two sites); nothing was changed",
    )
  return { ...storage, size_bytes, ...(disks > 1 ? { disks } : {}) }
}

/**
 * The broker places the VM's replica (the role is stopped: it waits for that), and `server`
 * replicates the VM's changes there from now on, beginning with a compare resync against
 * the VM's volume (`initial_sent` says what that sends); `undo` when no placement is made or
 * the server refuses.
 */
async function reverseFrom(
  client: ControlClient,
  vm: string,
  server: string,
  undo: () => Promise<unknown>,
  initial_sent: string,
  o: ToClusterOptions,
): Promise<void> {
  let host: string
  try {
    host = await firstPlacement(client, vm, server, o.timeoutS)
    const reverse = { frequency_ms: o.frequency, compress: o.compress }
    await client.request(server, { t: 'replica-reverse-request', vm, reverse }, 'ok', HOST_REQUEST_TIMEOUT_MS)
  } catch (e) {
    await undo().catch(() => undefined) // best effort: the first error is the one to report
    throw e
  }
  const then = `\`hvlab replica failover ${vm} --planned\` then runs it in the cluster with nothing lost`
  if (!o.wait) return out(`vm ${vm} replicates from ${server} to the cluster (placed on ${host}); ${then}`)
  await initialCompare(client, server, vm, o.timeoutS)
  out(
    `vm ${vm} replicates from ${server} to the cluster every ${o.frequency / 1000} s, into its own volume on ${host} (placed by the Replica Broker); the initial replication sent ${initial_sent}; ${then}`,
  )
}

/** The role's replication, if the VM may replicate to the cluster: failed over to its server unplanned, stopped in the cluster. */
function failedOverSetting(role: VmRoleRecord): ReplicationSetting {
  const vm = role.name
  const setting = role.replication
  if (setting === undefined)
    throw new HvlabError(
      'HVLAB_E_STATE',
      `vm ${vm} is not replicated; the cluster takes a VM's replication from the replica server it failed over to (\`replica enable ${vm} --to SERVER\`, then \`replica failover ${vm}\`)`,
    )
  if (setting.reversed_to !== undefined)
    throw new HvlabError(
      'HVLAB_E_STATE',
      `vm ${vm} replicates from ${setting.to} to the cluster already (to ${setting.reversed_to}); \`hvlab replica failover ${vm} --planned\` fails it back`,
    )
  if (role.state !== 'stopped')
    throw new HvlabError(
      'HVLAB_E_STATE',
      `vm ${vm} is ${role.state}${role.owner === null ? '' : ` on ${role.owner}`} in the cluster; it replicates to the cluster only while the cluster has it stopped: \`hvlab vm stop ${vm}\` first (the copy on ${setting.to} is the one that goes on)`,
    )
  return setting
}

/** Waits until the replica server's first resync against the VM's volume is done. */
async function initialCompare(client: ControlClient, server: string, vm: string, timeout_s: number): Promise<void> {
  await waitFor({
    what: `vm ${vm}'s initial replication from ${server} to the cluster`,
    watch: `\`hvlab replica status ${vm}\``,
    timeout_ms: timeout_s * 1000,
    poll: async () => {
      const p = await sideOf(client, server, vm, 'primaries')
      if (p === null) return waiting(`${server} has not started replicating it yet (the broker's placement reaches it within seconds)`)
      if (p.resyncing || p.last_error !== null) return waiting(p.last_error ?? 'the blocks are being compared')
      return done(p)
    },
  })
}
