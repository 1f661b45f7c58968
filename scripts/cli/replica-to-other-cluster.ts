/**
 * `hvlab replica enable VM --to cluster:NAME`: a VM of this failover cluster replicates to
 * another cluster of the lab, each side with its Replica Broker (seed 002). NAME's broker
 * must take replication from this cluster (`hvlab --cluster NAME replica server enable
 * cluster --allow THIS [--storage csv:V]`). NAME gets a role of the VM, stopped, with blank
 * disks of the VM's size where its broker keeps replicas, recorded as running in this
 * cluster (`replication` to this cluster, `to_cluster`), so NAME does not start it; NAME's
 * broker places the replica on a member that can write those disks. Then this cluster's role
 * gets `replication` to NAME: whichever host runs the VM asks NAME's broker where the replica
 * is (agent/replica/to-cluster-placements.ts) and sends every block that differs (all it
 * wrote, the disks there being blank), then each cycle. Undone, nothing left, if that does
 * not come about. After an unplanned failover from NAME, the VM's older copy there (stopped,
 * replicating nowhere) becomes the replica instead: only what differs travels back.
 */
import { HvlabError } from '../../shared/errors.js'
import { labLayout } from '../../shared/lab-layout.js'
import type { VmRoleRecord, VmStorageRequest } from '../../shared/protocol/cluster-messages.js'
import { REPLICA_BROKER_ROLE } from '../../shared/protocol/replica-limits.js'
import type { ReplicationSetting } from '../../shared/protocol/replica-messages.js'
import { askAnyHost, createRole, roleCommand } from './cluster-client.js'
import { chosenTopology, inCluster } from './cluster-choice.js'
import type { ControlClient } from './control-client.js'
import { out } from './options.js'
import { firstPlacement } from './replica-failover-steps.js'
import { sideOf } from './replica-queries.js'
import { REMOVE_TIMEOUT_MS } from './vm-remove-command.js'
import { vmListNow, vmRole } from './vm-queries.js'
import { done, waitFor, waiting, type WaitOpts } from './wait-for.js'

export interface ToOtherClusterOptions extends WaitOpts {
  dir: string
  /** The setting this cluster's role gets, its `to` the other cluster. */
  setting: ReplicationSetting
}

export async function replicateToOtherCluster(client: ControlClient, vm: string, o: ToOtherClusterOptions): Promise<void> {
  const there = o.setting.to
  const topology = await chosenTopology(labLayout(o.dir).topology)
  const here = topology.cluster_name
  const { clusterNamed } = await import('../../shared/topology.js') // not when hvlab starts: it brings zod
  const target = clusterNamed(topology, there) // an unknown cluster: HVLAB_E_NOT_FOUND with the names there are
  if (there === here)
    throw new HvlabError('HVLAB_E_USAGE', `vm ${vm} runs in cluster ${here}; --to cluster:NAME names another cluster of the lab`)
  const role = await vmRole(client, vm)
  const storage = await replicaStorage(client, role, here, there, target.arrays)
  if (storage !== OLDER_COPY) await inCluster(there, () => createRole(client, { name: vm, memory_mib: role.memory_mib, storage }))
  const back: ReplicationSetting = {
    to: here,
    to_cluster: true,
    frequency_ms: o.setting.frequency_ms,
    recovery_points: 0,
    compress: o.setting.compress,
  }
  const undo = async (): Promise<void> => {
    await roleCommand(client, { op: 'set', name: vm, changes: { replication: null } }).catch(() => undefined)
    await inCluster(there, async () => {
      if (storage === OLDER_COPY)
        // it stays, replicating nowhere as it was: placed, by the fail-back; not placed yet, by dropping the setting
        return roleCommand(client, { op: 'fail-back', name: vm, replication: null }).catch(() =>
          roleCommand(client, { op: 'set', name: vm, changes: { replication: null } }),
        )
      await roleCommand(client, { op: 'fail-back', name: vm, replication: back }).catch(() => undefined) // not placed yet: nothing to take back
      await askAnyHost(
        client,
        { t: 'vm-remove-request', name: vm, keep_disk: false, forwarded: false },
        'vm-remove-reply',
        REMOVE_TIMEOUT_MS,
      )
    })
  }
  let member: string
  try {
    member = await inCluster(there, async () => {
      await roleCommand(client, { op: 'set', name: vm, changes: { replication: back } })
      return firstPlacement(client, vm, here, o.timeoutS)
    })
    await roleCommand(client, { op: 'set', name: vm, changes: { replication: o.setting } })
  } catch (e) {
    await undo().catch(() => undefined) // best effort: the first error is the one to report
    throw e
  }
  const where = `into its own volume(s) on ${member} (placed by ${there}'s Replica Broker)`
  if (!o.wait || role.owner === null || role.state !== 'running')
    return out(`vm ${vm} is set to replicate from cluster ${here} to cluster ${there}, ${where}; it sends every block it wrote first`)
  const p = await initialToCluster(client, role.owner, vm, there, o.timeoutS)
  out(
    `vm ${vm} replicates from cluster ${here} (${role.owner}) to cluster ${there} every ${o.setting.frequency_ms / 1000} s, ${where}; the initial replication is done (health ${p.health})`,
  )
}

