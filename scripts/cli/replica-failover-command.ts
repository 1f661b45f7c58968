/**
 * `hvlab replica failover VM`: start the VM on its replica server (seed 002).
 *
 * - Planned (`--planned`, the VM runs in the cluster): shut it down, send its last changes,
 *   start the replica with nothing lost, and reverse replication: the replica server sends
 *   the VM's changes back to the cluster, to the member its Replica Broker places the
 *   reverse replica on, into the VM's own disk on the cluster's storage; the cluster will not
 *   start the VM meanwhile. Refused up front without a broker that allows the server
 *   (`hvlab replica server enable cluster --allow SERVER`).
 * - Planned again (`--planned`, the VM runs on its replica server, reversed): the fail-back.
 *   The VM shuts down there, its last changes go back, the cluster starts it on its own disk
 *   with nothing lost, and replication goes forward again (its resync finds nothing that
 *   differs beyond what changed since). Without --planned, when the replica server is lost:
 *   the cluster starts it from its reverse replica (unplannedBack), replicating nowhere.
 * - Unplanned (the primary is lost): the replica starts from its latest cycle or a recovery
 *   point (`--latest-app-consistent`: the newest application-consistent one); refused while the primary still runs the VM, unless --force. Not reversed: to get
 *   back, replicate it to the cluster (`replica enable VM --to cluster`, replica-to-cluster.ts; the seed: "the policy is broken"), then fail it back.
 * - A standalone host's own VM replicating to another standalone host (no role):
 *   replica-standalone.ts, planned and unplanned alike.
 */
import type { Command } from 'commander'
import { HvlabError } from '../../shared/errors.js'
import type { VmRoleRecord } from '../../shared/protocol/cluster-messages.js'
import type { GuestLoadSetting } from '../../shared/protocol/guest-load.js'
import type { ReplicationSetting, Reverse } from '../../shared/protocol/replica-messages.js'
import type { LabStatus } from '../controller/lab-controller.js'
import { chosenHosts } from './cluster-choice.js'
import { HOST_REQUEST_TIMEOUT_MS, roleCommand } from './cluster-client.js'
import { ControlClient } from './control-client.js'
import { dirOption, intIn, out } from './options.js'
import { brokerFor, roleRecords } from './replica-broker-commands.js'
import { latestAppConsistentCycle } from './replica-point-choice.js'
import { checkTakesReplicationFrom, noRole, roleIfReachable, serverHolding, sideOf } from './replica-queries.js'
import { plannedStandaloneFailover, unplannedStandaloneRefusal } from './replica-standalone.js'
import { ownOnStandalone } from './standalone-vms.js'
import { startStep } from './vm-start-stop-commands.js'
import { vmRole, vmRoleNow } from './vm-queries.js'
import { secondsText } from './units.js'
import { waitFor, waitOptions, type WaitOpts } from './wait-for.js'
import { plannedBetweenClusters, unplannedBetweenClusters } from './replica-failover-clusters.js'
import {
  dropReverseReplica,
  firstPlacement,
  lastChangesSent,
  lossWords,
  startFromHeldReplica,
  unplannedRefusal,
} from './replica-failover-steps.js'

interface FailoverOptions extends WaitOpts {
  planned?: boolean
  on?: string
  recoveryPoint?: number
  latestAppConsistent?: boolean
  force?: boolean
  dir: string
}

export function registerFailover(replica: Command): void {
  const cmd = replica
    .command('failover')
    .description(
      'start a VM on its replica server. --planned: shut the VM down on its primary, send its last changes, then start the replica: nothing is lost, and replication is reversed (its changes go back to the cluster, placed by its Replica Broker: `replica server enable cluster` first, with its recovery points); --planned again fails it back the same way, and without --planned (the replica server is lost) the cluster starts it from that reverse replica, its latest cycle or a recovery point. Unplanned (the primary is lost): start the replica from its latest cycle or a recovery point; refused while the primary still runs the VM, unless --force. A VM created on a standalone host (`vm create --on`) fails over the same ways to the standalone host it replicates to, --planned reversing replication to its old host. A VM replicated to another cluster (`--to cluster:NAME`) fails over there --planned (and back the same way), or unplanned (\`hvlab --cluster NAME replica failover VM\` when its own cluster is lost), its replication then ended',
    )
    .argument('<vm>', 'the VM name')
    .option(
      '--planned',
      'a planned failover: shut down, send the last changes, start the replica (zero data loss), reverse replication; on a VM failed over this way, its fail-back to the cluster',
    )
    .option(
      '--recovery-point <cycle>',
      'unplanned: start from the recovery point of this cycle (`hvlab replica status VM --json` lists them)',
      intIn(0, Number.MAX_SAFE_INTEGER),
    )
    .option('--latest-app-consistent', 'unplanned: start from the newest application-consistent recovery point')
    .option(
      '--force',
      'unplanned: start the replica even though the primary VM still runs (it runs twice until the primary reaches its replica server again, which refuses its replication; the primary then stops its copy)',
    )
    .option('--on <server>', "unplanned: the server whose replica starts (an extended replica; default: the VM's replica server)")
    .addOption(dirOption())
  waitOptions(cmd, 120).action(failover)
}

