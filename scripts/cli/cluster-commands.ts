/** `hvlab cluster …`: the failover cluster's commands (quorum state, validation, forced quorum). */
import { writeFile } from 'node:fs/promises'
import type { Command } from 'commander'
import { HvlabError, describeError } from '../../shared/errors.js'
import { labLayout } from '../../shared/lab-layout.js'
import type { ClusterStatus } from '../../shared/protocol/cluster-messages.js'
import type { Topology } from '../../shared/topology.js'
import type { LabClusterStatus, LabStatus } from '../controller/lab-controller.js'
import { currentIo, setExitCode } from './cli-io.js'
import { HOST_REQUEST_TIMEOUT_MS, askAnyHost } from './cluster-client.js'
import { brokerView, formatBroker, type BrokerView } from './replica-broker-commands.js'
import { clusterRoleStatus, formatVmCounters, type ClusterRoleStatus } from './cluster-roles.js'
import { validateCluster, validationPassed, type ValidationInput } from './cluster-validation.js'
import { ControlClient } from './control-client.js'
import { chosenClusterName, chosenClusterStatus, chosenHosts, chosenHostsUp, chosenTopology } from './cluster-choice.js'
import { formatCluster, formatEpoch, formatValidation, validationHtml } from './format.js'
import { dirOption, out, printResult } from './options.js'

/** Every up host's own view of the quorum, asked now; the witness's vote holder from the lab status. */
export async function clusterStatusNow(client: ControlClient): Promise<LabClusterStatus> {
  const lab = await client.get<LabStatus>('/v1/status')
  const hosts: Record<string, ClusterStatus> = {}
  await Promise.all(
    chosenHostsUp(lab).map(async (name) => {
      try {
        const r = await client.request(name, { t: 'cluster-status-request' }, 'cluster-status-reply', HOST_REQUEST_TIMEOUT_MS)
        hosts[name] = r.status
      } catch {
        // a host that does not answer in time is left out; `hvlab status` shows its process state
      }
    }),
  )
  if (Object.keys(hosts).length === 0)
    throw new HvlabError('HVLAB_E_STATE', 'no host of the cluster answered; `hvlab status` shows which processes are up')
  const status = chosenClusterStatus(lab)
  return { ...(status?.name === undefined ? {} : { name: status.name }), hosts, witness: status?.witness ?? null, refreshed_ms: Date.now() }
}

export function registerClusterCommands(program: Command): void {
  const cluster = program.command('cluster').description('the failover cluster: quorum state and operator overrides')
  registerClusterStatus(cluster)
  registerClusterValidate(cluster)
  registerClusterForceQuorum(cluster)
}

/** What `cluster status --json` prints: the quorum as every host sees it, and the roles' drains and failure counters (null when no host answered the role list). */
export type ClusterStatusReport = LabClusterStatus & { roles: ClusterRoleStatus | null; replica_broker?: BrokerView | null }

/** The quorum, and the coordinator's drains and failure counters (tests call it in-process). */
export async function clusterStatusReport(client: ControlClient): Promise<ClusterStatusReport> {
  const quorum = await clusterStatusNow(client)
  const list = await askAnyHost(client, { t: 'role-list-request', forwarded: false }, 'role-list-reply').catch(() => null)
  if (list === null) return { ...quorum, roles: null }
  return { ...quorum, roles: clusterRoleStatus(list, Date.now()), replica_broker: brokerView(list.roles) }
}

function registerClusterStatus(cluster: Command): void {
  cluster
    .command('status')
    .description(
      'quorum model, votes present/needed, witness vote holder, epoch (GENERATION/EPOCH after a forced quorum); each node: Up, Down, Paused or Joining, its vote (NodeWeight), whether the vote counts now (DynamicWeight), its drain status; each vm: restarts and failovers against the failover policy, last failure',
    )
    .addOption(dirOption())
    .option(
      '--json',
      'machine-readable: {"hosts":{NAME:{model,epoch,members,votes_present,votes_needed,holds_lease,nodes:[{name,state,voter,node_weight,dynamic_weight}]…}},"witness":{vote_holder,…},"roles":{source,drains:{NODE:status},failover_policy:{restarts_max,restart_period_ms,failovers_max,failover_period_ms},vms:[{name,state,owner,restarts,failovers,last_failure_ms}]},"replica_broker":{state,owner,allow_any,allow}|null}',
    )
    .action(async (o: { dir: string; json?: boolean }) => {
      const s = await clusterStatusReport(ControlClient.forDir(o.dir))
      printResult(o.json, s, () => formatClusterReport(s, Date.now()))
    })
}

/** `cluster status` for people: the quorum and nodes, then the vms' failure counters. */
export function formatClusterReport(s: ClusterStatusReport, now_ms: number): string {
  const drains = s.roles?.source === 'coordinator' ? s.roles.drains : undefined
  const vms = s.roles === null ? 'vms: the role list did not answer' : formatVmCounters(s.roles, now_ms)
  const broker = s.replica_broker === undefined ? '' : `\n${formatBroker(s.replica_broker)}`
  return `${formatCluster(s, drains, chosenClusterName() !== null)}

${vms}${broker}`
}

