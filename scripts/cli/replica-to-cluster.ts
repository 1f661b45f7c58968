/**
 * `hvlab replica enable VM --to cluster`: after an unplanned failover the VM runs on its
 * replica server and replication is not reversed (seed 002: "the policy is broken. To get
 * back to the primary site, you will have to reconfigure replication"). This reconfigures
 * it, standalone host to cluster: the cluster's Replica Broker places the VM's replica on a
 * member that can write the VM's own volume and records it in the role (so the cluster does
 * not start the VM meanwhile), and the replica server sends the VM's changes there, as after a
 * planned failover, beginning with a compare resync against that volume: only the blocks
 * that differ travel. `replica failover VM --planned` then fails it back with nothing lost.
 */
import { HvlabError } from '../../shared/errors.js'
import type { VmRoleRecord } from '../../shared/protocol/cluster-messages.js'
import type { ReplicationSetting } from '../../shared/protocol/replica-messages.js'
import { HOST_REQUEST_TIMEOUT_MS, roleCommand } from './cluster-client.js'
import type { ControlClient } from './control-client.js'
import { out } from './options.js'
import { brokerFor, roleRecords } from './replica-broker-commands.js'
import { firstPlacement } from './replica-failover-command.js'
import { sideOf } from './replica-queries.js'
import { vmRole } from './vm-queries.js'
import { done, waitFor, waiting, type WaitOpts } from './wait-for.js'

export interface ToClusterOptions extends WaitOpts {
  frequency: ReplicationSetting['frequency_ms']
  compress: boolean
}

export async function replicateToCluster(client: ControlClient, vm: string, o: ToClusterOptions): Promise<void> {
  const role = await vmRole(client, vm)
  const setting = failedOverSetting(role)
  const replica = await sideOf(client, setting.to, vm, 'replicas')
  if (replica?.state !== 'failed-over' || !replica.vm_running)
    throw new HvlabError(
      'HVLAB_E_STATE',
      `vm ${vm} does not run on its replica server ${setting.to} after a failover; only a VM failed over there replicates to the cluster (\`hvlab replica failover ${vm}\`)`,
    )
  await brokerFor(await roleRecords(client), vm, setting.to, 'nothing was changed')
  const host = await firstPlacement(client, vm, setting.to, o.timeoutS)
  try {
    const reverse = { frequency_ms: o.frequency, compress: o.compress }
    await client.request(setting.to, { t: 'replica-reverse-request', vm, reverse }, 'ok', HOST_REQUEST_TIMEOUT_MS)
  } catch (e) {
    await roleCommand(client, { op: 'fail-back', name: vm, replication: setting }) // nothing replicates back: the placement goes
    throw e
  }
  const then = `\`hvlab replica failover ${vm} --planned\` fails it back`
  if (!o.wait) return out(`vm ${vm} replicates from ${setting.to} to the cluster (placed on ${host}); ${then}`)
  await initialCompare(client, setting.to, vm, o.timeoutS)
  out(
    `vm ${vm} replicates from ${setting.to} to the cluster every ${o.frequency / 1000} s, into its own volume on ${host} (placed by the Replica Broker); the initial replication sent only the blocks that differed; ${then}`,
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
