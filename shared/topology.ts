/**
 * The lab's topology: sites, Hyper-V hosts (the failover cluster's members), standalone
 * Hyper-V hosts outside the cluster, storage arrays, the file-share witness, the
 * quorum model, timing profile and the limits of hosts and arrays. Read from a JSON file (the default lab is
 * `topologies/two-site.json`), validated with errors that name the file and the field.
 */
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { z } from 'zod'
import { HvlabError, describeError } from './errors.js'
import { LINK_LATENCY_MS_MAX, LINK_LOSS_MAX, LINK_MBIT_MAX } from './fault-limits.js'
import { jsonSyntaxErrorOffset, positionOf } from './json-syntax.js'
import { CLUSTER_NODES_MAX } from './protocol/cluster-messages.js'
import { field } from './protocol/define.js'
import type { Role } from './protocol/runtime-messages.js'
import { issueText, problemsMessage } from './topology-issues.js'
import { LAB_ORGANISATION } from './organisation.js'
import {
  ARRAYS_MAX,
  CLUSTERS_MAX,
  DEFAULT_CLUSTER_NAME,
  QUORUM_MODELS,
  SITES_MAX,
  STANDALONE_HOSTS_MAX,
  topologyProblems,
} from './topology-rules.js'

export const DEFAULT_TOPOLOGY_FILE = fileURLToPath(new URL('../topologies/two-site.json', import.meta.url))

const heartbeatProfile = z.strictObject({
  interval_ms: z.number().int().min(10).max(60_000),
  missed_max: z.number().int().min(1).max(1000),
})

/** Limits of the hosts and arrays (DESIGN principle 9: bounded everything, each limit in config). */
export const LIMITS_DEFAULT = {
  /** Live/quick migrations a host sends at once (Hyper-V's default: 2); more are queued. */
  migrations_per_host: 2,
  /** Migrations a host queues beyond those; more are refused. */
  migrations_queued_per_host: 16,
  /** Migrations a host receives at once. */
  incoming_migrations_per_host: 4,
  /** Worker threads per host that diff pages for live migration. */
  page_diff_threads: 2,
  /** Remote-copy groups an array resynchronises at once; the others wait their turn. */
  resync_groups_per_array: 2,
  /** Worker threads per array that hash blocks for a resync's comparison. */
  block_hash_threads: 2,

  // Transport: every process's peer port (shared/transport).
  /** Authenticated peer connections a process serves at once; more are refused. */
  peer_connections_max: 256,
  /** Connections still in their handshake at once, per process; more are refused. */
  unauthenticated_connections_max: 32,
  /** Bytes a connection may send before it has proved the lab's secret; beyond, it is cut. */
  preauth_bytes_max: 16 * 1024,
  /** Requests awaiting their answer on one connection, each way: a process sends at most this many to a peer (more are refused HVLAB_E_BACKPRESSURE at once) and handles at most this many from one (more are answered HVLAB_E_BACKPRESSURE, not run). */
  requests_in_flight_max: 1024,
  /** Refusal log lines per process per second; the rest are counted, not written. */
  refusal_logs_per_s: 10,

  // HTTP listeners (control API, status and metrics).
  /** A request's headers must arrive within this. */
  http_headers_timeout_ms: 5_000,
  /** A whole request must arrive within this. */
  http_request_timeout_ms: 10_000,
  /** Bytes of request headers at most (431 beyond). */
  http_header_bytes_max: 16 * 1024,
  /** Open HTTP sockets per listener at most. */
  http_connections_max: 128,

  // Timeline and logs (rotated at a size; the oldest rotated file is dropped).
  /** The timeline file (events.<n>.jsonl) rotates at this size. */
  events_file_bytes_max: 16 * 1024 * 1024,
  /** Rotated timeline files kept besides the current one. */
  events_files_kept: 4,
  /** Bytes of events the controller keeps in memory for `hvlab events`. */
  timeline_memory_bytes_max: 16 * 1024 * 1024,
  /** `hvlab events --follow` clients at once. */
  event_followers_max: 16,
  /** A follower that does not read is cut beyond this many unsent bytes. */
  event_follower_queue_bytes_max: 1024 * 1024,
  /** Each process log rotates at this size. */
  log_file_bytes_max: 16 * 1024 * 1024,
  /** Rotated log files kept per process besides the current one. */
  log_files_kept: 3,

  // Input queues of the protocol machines.
  /** Inputs waiting for one Remote Copy group's machine, from hosts and the operator (and as many from the partner); more are refused HVLAB_E_BACKPRESSURE. */
  rc_group_inputs_queued_max: 1024,
  /** A synchronous write waits this long for the partner's acknowledgement; then the link counts as failed (writes settle by the group's write-error policy). */
  rc_sync_write_timeout_ms: 5_000,
  /** Steps of a host's or the witness's cluster machine waiting for their effects (behind a record write); beyond, peers' messages are dropped as lost and commands refused. */
  cluster_inputs_queued_max: 4096,
}

