/**
 * `hvlab replica server enable cluster --allow …` and `replica server disable cluster`: the
 * cluster's Hyper-V Replica Broker (agent/cluster/replica-broker.ts), a cluster role named
 * REPLICA_BROKER_ROLE whose settings live in its role in the cluster database. Enabling
 * creates and starts it the first time, and changes its settings after that; disabling stops
 * and removes it, refused while a failed-over VM replicates back through it. A planned
 * failover asks it (brokerFor) before anything is shut down.
 */
import { HvlabError } from '../../shared/errors.js'
import type { VmRoleRecord } from '../../shared/protocol/cluster-messages.js'
import { REPLICA_BROKER_ROLE } from '../../shared/protocol/replica-limits.js'
import type { ReplicaBrokerSettings } from '../../shared/protocol/replica-messages.js'
import { askAnyHost, roleCommand } from './cluster-client.js'
import type { ControlClient } from './control-client.js'
import { out } from './options.js'
import { startStep, stopStep } from './vm-start-stop-commands.js'
import { vmRoleNow } from './vm-queries.js'
import { waitFor } from './wait-for.js'

/** The broker runs as a small guest without a disk (its role is owned, placed and failed over like a VM's). */
export const BROKER_MEMORY_MIB = 32
/** Starting or stopping the broker's role. */
const BROKER_WAIT_MS = 60_000

const roles = async (client: ControlClient): Promise<readonly VmRoleRecord[]> =>
  (await askAnyHost(client, { t: 'role-list-request', forwarded: false }, 'role-list-reply')).roles

const allowWords = (s: ReplicaBrokerSettings): string => (s.allow_any ? 'any replica server of the lab' : s.allow.join(', '))

/** `replica server enable cluster`: the broker made (once) or its settings changed, and running. */
export async function enableBroker(client: ControlClient, settings: ReplicaBrokerSettings): Promise<void> {
  const existing = (await roles(client)).find((r) => r.name === REPLICA_BROKER_ROLE)
  if (existing === undefined)
    await roleCommand(client, { op: 'create', spec: { name: REPLICA_BROKER_ROLE, memory_mib: BROKER_MEMORY_MIB } })
  await roleCommand(client, { op: 'set', name: REPLICA_BROKER_ROLE, changes: { replica_broker: settings, priority: 'high' } })
  if (existing === undefined || existing.state === 'stopped' || existing.state === 'failed')
    await roleCommand(client, { op: 'start', name: REPLICA_BROKER_ROLE })
  const owner = await waitFor({
    what: `the Replica Broker role (${REPLICA_BROKER_ROLE}) to run`,
    watch: '`hvlab vm list`',
    timeout_ms: BROKER_WAIT_MS,
    poll: async () => startStep(REPLICA_BROKER_ROLE, await vmRoleNow(client, REPLICA_BROKER_ROLE)),
  })
  const verb = existing === undefined ? 'is a replica server: its Replica Broker runs' : "Replica Broker's settings changed; it runs"
  out(`the cluster ${verb} on ${owner} (role ${REPLICA_BROKER_ROLE}); it takes replication from ${allowWords(settings)}`)
}

/** `replica server disable cluster`: the broker stopped and removed, unless a failed-over VM's changes come back through it. */
export async function disableBroker(client: ControlClient): Promise<void> {
  const all = await roles(client)
  if (!all.some((r) => r.name === REPLICA_BROKER_ROLE && r.replica_broker !== undefined))
    throw new HvlabError(
      'HVLAB_E_NOT_FOUND',
      'the cluster has no Replica Broker (`hvlab replica server enable cluster --allow …` makes one)',
    )
  // Refused before it stops, too: the coordinator refuses the removal itself (role-removal.ts).
  const { brokerRemovalRefusal } = await import('../../agent/cluster/replica-broker.js') // not when hvlab starts: it brings zod
  const inUse = brokerRemovalRefusal(all)
  if (inUse !== null) throw inUse
  await roleCommand(client, { op: 'stop', name: REPLICA_BROKER_ROLE })
  await waitFor({
    what: `the Replica Broker role (${REPLICA_BROKER_ROLE}) to stop`,
    watch: '`hvlab vm list`',
    timeout_ms: BROKER_WAIT_MS,
    poll: async () => stopStep(await vmRoleNow(client, REPLICA_BROKER_ROLE)),
  })
  await askAnyHost(client, { t: 'vm-remove-request', name: REPLICA_BROKER_ROLE, keep_disk: false, forwarded: false }, 'vm-remove-reply')
  out(`the cluster is no longer a replica server: its Replica Broker (role ${REPLICA_BROKER_ROLE}) is removed`)
}

/**
 * Before a clustered VM's changes replicate back from `server` (a planned failover, or
 * replication to the cluster after an unplanned one): the cluster must be a replica server
 * that takes replication from it (as in Hyper-V). `unchanged`: what the refusal left as it was.
 * Throws HVLAB_E_REPLICA_NO_BROKER or HVLAB_E_REPLICA_NOT_ALLOWED; else the member it runs on (null: none now).
 */
export async function brokerFor(
  all: readonly VmRoleRecord[],
  vm: string,
  server: string,
  unchanged = 'nothing was shut down',
): Promise<string | null> {
  const broker = all.find((r) => r.name === REPLICA_BROKER_ROLE)
  if (broker?.replica_broker === undefined)
    throw new HvlabError(
      'HVLAB_E_REPLICA_NO_BROKER',
      `vm ${vm}'s changes replicate back from ${server} to the cluster, so the cluster must be a replica server for ${server} (its Replica Broker): hvlab replica server enable cluster --allow ${server}; ${unchanged}`,
    )
  const { checkBrokerAllows } = await import('../../agent/cluster/replica-broker.js') // not when hvlab starts: it brings zod
  checkBrokerAllows(broker.replica_broker, server)
  return broker.state === 'running' ? broker.owner : null
}

export { roles as roleRecords }

/** The broker as `cluster status --json` shows it (`replica_broker`); null: the cluster has none. */
export interface BrokerView {
  state: VmRoleRecord['state']
  owner: string | null
  allow_any: boolean
  allow: string[]
}

export function brokerView(all: readonly VmRoleRecord[]): BrokerView | null {
  const r = all.find((x) => x.name === REPLICA_BROKER_ROLE)
  if (r?.replica_broker === undefined) return null
  return { state: r.state, owner: r.owner, allow_any: r.replica_broker.allow_any, allow: [...r.replica_broker.allow] }
}

/** One line for people: where the broker runs and whom it allows. */
export function formatBroker(b: BrokerView | null): string {
  if (b === null) return 'replica broker: none (`hvlab replica server enable cluster --allow SERVER` makes one)'
  const where = b.owner === null ? b.state : `${b.state} on ${b.owner}`
  return `replica broker: ${where} (role ${REPLICA_BROKER_ROLE}); allows ${allowWords(b)}`
}
