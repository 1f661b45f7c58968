/**
 * `hvlab replica …`: Hyper-V Replica (seed 002). `replica server enable` makes a standalone
 * host a replica server for the primaries it allows, or the cluster one through its Replica
 * Broker (replica-broker-commands.ts, `replica server disable cluster` removes it); `replica enable` and `replica import`
 * (replica-enable-commands.ts) replicate a VM to one; `replica extend` forwards a replica
 * to a third server; `replica disable` stops replication; `replica failover` and
 * `replica test-failover` start the replica; `replica size` (replica-size-command.ts)
 * measures a VM's churn; `replica status` (replica-status-command.ts) shows every side.
 */
import type { Command } from 'commander'
import { HvlabError } from '../../shared/errors.js'
import { EXTENDED_FREQUENCIES_MS, REPLICA_BROKER_ALLOW_MAX } from '../../shared/protocol/replica-limits.js'
import type { ReplicaBrokerSettings } from '../../shared/protocol/replica-messages.js'
import { HOST_REQUEST_TIMEOUT_MS, roleCommand } from './cluster-client.js'
import { ControlClient } from './control-client.js'
import { dirOption, nameList, out } from './options.js'
import { disableBroker, enableBroker } from './replica-broker-commands.js'
import { registerEnable, registerImport } from './replica-enable-commands.js'
import { registerFailover } from './replica-failover-command.js'
import { noRole, roleIfReachable, serverHolding } from './replica-queries.js'
import { registerSize } from './replica-size-command.js'
import { disableOnStandalone } from './replica-standalone.js'
import { registerStatus } from './replica-status-command.js'
import { extendedFrequency, forwardReplica } from './replica-extension.js'
import { roleOrStandalone } from './standalone-vms.js'
import { vmRole } from './vm-queries.js'

export function registerReplicaCommands(program: Command): void {
  const replica = program
    .command('replica')
    .description('Hyper-V Replica: asynchronous replication of VMs to a replica server in another site')
  registerServerEnable(replica)
  registerEnable(replica)
  registerImport(replica)
  registerExtend(replica)
  registerDisable(replica)
  registerFailover(replica)
  registerTestFailover(replica)
  registerStatus(replica)
  registerSize(replica)
}

function registerServerEnable(replica: Command): void {
  const server = replica.command('server').description('replica servers: standalone hosts, or the cluster (its Replica Broker)')
  server
    .command('enable')
    .description(
      "make a standalone host a replica server that takes replication from the primary servers it allows; `cluster`: the cluster's Replica Broker (a highly available cluster role, made once; again changes its settings), which takes reverse replication from the replica servers it allows",
    )
    .argument('<server>', 'the standalone host (topology: standalone_hosts), or `cluster`')
    .requiredOption(
      '--allow <hosts>',
      'comma-separated servers it takes replication from (for a standalone host: cluster hosts; for `cluster`: replica servers, or another failover cluster by name: any of its hosts), or `any`',
      nameList,
    )
    .option(
      '--storage <where>',
      "`cluster` only: where the replicas of another cluster's VMs go, csv:NAME (a Cluster Shared Volume of this cluster, as Hyper-V's broker keeps replica files on a CSV); default: the kind `vm create` gives",
    )
    .addOption(dirOption())
    .action(async (name: string, o: { allow: string[]; storage?: string; dir: string }) => {
      const allow_any = o.allow.includes('any')
      if (allow_any && o.allow.length > 1) throw new HvlabError('HVLAB_E_USAGE', '--allow takes `any` or a list of hosts, not both')
      const allow = allow_any ? [] : [...new Set(o.allow)].sort()
      const client = ControlClient.forDir(o.dir)
      if (name === 'cluster') return enableBroker(client, brokerSettings(allow_any, allow, o.storage))
      if (o.storage !== undefined)
        throw new HvlabError(
          'HVLAB_E_USAGE',
          "--storage is the cluster's (its broker keeps replicas there); a standalone host keeps its replicas on its own storage",
        )
      await client.request(name, { t: 'replica-server-enable-request', allow_any, allow }, 'ok', HOST_REQUEST_TIMEOUT_MS)
      out(`${name} is a replica server; it takes replication from ${allow_any ? 'any host of the lab' : allow.join(', ')}`)
    })
  server
    .command('disable')
    .description("`cluster`: remove the cluster's Replica Broker (refused while a failed-over VM replicates back through it)")
    .argument('<server>', '`cluster`')
    .addOption(dirOption())
    .action(async (name: string, o: { dir: string }) => {
      if (name !== 'cluster')
        throw new HvlabError(
          'HVLAB_E_USAGE',
          '`replica server disable` takes `cluster` (its Replica Broker); a standalone replica server cannot be disabled yet',
        )
      await disableBroker(ControlClient.forDir(o.dir))
    })
}

