/**
 * When the RoleController may remove a role (`hvlab vm remove`, like Remove-ClusterGroup
 * after Remove-VM): only while it runs nowhere and nothing is about to start it — stopped
 * or failed, not being migrated, not while it runs on its replica server after a planned
 * failover (its disk takes the changes made there), not the Replica Broker while a VM
 * replicates to the cluster through it, and not while a new coordinator still syncs with the
 * hosts' inventories (a restored record may be stale). PURE.
 */
import { HvlabError } from '../../shared/errors.js'
import { REPLICA_BROKER_ROLE } from '../../shared/protocol/replica-limits.js'
import { brokerRemovalRefusal } from './replica-broker.js'
import { failedOverRefusal, failedOverTo } from './replica-failover-guard.js'
import type { VmRole } from './vm-role.js'

/** The refusal of removing `role`, or null when it may go; `roles`: every role (the broker goes only while none replicates through it). */
export function removalRefusal(
  role: VmRole,
  migrating_to: string | null,
  syncing: boolean,
  roles: readonly VmRole[] = [],
): HvlabError | null {
  const name = role.name
  if (syncing) {
    return new HvlabError(
      'HVLAB_E_NO_QUORUM',
      `cannot remove vm ${name} yet: the cluster's coordinator is still syncing with the hosts' inventories; retry in a moment`,
    )
  }
  if (migrating_to !== null) {
    return new HvlabError(
      'HVLAB_E_STATE',
      `cannot remove vm ${name}: it is being migrated from ${role.owner} to ${migrating_to}; cancel with \`hvlab vm migrate-cancel ${name}\`, then stop it first: \`hvlab vm stop ${name}\``,
    )
  }
  if (failedOverTo(role) !== null) return failedOverRefusal(role, 'remove') // its disk takes the changes made on the replica server
  if (name === REPLICA_BROKER_ROLE) {
    const inUse = brokerRemovalRefusal(roles)
    if (inUse !== null) return inUse
  }
  if (role.state === 'stopped' || role.state === 'failed') return null
  const where = role.owner === null ? '' : ` on ${role.owner}`
  if (role.state === 'stopping')
    return new HvlabError(
      'HVLAB_E_STATE',
      `cannot remove vm ${name}: it is stopping${where}; wait until \`hvlab vm list\` shows it stopped`,
    )
  return new HvlabError('HVLAB_E_STATE', `cannot remove vm ${name}: it is ${role.state}${where}; stop it first: \`hvlab vm stop ${name}\``)
}