const limitsSchema = z.strictObject({
  migrations_per_host: z.number().int().min(1).max(16).default(LIMITS_DEFAULT.migrations_per_host),
  migrations_queued_per_host: z.number().int().min(0).max(1024).default(LIMITS_DEFAULT.migrations_queued_per_host),
  incoming_migrations_per_host: z.number().int().min(1).max(16).default(LIMITS_DEFAULT.incoming_migrations_per_host),
  page_diff_threads: z.number().int().min(1).max(64).default(LIMITS_DEFAULT.page_diff_threads),
  resync_groups_per_array: z.number().int().min(1).max(256).default(LIMITS_DEFAULT.resync_groups_per_array),
  block_hash_threads: z.number().int().min(1).max(64).default(LIMITS_DEFAULT.block_hash_threads),
  peer_connections_max: z.number().int().min(4).max(65_536).default(LIMITS_DEFAULT.peer_connections_max),
  unauthenticated_connections_max: z.number().int().min(1).max(4096).default(LIMITS_DEFAULT.unauthenticated_connections_max),
  preauth_bytes_max: z
    .number()
    .int()
    .min(1024)
    .max(1024 * 1024)
    .default(LIMITS_DEFAULT.preauth_bytes_max),
  requests_in_flight_max: z.number().int().min(1).max(65_536).default(LIMITS_DEFAULT.requests_in_flight_max),
  refusal_logs_per_s: z.number().int().min(1).max(10_000).default(LIMITS_DEFAULT.refusal_logs_per_s),
  http_headers_timeout_ms: z.number().int().min(100).max(600_000).default(LIMITS_DEFAULT.http_headers_timeout_ms),
  http_request_timeout_ms: z.number().int().min(100).max(600_000).default(LIMITS_DEFAULT.http_request_timeout_ms),
  http_header_bytes_max: z
    .number()
    .int()
    .min(1024)
    .max(1024 * 1024)
    .default(LIMITS_DEFAULT.http_header_bytes_max),
  http_connections_max: z.number().int().min(4).max(65_536).default(LIMITS_DEFAULT.http_connections_max),
  events_file_bytes_max: z
    .number()
    .int()
    .min(4096)
    .max(2 ** 40)
    .default(LIMITS_DEFAULT.events_file_bytes_max),
  events_files_kept: z.number().int().min(1).max(1000).default(LIMITS_DEFAULT.events_files_kept),
  timeline_memory_bytes_max: z
    .number()
    .int()
    .min(64 * 1024)
    .max(2 ** 32)
    .default(LIMITS_DEFAULT.timeline_memory_bytes_max),
  event_followers_max: z.number().int().min(1).max(1024).default(LIMITS_DEFAULT.event_followers_max),
  event_follower_queue_bytes_max: z
    .number()
    .int()
    .min(64 * 1024)
    .max(2 ** 30)
    .default(LIMITS_DEFAULT.event_follower_queue_bytes_max),
  log_file_bytes_max: z
    .number()
    .int()
    .min(4096)
    .max(2 ** 40)
    .default(LIMITS_DEFAULT.log_file_bytes_max),
  log_files_kept: z.number().int().min(1).max(1000).default(LIMITS_DEFAULT.log_files_kept),
  rc_group_inputs_queued_max: z.number().int().min(16).max(1_000_000).default(LIMITS_DEFAULT.rc_group_inputs_queued_max),
  rc_sync_write_timeout_ms: z.number().int().min(100).max(600_000).default(LIMITS_DEFAULT.rc_sync_write_timeout_ms),
  cluster_inputs_queued_max: z.number().int().min(16).max(1_000_000).default(LIMITS_DEFAULT.cluster_inputs_queued_max),
})

export type Limits = z.infer<typeof limitsSchema>

/** One direction's shaping of a link (shared/transport/link-shaper.ts); a field left out is 0. */
const linkProfile = z.strictObject({
  latency_ms: z.number().min(0).max(LINK_LATENCY_MS_MAX).default(0),
  jitter_ms: z.number().min(0).max(LINK_LATENCY_MS_MAX).default(0),
  mbit: z.number().min(0).max(LINK_MBIT_MAX).default(0),
  loss: z.number().min(0).max(LINK_LOSS_MAX).default(0),
})

