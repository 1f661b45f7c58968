/** `hvlab cluster …`: the failover cluster's commands (quorum state, forced quorum). */
import type { Command } from 'commander'
import { HvlabError, describeError } from '../../shared/errors.js'
import type { ClusterStatus } from '../../shared/protocol/cluster-messages.js'
import type { LabClusterStatus, LabStatus } from '../controller/lab-controller.js'
import { ControlClient } from './control-client.js'
import { formatCluster } from './format.js'
import { dirOption, out, printJson } from './options.js'

/** How long one host may take to answer a cluster request. */
const HOST_REQUEST_TIMEOUT_MS = 3000

/** Every up host's own view of the quorum, asked now; the witness's vote holder from the lab status. */
export async function clusterStatusNow(client: ControlClient): Promise<LabClusterStatus> {
  const lab = await client.get<LabStatus>('/v1/status')
  const hosts: Record<string, ClusterStatus> = {}
  const up = lab.processes.filter((p) => p.role === 'host' && p.state === 'up')
  await Promise.all(
    up.map(async (p) => {
      try {
        const r = await client.request(p.name, { t: 'cluster-status-request' }, 'cluster-status-reply', HOST_REQUEST_TIMEOUT_MS)
        hosts[p.name] = r.status
      } catch {
        // a host that does not answer in time is left out; `hvlab status` shows its process state
      }
    }),
  )
  if (Object.keys(hosts).length === 0) throw new HvlabError('HVLAB_E_STATE', 'no host of the cluster answered; `hvlab status` shows which processes are up')
  return { hosts, witness: lab.cluster?.witness ?? null, refreshed_ms: Date.now() }
}

export function registerClusterCommands(program: Command): void {
  const cluster = program.command('cluster').description('the failover cluster: quorum state and operator overrides')

  cluster
    .command('status')
    .description('quorum model, votes present/needed, witness vote holder, epoch, and each node: Up, Down, Paused or Joining')
    .addOption(dirOption())
    .option('--json', 'machine-readable: {"hosts":{NAME:{model,epoch,members,votes_present,votes_needed,holds_lease,nodes:[{name,state}]…}},"witness":{vote_holder,…}}')
    .action(async (o: { dir: string; json?: boolean }) => {
      const s = await clusterStatusNow(ControlClient.forDir(o.dir))
      if (o.json) printJson(s)
      else out(formatCluster(s))
    })

  cluster
    .command('force-quorum')
    .description(
      'DANGEROUS: start the cluster on NODE alone, without quorum. Its cluster database becomes authoritative and every other host joins it (prevent quorum); changes made on the other side since are lost. Use only when the majority is gone for good.',
    )
    .argument('<node>', 'the host to force quorum on, e.g. host-b1')
    .addOption(dirOption())
    .action(async (node: string, o: { dir: string }) => {
      const client = ControlClient.forDir(o.dir)
      try {
        await client.request(node, { t: 'cluster-force-quorum-request' }, 'ok', HOST_REQUEST_TIMEOUT_MS)
      } catch (e) {
        throw new HvlabError(e instanceof HvlabError ? e.code : 'HVLAB_E_STATE', `cannot force quorum on ${node}: ${describeError(e)}`)
      }
      out(`forced quorum on ${node}: it now runs the cluster alone with its database; other hosts join it as they reach it. \`hvlab cluster status\` shows the result.`)
    })
}