function registerClusterValidate(cluster: Command): void {
  cluster
    .command('validate')
    .description(
      'check the cluster the way the validation wizard does: heartbeats between all nodes, the witness from every site, vm owners; prints the result and writes an HTML report in the data dir; exits 1 if a check failed',
    )
    .addOption(dirOption())
    .option('--json', 'machine-readable: {"passed","report","checks":[{area,name,result,detail}]}')
    .action(validateClusterNow)
}

async function validateClusterNow(o: { dir: string; json?: boolean }): Promise<void> {
  const client = ControlClient.forDir(o.dir)
  const layout = labLayout(o.dir)
  const topology = await chosenTopology(layout.topology)
  const lab = await client.get<LabStatus>('/v1/status')
  const statuses = (await clusterStatusNow(client).catch(() => ({ hosts: {} as Record<string, ClusterStatus> }))).hosts
  const list = await askAnyHost(client, { t: 'role-list-request', forwarded: false }, 'role-list-reply').catch(() => null)
  const sharedDisks = list?.roles.some((r) => r.storage?.kind === 'replicated' || r.storage?.kind === 'csv') === true
  const arrays = sharedDisks ? await arrayListings(client, topology) : {}
  const checks = validateCluster({
    hosts: topology.hosts,
    witness: topology.witness ? { name: topology.witness.name, site: topology.witness.site } : null,
    statuses,
    links: Object.fromEntries(
      chosenHosts(lab)
        .filter((p) => p.state === 'up')
        .map((p) => [p.name, p.peers]),
    ),
    roles: list?.source === 'coordinator' ? list.roles : null,
    arrays,
  })
  const report = layout.validationReport
  await writeFile(report, validationHtml(checks, { name: lab.lab.name, at: new Date().toISOString() }))
  const passed = validationPassed(checks)
  printResult(o.json, { passed, report, checks }, () => formatValidation(checks, report))
  if (!passed) setExitCode(1)
}

/** Each array's volumes and the hosts each is presented to, or why it did not answer. */
async function arrayListings(client: ControlClient, topology: Topology): Promise<NonNullable<ValidationInput['arrays']>> {
  const arrays: Record<string, { volumes: string[]; presented: Record<string, string[]> } | { error: string }> = {}
  await Promise.all(
    topology.arrays.map(async (a) => {
      try {
        const listing = (await client.request(a.name, { t: 'volume-list' }, 'volume-listing', HOST_REQUEST_TIMEOUT_MS)).volumes
        arrays[a.name] = {
          volumes: listing.map((v) => v.volume),
          presented: Object.fromEntries(listing.map((v) => [v.volume, v.presented_to])),
        }
      } catch (e) {
        arrays[a.name] = { error: describeError(e) }
      }
    }),
  )
  return arrays
}

function registerClusterForceQuorum(cluster: Command): void {
  cluster
    .command('force-quorum')
    .description(
      'DANGEROUS: start the cluster on NODE alone, without quorum. Its cluster database becomes authoritative and every other host joins it (prevent quorum); changes made on the other side since are lost. Use only when the majority is gone for good.',
    )
    .argument('<node>', 'the host to force quorum on, e.g. host-b1')
    .option('--yes', 'force it even though the cluster holds quorum now (without a terminal to ask, it is required then)')
    .addOption(dirOption())
    .action(async (node: string, o: { dir: string; yes?: boolean }) => {
      const client = ControlClient.forDir(o.dir)
      await confirmWhileQuorumHeld(client, node, o.yes === true)
      try {
        await client.request(node, { t: 'cluster-force-quorum-request' }, 'ok', HOST_REQUEST_TIMEOUT_MS)
      } catch (e) {
        throw new HvlabError(e instanceof HvlabError ? e.code : 'HVLAB_E_STATE', `cannot force quorum on ${node}: ${describeError(e)}`)
      }
      const now = await client
        .request(node, { t: 'cluster-status-request' }, 'cluster-status-reply', HOST_REQUEST_TIMEOUT_MS)
        .then((r) => r.status)
        .catch(() => null)
      const epoch = now === null ? '' : ` in epoch ${formatEpoch(now.epoch)}${now.forced ? ' (FORCED)' : ''}`
      out(
        `forced quorum on ${node}${epoch}: it now runs the cluster alone with its database; other hosts join it as they reach it. \`hvlab cluster status\` shows the result.`,
      )
    })
}

/**
 * Forcing quorum while a cluster holds it splits the cluster's history (the forced side's
 * database wins and the majority's later changes are lost): ask on a terminal, else demand `--yes`.
 */
async function confirmWhileQuorumHeld(client: ControlClient, node: string, yes: boolean): Promise<void> {
  if (yes) return
  const quorum = await clusterStatusNow(client).catch(() => null)
  const holders = Object.values(quorum?.hosts ?? {})
    .filter((h) => h.holds_lease)
    .map((h) => h.node)
  if (holders.length === 0) return
  const why = `the cluster holds quorum now (held by ${holders.join(',')}); forcing quorum on ${node} makes its database win and loses the changes the others make meanwhile`
  const ask = currentIo().ask
  if (ask === undefined) throw new HvlabError('HVLAB_E_USAGE', `${why}; add --yes to force it anyway`)
  const answer = await ask(`${why}. Force quorum on ${node}? Type yes to go on: `)
  if (answer.trim().toLowerCase() !== 'yes') throw new HvlabError('HVLAB_E_REFUSED', `not forcing quorum on ${node}: not confirmed`)
}