/**
 * A Hyper-V host, a cluster member or a standalone one: its name, site and memory for VMs.
 * `recovery_point_every_ms` is a lab acceleration, not a Hyper-V setting: a replica it holds
 * (a standalone replica server's, or a cluster member's of another cluster's VM) takes a
 * recovery point this often (not scaled by timeScale) instead of Hyper-V's hourly one
 * (scaled), so a short lab sees several.
 */
const hyperVHost = z.strictObject({
  name: field.name(),
  site: field.name(),
  memory_mib: z
    .number()
    .int()
    .min(64)
    .max(4 * 1024 * 1024)
    .default(8192),
  recovery_point_every_ms: z.number().int().min(1000).max(3_600_000).optional(),
})

/** A standalone host: a Hyper-V host in no failover cluster, with storage of its own. */
const standaloneHost = hyperVHost.extend({
  /**
   * The organisation that runs this host, when it is not the lab's own (`lab`): a hosting
   * provider's DR host. Its links with the lab's processes run over mutual TLS with
   * certificates of the lab's CA (shared/pki/), never on the lab's secret.
   */
  organisation: field.name().optional(),
})

const placedProcess = z.strictObject({ name: field.name(), site: field.name() })
const quorumSchema = z
  .strictObject({
    model: z.enum(QUORUM_MODELS),
    dynamicQuorum: z.boolean().default(true),
    dynamicWitness: z.boolean().default(true),
  })
  .default({ model: 'node-majority', dynamicQuorum: true, dynamicWitness: true })

/**
 * A failover cluster besides the lab's first (the top-level `hosts`, `witness`, `quorum` and
 * `arrays`): its own members, its own file-share witness and its own storage arrays. Its
 * hosts reach the other clusters' hosts (Hyper-V Replica between clusters) but never their
 * witness or arrays, and no cluster takes commands from another's hosts.
 */
const clusterSchema = z.strictObject({
  name: field.name(),
  hosts: z.array(hyperVHost).min(1).max(CLUSTER_NODES_MAX),
  witness: placedProcess.optional(),
  quorum: quorumSchema,
  arrays: z.array(placedProcess).max(ARRAYS_MAX).default([]),
})

const topologySchema = z.strictObject({
  name: field.name(),
  description: z.string().max(1000).optional(),
  sites: z
    .array(z.strictObject({ name: field.name(), description: z.string().max(200).optional() }))
    .min(1)
    .max(SITES_MAX),
  /** The name of the lab's first failover cluster, whose members are `hosts` (`hvlab --cluster NAME`, `replica enable --to cluster:NAME`). */
  cluster_name: field.name().default(DEFAULT_CLUSTER_NAME),
  /**
   * The first failover cluster's members, and only them: every cluster rule (quorum, roles,
   * CSVs, migration) reads this list — of the process's own cluster (clusterView).
   */
  hosts: z.array(hyperVHost).min(1).max(CLUSTER_NODES_MAX),
  /** Further failover clusters, each with its own members, witness and arrays (a DR site's cluster). */
  clusters: z
    .array(clusterSchema)
    .max(CLUSTERS_MAX - 1)
    .default([]),
  /**
   * Hyper-V hosts that are not cluster members, with storage of their own: a Hyper-V Replica
   * server in a DR site (seed 002). They talk to the cluster's hosts and to each other, never
   * to the arrays or the witness.
   */
  standalone_hosts: z.array(standaloneHost).max(STANDALONE_HOSTS_MAX).default([]),
  arrays: z.array(placedProcess).max(ARRAYS_MAX).default([]),
  witness: placedProcess.optional(),
  quorum: quorumSchema,
  heartbeat: z
    .strictObject({ sameSite: heartbeatProfile, crossSite: heartbeatProfile })
    .default({ sameSite: { interval_ms: 1000, missed_max: 10 }, crossSite: { interval_ms: 1000, missed_max: 20 } }),
  /**
   * The network every link starts with and `hvlab heal` returns to: `lan` between two
   * processes of one site, `wan` between sites (for example 20 ms and 100 Mbit/s). None: clear links.
   */
  network: z.strictObject({ lan: linkProfile.optional(), wan: linkProfile.optional() }).default({}),
  /** Shrinks the long, human-scale intervals (Replica cycles, failover windows). */
  timeScale: z.number().positive().max(1).default(1),
  /** Any limit left out takes its default (LIMITS_DEFAULT). */
  limits: limitsSchema.default(LIMITS_DEFAULT),
})

