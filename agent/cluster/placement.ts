/**
 * Where a role should run. A node qualifies only if it is a possible owner, Up (not
 * Paused, not Down) and has enough free memory. Qualifying nodes are ranked:
 *   1. anti-affinity: nodes that hold no role of the role's anti-affinity class first
 *      (WSFC AntiAffinityClassNames: a soft rule, broken only when nothing else fits);
 *   2. its preferred owners in their order (the operator's explicit choice), then the others;
 *   3. site: when the role leaves a node (drain, failover), nodes of that node's site before
 *      the other sites' among equally ranked ones (WSFC's site-aware failover affinity);
 *   4. least loaded first (used/capacity, then name), so placement is deterministic.
 * Also: the drain plan of a paused node (higher priority first) and the failback plan. Pure.
 */
import { byPriority, isPossibleOwner, type VmRole } from './vm-role.js'

export type NodeStatus = 'up' | 'paused' | 'down'

export interface NodeView {
  readonly name: string
  readonly status: NodeStatus
  /** Memory available to VMs on this host. */
  readonly memory_mib: number
  /** Its site (absent: site-less, as in tests that do not care). */
  readonly site?: string
}

/** What placement weighs besides the nodes: where the role comes from, and the anti-affinity classes on each node. */
export interface PlacementContext {
  /** The site of the node the role leaves: its nodes go first. Absent or null: no site preference. */
  readonly home_site?: string | null
  /** Anti-affinity classes of the roles on (or promised to) each node. */
  readonly classes_on?: ReadonlyMap<string, ReadonlySet<string>>
}

/** Memory in use (or promised to a pending start) per node. */
export type NodeLoad = ReadonlyMap<string, number>

export type Placement = { readonly ok: true; readonly node: string } | { readonly ok: false; readonly reason: string }

type PlaceableRole = Pick<VmRole, 'name' | 'memory_mib' | 'preferred_owners' | 'possible_owners' | 'priority' | 'anti_affinity'>

/** Sum of the memory of the roles on each node (starting, running or stopping there). */
export function loadOf(roles: Iterable<{ memory_mib: number; node: string | null }>): Map<string, number> {
  const load = new Map<string, number>()
  for (const r of roles) {
    if (r.node !== null) load.set(r.node, (load.get(r.node) ?? 0) + r.memory_mib)
  }
  return load
}

export function freeMemoryMib(node: NodeView, load: NodeLoad): number {
  return node.memory_mib - (load.get(node.name) ?? 0)
}

/** Why `node` cannot take `role` now, or null if it can. Written for people. */
export function refusal(role: PlaceableRole, node: NodeView | undefined, load: NodeLoad, nodeName?: string): string | null {
  if (node === undefined) return `${nodeName ?? 'that host'} is not a node of this cluster`
  if (!isPossibleOwner(role, node.name)) return `${node.name} is not a possible owner of vm ${role.name}`
  if (node.status === 'paused') return `${node.name} is paused; resume it or pick another host`
  if (node.status === 'down') return `${node.name} is down; pick another host`
  const free = freeMemoryMib(node, load)
  if (free < role.memory_mib) {
    return `${node.name} has ${Math.max(0, free)} MiB free and vm ${role.name} needs ${role.memory_mib} MiB; stop or move a vm there, or pick another host`
  }
  return null
}

/**
 * The node for `role`. `avoid` is tried only when no other node qualifies (the node a
 * role just failed on). Returns why not when no node qualifies.
 */
export function chooseNode(
  role: PlaceableRole,
  nodes: readonly NodeView[],
  load: NodeLoad,
  avoid: string | null = null,
  context: PlacementContext = {},
): Placement {
  const ordered = rankNodes(
    role,
    nodes.filter((n) => refusal(role, n, load) === null),
    load,
    context,
  )
  const pick = ordered.find((n) => n.name !== avoid) ?? ordered[0]
  if (pick !== undefined) return { ok: true, node: pick.name }
  return { ok: false, reason: noNodeReason(role, nodes, load) }
}

/** `fitting` in the order placement tries them (see the file's comment). */
function rankNodes(role: PlaceableRole, fitting: readonly NodeView[], load: NodeLoad, context: PlacementContext): NodeView[] {
  const conflict = (n: NodeView): number => {
    const cls = role.anti_affinity
    return cls != null && context.classes_on?.get(n.name)?.has(cls) === true ? 1 : 0
  }
  const away = (n: NodeView): number => (context.home_site != null && n.site !== context.home_site ? 1 : 0)
  const rank = (n: NodeView): number => {
    const i = role.preferred_owners.indexOf(n.name)
    return i === -1 ? role.preferred_owners.length : i
  }
  return [...fitting].sort((a, b) => conflict(a) - conflict(b) || rank(a) - rank(b) || away(a) - away(b) || lessLoaded(a, b, load))
}

/** A node's load as a fraction, compared exactly (a·d vs c·b); ties by name. */
function lessLoaded(a: NodeView, b: NodeView, load: NodeLoad): number {
  const ua = load.get(a.name) ?? 0
  const ub = load.get(b.name) ?? 0
  const diff = ua * b.memory_mib - ub * a.memory_mib
  if (diff !== 0) return diff
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0
}