/**
 * The disks of `role`'s replica in cluster `there`: as many and as large as its own, where
 * that cluster's broker keeps replicas (`--storage csv:NAME`) or of the kind `vm create`
 * gives there. Refused, nothing changed, without a broker there that takes replication from
 * `here`, without shared storage there, or when `there` has a VM of that name.
 */
async function replicaStorage(
  client: ControlClient,
  role: VmRoleRecord,
  here: string,
  there: string,
  arrays: readonly { readonly site: string }[],
): Promise<VmStorageRequest | typeof OLDER_COPY> {
  const vm = role.name
  const { vmDiskCount } = await import('../../agent/clx/disk-target.js')
  const { checkBrokerAllows } = await import('../../agent/cluster/replica-broker.js')
  const { chooseVmStorage } = await import('../../shared/vm-storage-choice.js')
  const spec = role.storage
  if (spec == null || spec.kind === 'local')
    throw new HvlabError(
      'HVLAB_E_STATE',
      `vm ${vm} has no disk on shared storage to replicate (its storage is local to one host); nothing was changed`,
    )
  const roles = (await inCluster(there, () => vmListNow(client))).roles
  const broker = roles.find((r) => r.name === REPLICA_BROKER_ROLE)?.replica_broker
  if (broker === undefined)
    throw new HvlabError(
      'HVLAB_E_REPLICA_NO_BROKER',
      `cluster ${there} is no replica server (no Replica Broker): hvlab --cluster ${there} replica server enable cluster --allow ${here} first; nothing was changed`,
    )
  checkBrokerAllows(broker, here)
  const disks = vmDiskCount(spec)
  const older = roles.find((r) => r.name === vm)
  if (older !== undefined) return olderCopy(older, spec, there)
  const sized = { size_bytes: spec.size_bytes, ...(disks > 1 ? { disks } : {}) }
  if (broker.storage !== undefined) return { kind: 'csv', csv: broker.storage.slice('csv:'.length), ...sized }
  const kind = chooseVmStorage({}, arrays)
  if (kind.kind === 'local')
    throw new HvlabError(
      'HVLAB_E_STATE',
      `cluster ${there} has no default shared storage for the replica; give its broker a CSV: hvlab --cluster ${there} replica server enable cluster --allow ${here} --storage csv:NAME; nothing was changed`,
    )
  return { ...kind, ...sized }
}

/** `replicaStorage`'s answer when the other cluster has the VM's older copy: its role and volumes become the replica. */
const OLDER_COPY = 'older-copy'

/**
 * Cluster `there` has a role named like the VM: the VM's older copy, left there by an
 * unplanned failover from there (stopped, replicating nowhere, disks of the same number and
 * size), becomes its replica, and only the blocks that differ travel (seed 002: reverse
 * replication after an unplanned failover). Any other VM of that name is refused.
 */
async function olderCopy(
  older: VmRoleRecord,
  spec: Exclude<NonNullable<VmRoleRecord['storage']>, { kind: 'local' }>,
  there: string,
): Promise<typeof OLDER_COPY> {
  const { vmDiskCount } = await import('../../agent/clx/disk-target.js')
  const same =
    older.storage != null &&
    older.storage.kind !== 'local' &&
    older.storage.size_bytes === spec.size_bytes &&
    vmDiskCount(older.storage) === vmDiskCount(spec)
  if (!same || older.replication !== undefined || older.state !== 'stopped')
    throw new HvlabError(
      'HVLAB_E_STATE',
      `cluster ${there} has a vm named ${older.name} already (${older.state}${older.replication === undefined ? '' : ', replicated'}); only its older copy, stopped, replicating nowhere and with disks of the same number and size, becomes its replica; nothing was changed`,
    )
  return OLDER_COPY
}

/** Waits until the host running the VM has sent its initial replication to cluster `there` (to the member its broker placed the replica on). */
function initialToCluster(client: ControlClient, owner: string, vm: string, there: string, timeout_s: number) {
  return waitFor({
    what: `vm ${vm}'s initial replication to cluster ${there}`,
    watch: `\`hvlab replica status ${vm}\``,
    timeout_ms: timeout_s * 1000,
    poll: async () => {
      const p = await sideOf(client, owner, vm, 'primaries')
      if (p === null || p.to !== there) return waiting(`${owner} has not begun replicating it to cluster ${there} yet`)
      if (p.resyncing || p.last_error !== null || p.cycles_applied === 0)
        return waiting(p.last_error ?? 'the blocks are being compared (the broker placement reaches the host within seconds)')
      return done(p)
    },
  })
}