export type Topology = z.infer<typeof topologySchema>

/** One failover cluster of the topology: its members, witness, quorum model and storage arrays. */
export type ClusterSpec = z.infer<typeof clusterSchema>

export interface ProcessSpec {
  name: string
  role: Role
  site: string
  /** Who runs the process: LAB_ORGANISATION, or a standalone host's own `organisation`. */
  organisation: string
  /** The failover cluster it belongs to (a host, witness or array); null: a standalone host, in none. */
  cluster: string | null
}

/** Every failover cluster of the lab, the first (top-level) one first. */
export function clustersOf(t: Topology): ClusterSpec[] {
  const first = { name: t.cluster_name, hosts: t.hosts, quorum: t.quorum, arrays: t.arrays }
  return [t.witness === undefined ? first : { ...first, witness: t.witness }, ...t.clusters]
}

/**
 * How often a replica kept by `server` takes a recovery point, as the topology accelerates
 * it (undefined: hourly, scaled): a Hyper-V host's own value, or for a cluster's name (a VM
 * replicated to another cluster) its first member's.
 */
export function recoveryPointEveryMsOf(t: Topology, server: string): number | undefined {
  const clusters = clustersOf(t)
  const host = [...clusters.flatMap((c) => c.hosts), ...t.standalone_hosts].find((h) => h.name === server)
  return (host ?? clusters.find((c) => c.name === server)?.hosts[0])?.recovery_point_every_ms
}

/** The cluster named `name`; HVLAB_E_NOT_FOUND with the names there are. */
export function clusterNamed(t: Topology, name: string): ClusterSpec {
  const c = clustersOf(t).find((x) => x.name === name)
  if (c === undefined)
    throw new HvlabError(
      'HVLAB_E_NOT_FOUND',
      `no failover cluster named ${name} in topology ${t.name}; its clusters: ${clustersOf(t)
        .map((x) => x.name)
        .join(', ')}`,
    )
  return c
}

/**
 * The topology as a process of cluster `name` sees it: that cluster's members, witness,
 * quorum and arrays in the top-level fields every cluster rule reads, the rest as it is (the
 * other clusters stay listed in `clusters`, the first one included, for Replica between them).
 */
export function clusterView(t: Topology, name: string): Topology {
  const c = clusterNamed(t, name)
  if (name === t.cluster_name) return t
  const { witness: _witness, ...rest } = t
  const first: ClusterSpec = {
    name: t.cluster_name,
    hosts: t.hosts,
    quorum: t.quorum,
    arrays: t.arrays,
    ...(t.witness ? { witness: t.witness } : {}),
  }
  return {
    ...rest,
    cluster_name: c.name,
    hosts: c.hosts,
    quorum: c.quorum,
    arrays: c.arrays,
    ...(c.witness ? { witness: c.witness } : {}),
    clusters: [first, ...t.clusters.filter((x) => x.name !== name)],
  }
}

/**
 * Validates a parsed topology; `source` names the file in error messages, which list every problem found:
 * the schema's and the cross-field rules' (shared/topology-rules.ts) in one pass.
 */
export function parseTopology(raw: unknown, source = 'topology'): Topology {
  const result = topologySchema.safeParse(raw)
  const schemaProblems = result.success ? [] : result.error.issues.map((i) => issueText(i, raw))
  const problems = [...schemaProblems, ...topologyProblems(raw)]
  if (!result.success || problems.length > 0) throw new HvlabError('HVLAB_E_TOPOLOGY', problemsMessage(source, problems))
  return result.data
}

export function loadTopology(file: string = DEFAULT_TOPOLOGY_FILE): Topology {
  let text: string
  try {
    text = readFileSync(file, 'utf8')
  } catch (e) {
    throw new HvlabError('HVLAB_E_TOPOLOGY', `cannot read topology file ${file}: ${describeError(e)}`)
  }
  let raw: unknown
  try {
    raw = JSON.parse(text)
  } catch (e) {
    const offset = jsonSyntaxErrorOffset(text)
    const pos = offset === undefined ? undefined : positionOf(text, offset)
    const at = pos ? ` at line ${pos.line}, column ${pos.column}` : ''
    throw new HvlabError('HVLAB_E_TOPOLOGY', `${file} is not valid JSON${at}: ${describeError(e)}`)
  }
  return parseTopology(raw, file)
}

