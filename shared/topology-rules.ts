/**
 * The topology's cross-field rules, which the schema alone cannot state: sites declared once,
 * one name per process (cluster host, standalone host, array or witness), every process in a
 * declared site, one name per failover cluster, and in each cluster a witness exactly when
 * its quorum model counts one, in a site without that cluster's hosts.
 *
 * They read the raw file, not the parsed topology, so they run beside the schema and one pass
 * reports both kinds of mistake. Each rule looks only at the parts well-formed enough for it
 * (a process whose name and site are valid names; the declared sites only when every site
 * has a name; the quorum model only when it is one the schema knows) and leaves the rest to
 * the schema's own problems, so a mistake is not reported twice over.
 */
import { CLUSTER_NODES_MAX } from './protocol/cluster-messages.js'
import { field } from './protocol/define.js'
import type { Role } from './protocol/runtime-messages.js'

export const SITES_MAX = 16
export const ARRAYS_MAX = 16
/** Standalone Hyper-V hosts (not cluster members) at most: a few DR sites' replica servers. */
export const STANDALONE_HOSTS_MAX = 8
/** Failover clusters in one lab at most (the first, top-level one among them). */
export const CLUSTERS_MAX = 4
/** The first cluster's name when the topology gives none (`cluster_name`). */
export const DEFAULT_CLUSTER_NAME = 'main'
export const QUORUM_MODELS = ['node-majority', 'node-and-file-share-majority'] as const
export type QuorumModel = (typeof QUORUM_MODELS)[number]
const QUORUM_MODEL_DEFAULT: QuorumModel = 'node-majority'

/** A host, standalone host, array or witness whose name and site are valid names. */
interface PlacedProcess {
  name: string
  role: Role
  site: string
}

/** What the rules can read of one failover cluster. */
interface ClusterParts {
  /** Its name; undefined when it has none the schema takes. */
  name: string | undefined
  /** Its hosts, witness and arrays, malformed ones left out. */
  processes: PlacedProcess[]
  witness_declared: boolean
  /** undefined when the file names a model the schema refuses. */
  quorum_model: QuorumModel | undefined
}

/** What the rules can read from a raw topology, whatever else is wrong with it. */
interface TopologyParts {
  /** The valid site names, in file order, a name given twice listed twice. */
  site_names: string[]
  /** Every declared site name; undefined when some site has none (an unknown site cannot be told then). */
  declared_sites: ReadonlySet<string> | undefined
  /** Hosts first, then the witness, arrays and standalone hosts, as processesOf orders them; malformed ones left out. */
  processes: PlacedProcess[]
  /** The first (top-level) cluster first, then the further ones. */
  clusters: ClusterParts[]
}

/** How a problem names a process of each role. */
const ROLE_NOUN: Readonly<Record<Role, string>> = { host: 'host', witness: 'witness', array: 'array', standalone: 'standalone host' }

const NAME = field.name()
const isName = (value: unknown): value is string => NAME.safeParse(value).success

function recordOf(value: unknown): Record<string, unknown> | undefined {
  return value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined
}

/** The items of a list, at most `max` (the schema refuses a longer one anyway); none if it is not a list. */
function itemsOf(value: unknown, max: number): unknown[] {
  return Array.isArray(value) ? value.slice(0, max) : []
}

function placed(item: unknown, role: Role): PlacedProcess[] {
  const r = recordOf(item)
  return r && isName(r.name) && isName(r.site) ? [{ name: r.name, role, site: r.site }] : []
}

function declaredSites(sites: unknown): Set<string> | undefined {
  if (!Array.isArray(sites) || sites.length > SITES_MAX) return undefined
  const names = sites.map((s) => recordOf(s)?.name)
  return names.every((n) => typeof n === 'string') ? new Set(names as string[]) : undefined
}

function quorumModelOf(quorum: unknown): QuorumModel | undefined {
  if (quorum === undefined) return QUORUM_MODEL_DEFAULT
  const model = recordOf(quorum)?.model
  return QUORUM_MODELS.find((m) => m === model)
}

