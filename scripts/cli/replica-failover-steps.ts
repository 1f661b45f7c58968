/**
 * The steps a planned failover is made of, shared by every direction of it (the cluster and
 * a standalone host, two standalone hosts, two clusters): the broker's first placement of a
 * stopped VM's replica, the last changes of a stopped VM reaching its replica, and a
 * member dropping a reverse replica once the VM runs from it; and what an unplanned
 * failover checks first (the primary stopped) and says after (what it lost).
 */
import { HvlabError, isTransientError } from '../../shared/errors.js'
import type { VmRoleRecord } from '../../shared/protocol/cluster-messages.js'
import type { ReplicaSideStatus } from '../../shared/protocol/replica-messages.js'
import { HOST_REQUEST_TIMEOUT_MS, askAnyHost, roleCommand } from './cluster-client.js'
import { latestAppConsistentCycle } from './replica-point-choice.js'
import type { ControlClient } from './control-client.js'
import { sideOf } from './replica-queries.js'
import { secondsText } from './units.js'
import { startStep, stopStep } from './vm-start-stop-commands.js'
import { vmRoleNow } from './vm-queries.js'
import { done, failed, waitFor, waiting, type WaitOpts } from './wait-for.js'

/**
 * The broker places the stopped VM's reverse replica (and records it in the role). Waits for
 * the role to be stopped, and while the broker has no owner (it fails over) or its copy of
 * the cluster database does not show the VM stopped yet (HVLAB_E_STATE: it lags the coordinator's).
 */
export async function firstPlacement(client: ControlClient, vm: string, server: string, timeout_s: number): Promise<string> {
  const timeout_ms = timeout_s * 1000
  await waitFor({ what: `vm ${vm} to stop`, watch: '`hvlab vm list`', timeout_ms, poll: async () => stopStep(await vmRoleNow(client, vm)) })
  const q = { t: 'replica-broker-place-request' as const, vm, server, first: true }
  const ask = async (): Promise<string | null> => {
    const r = await askAnyHost(client, q, 'replica-broker-place-reply')
    if (r.host !== null || r.broker_owner === null) return r.host
    return (await client.request(r.broker_owner, q, 'replica-broker-place-reply', HOST_REQUEST_TIMEOUT_MS)).host
  }
  return waitFor({
    what: `the Replica Broker to place vm ${vm}'s reverse replica`,
    watch: '`hvlab vm list`',
    timeout_ms,
    poll: async () => {
      const placed = await ask().catch((e: unknown) => {
        if (HvlabError.has(e, 'HVLAB_E_STATE') && !HvlabError.has(e, 'HVLAB_E_REPLICA_NO_BROKER')) return null
        throw e
      })
      return placed === null
        ? waiting(`the Replica Broker has not placed it yet (it runs nowhere now, or has not seen vm ${vm} stop)`)
        : done(placed)
    },
  })
}

/** The member holding the reverse replica drops it (its disk is the VM's own); a member down now keeps its copy of the replica's state, which nothing uses again. */
export async function dropReverseReplica(client: ControlClient, host: string, vm: string): Promise<void> {
  try {
    await client.request(host, { t: 'replica-reverse-drop-request', vm }, 'ok', HOST_REQUEST_TIMEOUT_MS)
  } catch (e) {
    if (!isTransientError(e) && !HvlabError.has(e, 'HVLAB_E_PROCESS_DOWN') && !HvlabError.has(e, 'HVLAB_E_LAB')) throw e
  }
}

/** Waits until `sender` (the VM stopped there) has its last changes applied on the other side. */
export async function lastChangesSent(client: ControlClient, sender: string, vm: string, o: { readonly timeoutS: number }): Promise<void> {
  await waitFor({
    what: `vm ${vm}'s last changes to reach its replica`,
    watch: `\`hvlab replica status ${vm}\``,
    timeout_ms: o.timeoutS * 1000,
    poll: async () => {
      const p = await sideOf(client, sender, vm, 'primaries')
      if (p === null || !p.stopped) return waiting(`vm ${vm} is shutting down on ${sender}`)
      if (p.finished === 'abandoned')
        return failed(
          'HVLAB_E_STATE',
          `${sender} could not send vm ${vm}'s last changes (${p.last_error ?? 'abandoned'}); the VM is stopped, nothing failed over`,
        )
      return p.finished === 'sent' ? done(p) : waiting(`${p.pending_bytes} bytes still to send`)
    },
  })
}

/**
 * PURE: what an unplanned failover at `failover_ms` loses: the writes made after the log its
 * replica stands at was closed (the latest applied, or the recovery point's), the RPO of that
 * moment; empty when the replica does not say.
 */
export function lossWords(replica: ReplicaSideStatus | null, recovery_cycle: number | undefined, failover_ms: number): string {
  const closed_ms =
    recovery_cycle === undefined
      ? (replica?.applied_closed_at_ms ?? null)
      : (replica?.recovery_points.find((p) => p.cycle === recovery_cycle)?.at_ms ?? null)
  if (closed_ms === null) return ''
  return `, whose log closed ${secondsText(failover_ms - closed_ms)} s before the failover: what was written after it is lost (the RPO)`
}

