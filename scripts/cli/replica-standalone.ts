/**
 * Hyper-V Replica between standalone hosts (seed 002's small business replicating to a
 * hosting provider): a VM a standalone host runs from its own disk, no cluster role's
 * (`vm create NAME --on HOST`, standalone-vms.ts), replicates to another standalone host.
 * Its setting lives with the VM on its host (agent/replica/replica-vm.ts `replication`),
 * as a role keeps a cluster VM's. `replica enable|disable`, `replica status` and
 * `replica failover` reach it here: a planned failover stops it on its host, sends its last
 * changes, starts it on the replica server and reverses replication (its old host's disk
 * becomes its replica); an unplanned one is refused while its host still runs it.
 */
import { HvlabError } from '../../shared/errors.js'
import type { PrimarySideStatus, ReplicaSideStatus, ReplicationSetting } from '../../shared/protocol/replica-messages.js'
import { HOST_REQUEST_TIMEOUT_MS } from './cluster-client.js'
import type { ControlClient } from './control-client.js'
import { out } from './options.js'
import { checkTakesReplicationFrom, sideOf, standaloneReplies } from './replica-queries.js'
import { secondsText } from './units.js'
import type { ReplicaStatusView } from './replica-status-command.js'

/** A VM a standalone host runs from its disk: the host and its status there. */
export interface StandaloneVm {
  readonly host: string
  readonly side: ReplicaSideStatus
}

/** `replica enable VM --to SERVER` of a standalone host's VM: it replicates there from now on (its old stopped copy there, if any, becomes the replica first). */
export async function setOnStandalone(client: ControlClient, vm: string, own: StandaloneVm, setting: ReplicationSetting): Promise<void> {
  await replicaThereFirst(client, vm, setting.to)
  await client.request(own.host, { t: 'standalone-replicate-request', vm, replication: setting }, 'ok', HOST_REQUEST_TIMEOUT_MS)
}

/** The primary side of a standalone host's VM, as `replica enable` waits on it: none yet while it runs, null when it does not run. */
export function standaloneSides(client: ControlClient, vm: string, own: StandaloneVm): () => Promise<PrimarySideStatus[] | null> {
  return async () => {
    const p = await sideOf(client, own.host, vm, 'primaries')
    return p === null ? (own.side.vm_running ? [] : null) : [p]
  }
}

/**
 * After an unplanned failover the VM's old host may still hold its stopped copy, as a VM of
 * its own: replicating back there (seed 002: the policy must be set up again) makes that
 * copy its replica, so the first resync sends only what differs. Refused while it runs there.
 */
async function replicaThereFirst(client: ControlClient, vm: string, to: string): Promise<void> {
  const there = await sideOf(client, to, vm, 'replicas')
  if (there === null || there.state === 'replicating') return
  if (there.vm_running)
    throw new HvlabError(
      'HVLAB_E_STATE',
      `vm ${vm} runs on ${to} too (it ran twice after a forced failover); stop the copy there before it becomes the replica`,
    )
  await client.request(to, { t: 'replica-failback-request', vm, step: 'replicate-forward' }, 'ok', HOST_REQUEST_TIMEOUT_MS)
}

/** `replica disable VM` of a standalone host's VM: it no longer replicates (the replica server keeps the replica's disk). */
export async function disableOnStandalone(client: ControlClient, vm: string, own: StandaloneVm): Promise<void> {
  await client.request(own.host, { t: 'standalone-replicate-request', vm, replication: null }, 'ok', HOST_REQUEST_TIMEOUT_MS)
}

/**
 * `replica status` rows of the VMs standalone hosts run from their disks and replicate to
 * another standalone host (`vm`: only that one); `roles`: the cluster's VM names, which
 * have rows of their own.
 */
export async function standaloneStatusRows(
  client: ControlClient,
  dir: string,
  vm: string | null,
  roles: ReadonlySet<string>,
): Promise<ReplicaStatusView[]> {
  const rows: ReplicaStatusView[] = []
  for (const { host, reply } of await standaloneReplies(client, dir)) {
    for (const side of reply.replicas) {
      const setting = side.replication
      if (setting === null || roles.has(side.vm) || (vm !== null && side.vm !== vm)) continue
      rows.push({
        vm: side.vm,
        primary_host: side.vm_running ? host : null,
        to: setting.to,
        max_mbit: setting.max_mbit ?? null,
        primary: reply.primaries.find((p) => p.vm === side.vm) ?? null,
        replica: await sideOf(client, setting.to, side.vm, 'replicas'),
        extended: null,
        reverse: null,
      })
    }
  }
  return rows
}

/** Why an unplanned failover of a standalone host's VM is refused (its host still runs it: it would run twice), or null. */
export function unplannedStandaloneRefusal(vm: string, own: StandaloneVm | null, server: string): HvlabError | null {
  if (own === null || !own.side.vm_running || own.host === server) return null
  return new HvlabError(
    'HVLAB_E_STATE',
    `vm ${vm} still runs on its primary (${own.host}): starting the replica now would run it twice. Use --planned, stop it first (\`hvlab vm stop ${vm}\`), or --force if ${own.host} is cut off for good`,
  )
}

/**
 * The planned failover of a standalone host's VM to the standalone host it replicates to:
 * refused up front unless its host takes replication back from there; then it stops, its
 * last changes go, it starts there with its load, replicating back to its old host, whose
 * disk becomes its replica (the first resync sends nothing that did not change).
 */
export async function plannedStandaloneFailover(
  client: ControlClient,
  vm: string,
  own: StandaloneVm,
  lastChangesSent: (sender: string) => Promise<void>,
): Promise<void> {
  const setting = own.side.replication!
  const { host: from } = own
  await checkTakesReplicationFrom(client, from, [setting.to], vm, `on ${setting.to}`)
  const stopped_ms = Date.now()
  await client.request(from, { t: 'replica-failback-request', vm, step: 'stop-vm' }, 'ok', HOST_REQUEST_TIMEOUT_MS)
  await lastChangesSent(from)
  const back: ReplicationSetting = { ...setting, to: from }
  const load = own.side.load === undefined ? {} : { load: own.side.load }
  const failover = { t: 'replica-failover-request' as const, vm, recovery_cycle: null, ...load, replication: back }
  await client.request(setting.to, failover, 'ok', HOST_REQUEST_TIMEOUT_MS)
  const down_s = secondsText(Date.now() - stopped_ms)
  await client.request(from, { t: 'replica-failback-request', vm, step: 'replicate-forward' }, 'ok', HOST_REQUEST_TIMEOUT_MS)
  out(
    `vm ${vm} failed over: it runs on ${setting.to} from every change it made on ${from} (planned: nothing lost; down ${down_s} s); replication is reversed, it replicates to ${from} from there`,
  )
}
