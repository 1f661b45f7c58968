/**
 * While a VM runs on its replica server after a planned failover (its role's replication
 * has `reversed_to`), the cluster must not start it too: two copies would run, and the
 * cluster's would write the disk the replica server replicates back into. The start
 * itself is refused (RoleController.start); this says which changes of the role are
 * refused, so that none clears the setting first (`replica disable`, `replica enable`
 * again, a raw `set`): only the fail-back (`fail-back`) takes `reversed_to` away. PURE.
 */
import { isDeepStrictEqual } from 'node:util'
import { HvlabError } from '../../shared/errors.js'
import type { ReplicationSetting } from '../../shared/protocol/replica-messages.js'
import type { VmRole } from './vm-role.js'

/** The VM's replica server while it runs there after a planned failover, else null. */
export function failedOverTo(role: VmRole): string | null {
  return role.replication?.reversed_to === undefined ? null : role.replication.to
}

/** The refusal for anything that would let the cluster run `role` while it runs on its replica server. */
export function failedOverRefusal(role: VmRole, what: string): HvlabError {
  const r = role.replication!
  const where =
    r.to_cluster === true
      ? `it runs in cluster ${r.to}, and this cluster holds its replica (on ${r.reversed_to})`
      : `it runs on its replica server ${r.to} after a planned failover, replicating back to ${r.reversed_to}`
  const how = r.to_cluster === true ? 'run it here by a failover' : 'fail it back first'
  return new HvlabError(
    'HVLAB_E_REPLICA_FAILED_OVER',
    `cannot ${what} vm ${role.name}: ${where}; ${how}: hvlab replica failover ${role.name} --planned`,
  )
}

/**
 * The refusal of changing `role`'s replication to `change` (null: removing it), or null
 * when it may change. `moving`: the role is on a node, on its way to one, or migrating.
 */
export function replicationChangeRefusal(role: VmRole, change: ReplicationSetting | null, moving: boolean): HvlabError | null {
  if (failedOverTo(role) !== null) {
    if (isReplacement(role, change)) return null
    return failedOverRefusal(role, change === null ? 'stop replicating' : 'change the replication of')
  }
  if (change?.reversed_to === undefined || !moving) return null
  return new HvlabError(
    'HVLAB_E_STATE',
    `cannot reverse the replication of vm ${role.name}: it is ${role.state}${role.owner === null ? '' : ` on ${role.owner}`}, and a VM runs on its replica server only once the cluster has stopped it; \`hvlab replica failover ${role.name} --planned\` stops it first`,
  )
}

/**
 * The Replica Broker placing a failed-over VM's reverse replica on another member: the same
 * setting, still reversed, to another member. The only change allowed while it runs on its
 * replica server, and it keeps it failed over.
 */
function isReplacement(role: VmRole, change: ReplicationSetting | null): boolean {
  if (change === null || change.reversed_to === undefined || role.replication === undefined) return false
  const { reversed_to: _now, ...kept } = role.replication
  const { reversed_to: _next, ...asked } = change
  return isDeepStrictEqual(kept, asked)
}

/**
 * The refusal of a fail-back of `role` to `forward`, or null: it must run on its replica
 * server (or in the other cluster), and `forward` replicate forward; null: an unplanned
 * failover into this cluster from the replica it holds, replicating nowhere from then on.
 */
export function failBackRefusal(role: VmRole, forward: ReplicationSetting | null): HvlabError | null {
  if (failedOverTo(role) === null)
    return new HvlabError('HVLAB_E_STATE', `cannot fail back vm ${role.name}: it does not run on its replica server (no planned failover)`)
  if (forward !== null && forward.reversed_to !== undefined)
    return new HvlabError('HVLAB_E_USAGE', `a fail-back of vm ${role.name} replicates forward: its setting takes no reversed_to`)
  return null
}