function noNodeReason(role: PlaceableRole, nodes: readonly NodeView[], load: NodeLoad): string {
  const possible = nodes.filter((n) => isPossibleOwner(role, n.name))
  if (possible.length === 0) return `no node of the cluster is a possible owner of vm ${role.name}`
  const up = possible.filter((n) => n.status === 'up')
  if (up.length === 0) return `no possible owner of vm ${role.name} is up (${possible.map((n) => `${n.name} ${n.status}`).join(', ')})`
  const most = Math.max(...up.map((n) => freeMemoryMib(n, load)))
  return `no up node has ${role.memory_mib} MiB free for vm ${role.name} (the most free is ${Math.max(0, most)} MiB); stop a vm or add memory`
}

export interface PlannedMove {
  readonly role: string
  readonly from: string
  readonly to: string
}

export interface MovePlan {
  readonly moves: readonly PlannedMove[]
  /** Roles that must stay where they are, with why. */
  readonly stuck: ReadonlyArray<{ readonly role: string; readonly reason: string }>
}

/**
 * Where to move the `roles` running on `node` (paused for maintenance): to nodes of its
 * site first. Higher priority first, then biggest, then by name, each placement counting
 * the memory (and anti-affinity class) of the ones before it.
 */
export function planDrain(
  node: string,
  roles: ReadonlyArray<PlaceableRole & { owner: string | null }>,
  nodes: readonly NodeView[],
  load: NodeLoad,
  classes_on: ReadonlyMap<string, ReadonlySet<string>> = new Map(),
): MovePlan {
  const tentative = new Map(load)
  const classes = new Map([...classes_on].map(([n, set]) => [n, new Set(set)]))
  const moves: PlannedMove[] = []
  const stuck: Array<{ role: string; reason: string }> = []
  const candidates = nodes.filter((n) => n.name !== node)
  const home_site = nodes.find((n) => n.name === node)?.site ?? null
  const draining = roles
    .filter((r) => r.owner === node)
    .sort((a, b) => priorityRank(a, b) || b.memory_mib - a.memory_mib || (a.name < b.name ? -1 : 1))
  for (const role of draining) {
    const placement = chooseNode(role, candidates, tentative, null, { home_site, classes_on: classes })
    if (!placement.ok) {
      stuck.push({ role: role.name, reason: placement.reason })
      continue
    }
    tentative.set(placement.node, (tentative.get(placement.node) ?? 0) + role.memory_mib)
    if (role.anti_affinity != null) classes.set(placement.node, (classes.get(placement.node) ?? new Set()).add(role.anti_affinity))
    moves.push({ role: role.name, from: node, to: placement.node })
  }
  return { moves, stuck }
}

/** High before medium before low before none (names are not compared). */
function priorityRank(a: PlaceableRole, b: PlaceableRole): number {
  return byPriority({ name: '', priority: a.priority }, { name: '', priority: b.priority })
}

/** The anti-affinity classes of the roles on (or promised to) each node. */
export function classesOn(roles: Iterable<{ anti_affinity?: string | null; node: string | null }>): Map<string, Set<string>> {
  const out = new Map<string, Set<string>>()
  for (const r of roles) {
    if (r.node === null || r.anti_affinity == null) continue
    out.set(r.node, (out.get(r.node) ?? new Set()).add(r.anti_affinity))
  }
  return out
}

/**
 * Failback: each role (already filtered to those allowed to fail back now) goes to its
 * most preferred Up owner with room, if that owner ranks before its current node.
 * Roles are taken in name order; each move counts against the target's memory.
 */
export function planFailback(
  roles: ReadonlyArray<PlaceableRole & { owner: string | null }>,
  nodes: readonly NodeView[],
  load: NodeLoad,
): MovePlan {
  const tentative = new Map(load)
  const moves: PlannedMove[] = []
  const stuck: Array<{ role: string; reason: string }> = []
  const byName = new Map(nodes.map((n) => [n.name, n]))
  for (const role of [...roles].sort((a, b) => (a.name < b.name ? -1 : 1))) {
    const from = role.owner
    if (from === null) continue
    const rank = role.preferred_owners.indexOf(from)
    const better = rank === -1 ? role.preferred_owners : role.preferred_owners.slice(0, rank)
    const target = better.find((name) => refusal(role, byName.get(name), tentative) === null)
    if (target === undefined) {
      if (better.length > 0) stuck.push({ role: role.name, reason: `no preferred owner ranked above ${from} is up with room` })
      continue
    }
    tentative.set(target, (tentative.get(target) ?? 0) + role.memory_mib)
    moves.push({ role: role.name, from, to: target })
  }
  return { moves, stuck }
}

/** Failback after `resume --failback`: the roles drained from `node` go back to it if they fit. */
export function planReturn(
  node: string,
  roles: ReadonlyArray<PlaceableRole & { owner: string | null }>,
  nodes: readonly NodeView[],
  load: NodeLoad,
): MovePlan {
  const tentative = new Map(load)
  const moves: PlannedMove[] = []
  const stuck: Array<{ role: string; reason: string }> = []
  const target = nodes.find((n) => n.name === node)
  for (const role of [...roles].sort((a, b) => b.memory_mib - a.memory_mib || (a.name < b.name ? -1 : 1))) {
    if (role.owner === null || role.owner === node) continue
    const why = refusal(role, target, tentative, node)
    if (why !== null) {
      stuck.push({ role: role.name, reason: why })
      continue
    }
    tentative.set(node, (tentative.get(node) ?? 0) + role.memory_mib)
    moves.push({ role: role.name, from: role.owner, to: node })
  }
  return { moves, stuck }
}