function clusterParts(c: Record<string, unknown>, name: unknown): ClusterParts {
  return {
    name: isName(name) ? name : undefined,
    processes: [
      ...itemsOf(c.hosts, CLUSTER_NODES_MAX).flatMap((h) => placed(h, 'host')),
      ...placed(c.witness, 'witness'),
      ...itemsOf(c.arrays, ARRAYS_MAX).flatMap((a) => placed(a, 'array')),
    ],
    witness_declared: c.witness !== undefined,
    quorum_model: quorumModelOf(c.quorum),
  }
}

function partsOf(t: Record<string, unknown>): TopologyParts {
  const first = clusterParts(t, t.cluster_name ?? DEFAULT_CLUSTER_NAME)
  const more = itemsOf(t.clusters, CLUSTERS_MAX).flatMap((c) => {
    const r = recordOf(c)
    return r ? [clusterParts(r, r.name)] : []
  })
  const standalone = itemsOf(t.standalone_hosts, STANDALONE_HOSTS_MAX).flatMap((h) => placed(h, 'standalone'))
  return {
    site_names: itemsOf(t.sites, SITES_MAX)
      .map((s) => recordOf(s)?.name)
      .filter(isName),
    declared_sites: declaredSites(t.sites),
    processes: [...first.processes, ...standalone, ...more.flatMap((c) => c.processes)],
    clusters: [first, ...more],
  }
}

function siteProblems(parts: TopologyParts): string[] {
  const seen = new Set<string>()
  const problems: string[] = []
  for (const name of parts.site_names) {
    if (seen.has(name)) problems.push(`site ${name} is declared twice`)
    seen.add(name)
  }
  return problems
}

function processProblems(parts: TopologyParts): string[] {
  const problems: string[] = []
  const names = new Set<string>()
  const sites = parts.declared_sites
  const known = [...new Set(parts.site_names)].join(', ')
  for (const p of parts.processes) {
    if (names.has(p.name))
      problems.push(
        `the name ${p.name} is used by more than one process; every host, standalone host, array and witness needs its own name`,
      )
    names.add(p.name)
    if (sites && !sites.has(p.site))
      problems.push(`${ROLE_NOUN[p.role]} ${p.name} is in unknown site ${p.site}; declare it under "sites" (known: ${known})`)
  }
  return problems
}

function clusterNameProblems(parts: TopologyParts): string[] {
  const seen = new Set<string>()
  const problems: string[] = []
  for (const c of parts.clusters) {
    if (c.name === undefined) continue
    if (seen.has(c.name))
      problems.push(
        `the cluster name ${c.name} is used twice; every failover cluster needs its own (\`cluster_name\`, \`clusters[].name\`)`,
      )
    seen.add(c.name)
  }
  return problems
}

function witnessProblems(c: ClusterParts, several: boolean): string[] {
  const of = several && c.name !== undefined ? ` (cluster ${c.name})` : ''
  const problems: string[] = []
  if (c.quorum_model === 'node-and-file-share-majority' && !c.witness_declared)
    problems.push(`quorum model node-and-file-share-majority${of} needs a "witness" (name and site, ideally a third site)`)
  if (c.quorum_model === 'node-majority' && c.witness_declared)
    problems.push(
      `a witness is declared${of} but the quorum model is node-majority; use node-and-file-share-majority or remove the witness`,
    )
  const witness = c.processes.find((p) => p.role === 'witness')
  if (witness && c.processes.some((p) => p.role === 'host' && p.site === witness.site))
    problems.push(`the witness${of} shares site ${witness.site} with hosts; put it in a third site so it can arbitrate between the others`)
  return problems
}

/** The cross-field problems of a raw topology, in a stable order; none for a file that is not an object. */
export function topologyProblems(raw: unknown): string[] {
  const t = recordOf(raw)
  if (!t) return []
  const parts = partsOf(t)
  const several = parts.clusters.length > 1
  return [
    ...siteProblems(parts),
    ...processProblems(parts),
    ...clusterNameProblems(parts),
    ...parts.clusters.flatMap((c) => witnessProblems(c, several)),
  ]
}