/**
 * The refusal of an unplanned failover of `role` (the cluster answered), or null: the
 * cluster must have it stopped, else it runs it, or will start it (pending, failed: retried,
 * starting, stopping to restart), and the VM would run twice.
 */
export function unplannedRefusal(role: Pick<VmRoleRecord, 'name' | 'state' | 'owner'>): HvlabError | null {
  const vm = role.name
  if (role.state === 'stopped') return null
  const on = role.owner === null ? '' : ` on ${role.owner}`
  const how = `stop it first (\`hvlab vm stop ${vm}\`), or --force if the primary is cut off for good`
  if (role.state === 'running')
    return new HvlabError(
      'HVLAB_E_STATE',
      `vm ${vm} still runs on its primary (${role.owner}): starting the replica now would run it twice. Use --planned, ${how}`,
    )
  return new HvlabError(
    'HVLAB_E_STATE',
    `vm ${vm} is ${role.state}${on} in the cluster, which may start it: starting the replica now could run it twice; ${how}`,
  )
}

/** The replica `member` holds of `vm`, with the recovery point of `cycle` when one is asked for; refused, nothing changed, when it cannot be used. */
export async function heldReplica(client: ControlClient, member: string, vm: string, to: string | null, cycle: number | null) {
  const { within, flag } = clusterWords(to)
  const replica = await sideOf(client, member, vm, 'replicas')
  if (replica === null)
    throw new HvlabError(
      'HVLAB_E_PROCESS_DOWN',
      `${member}, which holds vm ${vm}'s replica ${within}, does not answer: restart it (\`hvlab restart ${member}\`) and fail over again; nothing was changed`,
    )
  if (replica.resyncing)
    throw new HvlabError(
      'HVLAB_E_STATE',
      `vm ${vm}'s replica on ${member} is being resynchronised and is not consistent; nothing was changed`,
    )
  if (cycle !== null && !replica.recovery_points.some((p) => p.cycle === cycle))
    throw new HvlabError(
      'HVLAB_E_NOT_FOUND',
      `vm ${vm}'s replica on ${member} has no recovery point of cycle ${cycle} (it has ${replica.recovery_points.map((p) => p.cycle).join(', ') || 'none'}); \`hvlab ${flag}replica status ${vm} --json\` lists them; nothing was changed`,
    )
  return replica
}

/** Waits until the cluster the commands address (named `cluster`; null: the only one the words need) runs `vm`; its owner. */
export function startedIn(client: ControlClient, vm: string, cluster: string | null, o: WaitOpts): Promise<string> {
  const { within, flag } = clusterWords(cluster)
  return waitFor({
    what: `vm ${vm} to run ${within}`,
    watch: `\`hvlab ${flag}vm list\``,
    timeout_ms: o.timeoutS * 1000,
    poll: async () => startStep(vm, await vmRoleNow(client, vm)),
  })
}

/** How the words name cluster `name` (null: the cluster, the only one they need). */
function clusterWords(name: string | null): { within: string; flag: string } {
  return name === null ? { within: 'in the cluster', flag: '' } : { within: `in cluster ${name}`, flag: `--cluster ${name} ` }
}

export interface PointChoice extends WaitOpts {
  recoveryPoint?: number
  latestAppConsistent?: boolean
}

/**
 * An unplanned failover into the cluster the commands address (named `cluster`, null: the
 * only one the words need) from the replica its `member` holds: the role stops taking the
 * VM's changes and will replicate nowhere, the member returns the VM's volumes to the latest
 * cycle applied or the recovery point chosen and drops the replica, and the cluster starts
 * the VM. Refused, nothing changed, when the member cannot hand it over. Says where it runs,
 * from what, and what was lost.
 */
export async function startFromHeldReplica(
  client: ControlClient,
  vm: string,
  member: string,
  cluster: string | null,
  o: PointChoice,
): Promise<string> {
  const cycle = o.latestAppConsistent === true ? await latestAppConsistentCycle(client, member, vm) : (o.recoveryPoint ?? null)
  const replica = await heldReplica(client, member, vm, cluster, cycle)
  const started_ms = Date.now()
  await roleCommand(client, { op: 'fail-back', name: vm, replication: null }) // the member takes no more of its changes
  await client.request(member, { t: 'replica-reverse-takeover-request', vm, recovery_cycle: cycle }, 'ok', HOST_REQUEST_TIMEOUT_MS)
  await roleCommand(client, { op: 'start', name: vm })
  const owner = await startedIn(client, vm, cluster, o)
  const point = cycle === null ? 'its latest cycle' : `the recovery point of cycle ${cycle}`
  return `it runs on ${owner} from ${point}${lossWords(replica, cycle ?? undefined, started_ms)}; started in ${secondsText(Date.now() - started_ms)} s`
}