async function failover(vm: string, o: FailoverOptions): Promise<void> {
  if (o.planned === true && (o.recoveryPoint !== undefined || o.latestAppConsistent === true || o.force === true || o.on !== undefined))
    throw new HvlabError(
      'HVLAB_E_USAGE',
      '--planned sends the latest changes to the replica server: it takes no --recovery-point, --latest-app-consistent, --force or --on',
    )
  if (o.recoveryPoint !== undefined && o.latestAppConsistent === true)
    throw new HvlabError('HVLAB_E_USAGE', '--recovery-point and --latest-app-consistent each name the point: give one')
  const client = ControlClient.forDir(o.dir)
  const own = await ownOnStandalone(client, o.dir, vm) // a standalone host's VM (no role) replicating to another: replica-standalone.ts
  const standalone = own !== null && own.side.replication !== null ? own : null
  if (o.planned === true && standalone !== null)
    return plannedStandaloneFailover(client, vm, standalone, (sender) => lastChangesSent(client, sender, vm, o))
  const role = o.planned === true ? await vmRole(client, vm) : await roleIfReachable(client, vm).catch(noRole)
  const setting = role?.replication
  if (role !== null && setting === undefined)
    throw new HvlabError('HVLAB_E_STATE', `vm ${vm} is not replicated; \`hvlab replica enable ${vm} --to SERVER\` first`)
  if (setting?.to_cluster === true)
    return o.planned === true
      ? plannedBetweenClusters(client, o.dir, role!, setting, o)
      : unplannedBetweenClusters(client, o.dir, role!, setting, o)
  if (setting?.reversed_to !== undefined)
    return o.planned === true ? failBack(client, vm, setting, o) : unplannedBack(client, vm, setting, o)
  if (o.planned === true) return plannedFailover(client, vm, role!, setting!, o)
  const server = o.on ?? setting?.to ?? standalone?.side.replication?.to ?? (await serverHolding(client, o.dir, vm))
  const why = o.force === true ? null : role === null ? unplannedStandaloneRefusal(vm, own, server) : unplannedRefusal(role)
  if (why !== null) throw why
  await unplannedFailover(client, vm, server, role?.load ?? own?.side.load, o)
}

/** Starts the replica on `server` from its latest cycle or the point asked for; says what that loses (the RPO) and how long the start took. */
async function unplannedFailover(
  client: ControlClient,
  vm: string,
  server: string,
  load: GuestLoadSetting | undefined,
  o: FailoverOptions,
): Promise<void> {
  if (o.latestAppConsistent === true) o.recoveryPoint = await latestAppConsistentCycle(client, server, vm)
  const replica = await sideOf(client, server, vm, 'replicas')
  const started_ms = Date.now()
  await startReplica(client, server, vm, load, o.recoveryPoint ?? null)
  const kind = o.latestAppConsistent === true ? 'application-consistent ' : ''
  const from = o.recoveryPoint === undefined ? 'its latest cycle' : `the ${kind}recovery point of cycle ${o.recoveryPoint}`
  out(
    `vm ${vm} failed over: it runs on ${server} from ${from}${lossWords(replica, o.recoveryPoint, started_ms)}; started in ${secondsText(Date.now() - started_ms)} s`,
  )
}

function startReplica(
  client: ControlClient,
  server: string,
  vm: string,
  guest_load: GuestLoadSetting | undefined,
  recovery_cycle: number | null,
  reverse?: Reverse,
): Promise<unknown> {
  const load = guest_load ? { load: guest_load } : {}
  const message = { t: 'replica-failover-request' as const, vm, recovery_cycle, ...load, ...(reverse ? { reverse } : {}) }
  return client.request(server, message, 'ok', HOST_REQUEST_TIMEOUT_MS)
}

/**
 * Shut down, send the last changes, start the replica, and reverse: its changes go back to
 * the cluster, on the member its Replica Broker places the reverse replica on. Refused up
 * front, before anything stops, unless the cluster's broker takes replication from the server.
 */