/**
 * Every process of the lab in a stable order: the first cluster's hosts, its witness and
 * arrays, then standalone hosts, then each further cluster's (so the order of a lab without
 * them is what it always was).
 */
export function processesOf(t: Topology): ProcessSpec[] {
  const [first, ...more] = clustersOf(t)
  return [
    ...processesOfCluster(first!),
    ...t.standalone_hosts.map((h) => ({
      name: h.name,
      role: 'standalone' as const,
      site: h.site,
      organisation: h.organisation ?? LAB_ORGANISATION,
      cluster: null,
    })),
    ...more.flatMap(processesOfCluster),
  ]
}

function processesOfCluster(c: ClusterSpec): ProcessSpec[] {
  const of = (role: 'host' | 'witness' | 'array', p: { name: string; site: string }): ProcessSpec => ({
    name: p.name,
    role,
    site: p.site,
    organisation: LAB_ORGANISATION,
    cluster: c.name,
  })
  return [...c.hosts.map((h) => of('host', h)), ...(c.witness ? [of('witness', c.witness)] : []), ...c.arrays.map((a) => of('array', a))]
}

export function processSpec(t: Topology, name: string): ProcessSpec {
  const spec = processesOf(t).find((p) => p.name === name)
  if (!spec)
    throw new HvlabError(
      'HVLAB_E_NOT_FOUND',
      `no process named ${name} in topology ${t.name}; known: ${processesOf(t)
        .map((p) => p.name)
        .join(', ')}`,
    )
  return spec
}

/**
 * Which roles talk to each other, both ways (a table, so a new role must be placed here):
 * cluster hosts to everything; arrays to arrays (remote copy); standalone hosts to each
 * other (extended replication, a replica of a replica) but never to the cluster's storage
 * or its witness, as a DR site's own Hyper-V server has no path to either. Across
 * clusters only hosts talk (Replica): a cluster's witness and arrays serve its own hosts.
 */
const TALKS_TO: Readonly<Record<Role, readonly Role[]>> = {
  host: ['host', 'witness', 'array', 'standalone'],
  witness: ['host'],
  array: ['host', 'array'],
  standalone: ['host', 'standalone'],
}

const talks = (a: ProcessSpec, b: ProcessSpec): boolean =>
  TALKS_TO[a.role].includes(b.role) &&
  (a.cluster === b.cluster || a.cluster === null || b.cluster === null || (a.role === 'host' && b.role === 'host'))

/** Every organisation with a process in the lab, the lab's own first. */
export function organisationsOf(t: Topology): string[] {
  return [...new Set([LAB_ORGANISATION, ...processesOf(t).map((p) => p.organisation)])]
}

/** The processes `name` keeps a connection to. */
export function peersOf(t: Topology, name: string): ProcessSpec[] {
  const self = processSpec(t, name)
  return processesOf(t).filter((p) => p.name !== name && talks(self, p))
}

/** The peers of `name` that another organisation runs than its own: the links over mutual TLS. */
export function foreignPeersOf(t: Topology, name: string): ProcessSpec[] {
  const self = processSpec(t, name)
  return peersOf(t, name).filter((p) => p.organisation !== self.organisation)
}

/** The processes with a peer of another organisation: those that need a certificate. */
export function processesWithForeignPeers(t: Topology): ProcessSpec[] {
  return processesOf(t).filter((p) => foreignPeersOf(t, p.name).length > 0)
}

/** Of two peers, the one whose name sorts first dials the other: one connection per pair. */
export const dials = (self: string, peer: string): boolean => self < peer

/**
 * Is `peer` (a connection's proven name and role) a fellow member of the cluster `view` is
 * the view of (clusterView), or with `witness` its witness? A host of another cluster is a
 * host too (Replica between clusters), but no member: it may not command this cluster, nor
 * take part in its membership.
 */
export function isClusterPeer(
  view: Topology,
  peer: { readonly remoteName: string; readonly remoteRole: string },
  witness = false,
): boolean {
  if (peer.remoteRole === 'host') return view.hosts.some((h) => h.name === peer.remoteName)
  return witness && peer.remoteRole === 'witness' && view.witness?.name === peer.remoteName
}

/** The failover cluster host `host` is a member of; null: no cluster host of this lab (a standalone host, an unknown name). */
export function clusterOfHost(t: Topology, host: string): string | null {
  return clustersOf(t).find((c) => c.hosts.some((h) => h.name === host))?.name ?? null
}
