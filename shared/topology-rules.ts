/**
 * The topology's cross-field rules, which the schema alone cannot state: sites declared once,
 * one name per process (cluster host, standalone host, array or witness), every process in a
 * declared site, a witness exactly when the quorum model counts one, and the witness in a
 * site without cluster hosts.
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
export const QUORUM_MODELS = ['node-majority', 'node-and-file-share-majority'] as const
export type QuorumModel = (typeof QUORUM_MODELS)[number]
const QUORUM_MODEL_DEFAULT: QuorumModel = 'node-majority'

/** A host, standalone host, array or witness whose name and site are valid names. */
interface PlacedProcess {
  name: string
  role: Role
  site: string
}

/** What the rules can read from a raw topology, whatever else is wrong with it. */
interface TopologyParts {
  /** The valid site names, in file order, a name given twice listed twice. */
  site_names: string[]
  /** Every declared site name; undefined when some site has none (an unknown site cannot be told then). */
  declared_sites: ReadonlySet<string> | undefined
  /** Hosts first, then the witness, arrays and standalone hosts, as processesOf orders them; malformed ones left out. */
  processes: PlacedProcess[]
  witness_declared: boolean
  /** undefined when the file names a model the schema refuses. */
  quorum_model: QuorumModel | undefined
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

function partsOf(t: Record<string, unknown>): TopologyParts {
  return {
    site_names: itemsOf(t.sites, SITES_MAX)
      .map((s) => recordOf(s)?.name)
      .filter(isName),
    declared_sites: declaredSites(t.sites),
    processes: [
      ...itemsOf(t.hosts, CLUSTER_NODES_MAX).flatMap((h) => placed(h, 'host')),
      ...placed(t.witness, 'witness'),
      ...itemsOf(t.arrays, ARRAYS_MAX).flatMap((a) => placed(a, 'array')),
      ...itemsOf(t.standalone_hosts, STANDALONE_HOSTS_MAX).flatMap((h) => placed(h, 'standalone')),
    ],
    witness_declared: t.witness !== undefined,
    quorum_model: quorumModelOf(t.quorum),
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

function witnessProblems(parts: TopologyParts): string[] {
  const problems: string[] = []
  if (parts.quorum_model === 'node-and-file-share-majority' && !parts.witness_declared)
    problems.push('quorum model node-and-file-share-majority needs a "witness" (name and site, ideally a third site)')
  if (parts.quorum_model === 'node-majority' && parts.witness_declared)
    problems.push('a witness is declared but the quorum model is node-majority; use node-and-file-share-majority or remove the witness')
  const witness = parts.processes.find((p) => p.role === 'witness')
  if (witness && parts.processes.some((p) => p.role === 'host' && p.site === witness.site))
    problems.push(`the witness shares site ${witness.site} with hosts; put it in a third site so it can arbitrate between the others`)
  return problems
}

/** The cross-field problems of a raw topology, in a stable order; none for a file that is not an object. */
export function topologyProblems(raw: unknown): string[] {
  const t = recordOf(raw)
  if (!t) return []
  const parts = partsOf(t)
  return [...siteProblems(parts), ...processProblems(parts), ...witnessProblems(parts)]
}