async function plannedFailover(
  client: ControlClient,
  vm: string,
  role: VmRoleRecord,
  setting: ReplicationSetting,
  o: FailoverOptions,
): Promise<void> {
  if (role.state !== 'running' || role.owner === null)
    throw new HvlabError(
      'HVLAB_E_STATE',
      `a planned failover shuts down the running primary; vm ${vm} is ${role.state}. Without it: \`hvlab replica failover ${vm}\``,
    )
  await brokerFor(await roleRecords(client), vm, setting.to)
  const primary = role.owner
  const stopped_ms = Date.now()
  await roleCommand(client, { op: 'stop', name: vm })
  await lastChangesSent(client, primary, vm, o)
  // The broker records the placement in the role first: that member takes the changes back only from the server the role names, and the cluster starts the VM no more.
  const host = await firstPlacement(client, vm, setting.to, o.timeoutS)
  try {
    const reverse = { frequency_ms: setting.frequency_ms, compress: setting.compress, recovery_points: setting.recovery_points }
    await startReplica(client, setting.to, vm, role.load, null, reverse)
  } catch (e) {
    await roleCommand(client, { op: 'fail-back', name: vm, replication: setting }) // it does not run there: the cluster may start it again
    throw e
  }
  out(
    `vm ${vm} failed over: it runs on ${setting.to} from every change of its primary (planned: nothing lost; down ${secondsText(Date.now() - stopped_ms)} s); replication is reversed, its changes go back to the cluster (the Replica Broker placed its reverse replica on ${host}). \`hvlab replica failover ${vm} --planned\` fails it back`,
  )
}

/**
 * The fail-back: shut down on the replica server, its last changes back into its disk, then
 * the cluster starts it; replication goes forward again. A VM created on that standalone
 * host comes into the cluster this way (its planned failover), and replicates back there.
 */
async function failBack(client: ControlClient, vm: string, setting: ReplicationSetting, o: FailoverOptions): Promise<void> {
  const { reversed_to: host, ...forward } = setting
  const createdThere = (await sideOf(client, setting.to, vm, 'replicas'))?.state === 'created-here' // it comes into the cluster for the first time
  if (createdThere) await checkTakesReplicationFrom(client, setting.to, await clusterHosts(client), vm, 'in the cluster')
  const stopped_ms = Date.now()
  await client.request(setting.to, { t: 'replica-failback-request', vm, step: 'stop-vm' }, 'ok', HOST_REQUEST_TIMEOUT_MS)
  await lastChangesSent(client, setting.to, vm, o)
  await client.request(setting.to, { t: 'replica-failback-request', vm, step: 'replicate-forward' }, 'ok', HOST_REQUEST_TIMEOUT_MS)
  await dropReverseReplica(client, host!, vm)
  await roleCommand(client, { op: 'fail-back', name: vm, replication: forward })
  await roleCommand(client, { op: 'start', name: vm })
  const owner = await waitFor({
    what: `vm ${vm} to run in the cluster`,
    watch: '`hvlab vm list`',
    timeout_ms: o.timeoutS * 1000,
    poll: async () => startStep(vm, await vmRoleNow(client, vm)),
  })
  const how = createdThere ? 'failed over to the cluster' : 'failed back'
  out(
    `vm ${vm} ${how}: it runs on ${owner} from every change it made on ${setting.to} (planned: nothing lost; down ${secondsText(Date.now() - stopped_ms)} s); it replicates to ${setting.to} ${createdThere ? 'from there' : 'again'}`,
  )
}

/**
 * The fail-back when the replica server running the VM (after a planned failover) is lost:
 * the cluster starts it from its reverse replica, from the latest cycle applied or a recovery
 * point the member holding it keeps, and its replication ends (set up again once the server
 * is back: `replica enable VM --to SERVER`, compared block by block). Refused while the
 * server answers and runs it (--planned loses nothing then), unless --force. The server,
 * once back, is told the VM runs in the cluster and stops its older copy (reverse-replication.ts).
 */
async function unplannedBack(client: ControlClient, vm: string, setting: ReplicationSetting, o: FailoverOptions): Promise<void> {
  const server = setting.to
  const there = o.force === true ? null : await sideOf(client, server, vm, 'replicas')
  if (there?.vm_running === true)
    throw new HvlabError(
      'HVLAB_E_STATE',
      `vm ${vm} runs on its replica server ${server}, which answers: starting it in the cluster now would run it twice. \`hvlab replica failover ${vm} --planned\` fails it back with nothing lost; --force if ${server} is cut off for good`,
    )
  const started = await startFromHeldReplica(client, vm, setting.reversed_to!, null, o)
  out(
    `vm ${vm} failed back to the cluster (unplanned): ${started}. Its replication has ended: protect it again with \`hvlab replica enable ${vm} --to ${server}\` once ${server} is back (it stops its older copy then)`,
  )
}

/** The cluster's hosts (any of them may run a VM that comes into the cluster). */
async function clusterHosts(client: ControlClient): Promise<string[]> {
  const lab = await client.get<LabStatus>('/v1/status')
  return chosenHosts(lab).map((p) => p.name)
}