/** The broker's settings from --allow (the cluster checks each name as it checks any). */
function brokerSettings(allow_any: boolean, allow: string[], storage: string | undefined): ReplicaBrokerSettings {
  if (storage !== undefined && !/^csv:[a-z0-9][a-z0-9._-]{0,47}$/.test(storage))
    throw new HvlabError(
      'HVLAB_E_USAGE',
      `--storage ${storage}: name a Cluster Shared Volume of the cluster, e.g. --storage csv:v1 (\`hvlab csv list\`)`,
    )
  if (allow.length > REPLICA_BROKER_ALLOW_MAX)
    throw new HvlabError(
      'HVLAB_E_USAGE',
      `--allow for the cluster takes \`any\` or at most ${REPLICA_BROKER_ALLOW_MAX} replica servers (its settings fit one cluster database entry), got ${allow.length}`,
    )
  return { allow_any, allow, ...(storage === undefined ? {} : { storage }) }
}

interface ExtendOptions {
  to?: string
  frequency: (typeof EXTENDED_FREQUENCIES_MS)[number]
  stop?: boolean
  dir: string
}

function registerExtend(replica: Command): void {
  replica
    .command('extend')
    .description(
      "extended replication: the replica server holding a VM's replica forwards it to a third server (`replica server enable` that one, allowing the first), every 5 or 15 minutes; --stop ends it",
    )
    .argument('<vm>', 'the VM name')
    .option('--to <server>', 'the third server (a standalone host)')
    .option(
      '--frequency <f>',
      'how often the replica server forwards: 5m or 15m (scaled by the topology timeScale)',
      extendedFrequency,
      300_000,
    )
    .option('--stop', 'forward it no longer (the third server keeps its replica)')
    .addOption(dirOption())
    .action(async (vm: string, o: ExtendOptions) => {
      if ((o.stop === true) === (o.to !== undefined)) throw new HvlabError('HVLAB_E_USAGE', 'name the third server with --to, or --stop')
      const client = ControlClient.forDir(o.dir)
      const role = await roleIfReachable(client, vm).catch(noRole)
      const from = role?.replication?.to ?? (await serverHolding(client, o.dir, vm))
      const extension = o.to === undefined ? null : { to: o.to, frequency_ms: o.frequency }
      out(await forwardReplica(client, from, vm, extension))
    })
}

function registerDisable(replica: Command): void {
  replica
    .command('disable')
    .description("stop replicating a VM (the replica server keeps the replica's disk)")
    .argument('<vm>', 'the VM name')
    .addOption(dirOption())
    .action(async (vm: string, o: { dir: string }) => {
      const client = ControlClient.forDir(o.dir)
      await roleOrStandalone(
        client,
        o.dir,
        vm,
        () => roleCommand(client, { op: 'set', name: vm, changes: { replication: null } }),
        (host, side) => disableOnStandalone(client, vm, { host, side }),
      )
      out(`vm ${vm} is no longer replicated`)
    })
}

function registerTestFailover(replica: Command): void {
  replica
    .command('test-failover')
    .description(
      'start VM-test on the replica server from a copy of the replica, on an isolated network (no client reaches it), while replication goes on; --stop ends it and drops the copy',
    )
    .argument('<vm>', 'the VM name')
    .option('--stop', 'end the test failover')
    .addOption(dirOption())
    .action(async (vm: string, o: { stop?: boolean; dir: string }) => {
      const client = ControlClient.forDir(o.dir)
      const { to, load } = await roleOrStandalone(
        client,
        o.dir,
        vm,
        async () => {
          const role = await vmRole(client, vm)
          return { to: role.replication?.to, load: role.load }
        },
        async (_host, side) => ({ to: side.replication?.to, load: side.load }),
      )
      if (to === undefined)
        throw new HvlabError('HVLAB_E_STATE', `vm ${vm} is not replicated; \`hvlab replica enable ${vm} --to SERVER\` first`)
      const stop = o.stop === true
      await client.request(
        to,
        { t: 'replica-test-failover-request', vm, stop, ...(load && !stop ? { load } : {}) },
        'ok',
        HOST_REQUEST_TIMEOUT_MS,
      )
      out(
        stop
          ? `the test failover of vm ${vm} on ${to} ended; its copy is dropped`
          : `${vm}-test runs on ${to} from a copy of the replica, on an isolated network; replication goes on. \`hvlab replica test-failover ${vm} --stop\` ends it`,
      )
    })
}
