/**
 * Which cluster node coordinates a CSV (owns its metadata), as a pure decision on the
 * cluster's view. A CSV whose coordinator is still a member keeps it. Otherwise the new
 * one is a surviving member, preferring members in the array's site (they have the
 * shortest path to the LUN), and among those the first after the old coordinator in name
 * order (wrapping around), so takeovers spread over the nodes instead of piling onto one.
 * Every node that evaluates it on the same view gets the same answer. A coordinator node
 * that lost its own path to the array asks the others in the same order
 * (coordinatorCandidates) and hands the CSV to the first that has one.
 */

export interface CsvOwnership {
  name: string
  owner: string
  /** The site of the CSV's array, or null if unknown. */
  array_site: string | null
}

export interface CoordinatorMove {
  csv: string
  from: string
  to: string
}

/**
 * The members other than `owner` in the order they would take a CSV over: those in the
 * array's site first, each group in name order starting after `owner` (wrapping around).
 */
export function coordinatorCandidates(
  owner: string,
  array_site: string | null,
  members: readonly string[],
  siteOf: (node: string) => string | undefined,
): string[] {
  const sorted = [...new Set(members)].filter((m) => m !== owner).sort()
  const after = sorted.findIndex((m) => m > owner)
  const cyclic = after < 0 ? sorted : [...sorted.slice(after), ...sorted.slice(0, after)]
  const local = array_site === null ? [] : cyclic.filter((m) => siteOf(m) === array_site)
  return [...local, ...cyclic.filter((m) => !local.includes(m))]
}

/** The node that should coordinate a CSV in a view of `members`; null when there is no member at all. */
export function chooseCoordinator(
  owner: string,
  array_site: string | null,
  members: readonly string[],
  siteOf: (node: string) => string | undefined,
): string | null {
  if (members.includes(owner)) return owner
  return coordinatorCandidates(owner, array_site, members, siteOf)[0] ?? null
}

/** The coordinator moves a view of `members` calls for, in CSV name order. */
export function coordinatorMoves(
  csvs: readonly CsvOwnership[],
  members: readonly string[],
  siteOf: (node: string) => string | undefined,
): CoordinatorMove[] {
  const moves: CoordinatorMove[] = []
  for (const c of [...csvs].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
    const to = chooseCoordinator(c.owner, c.array_site, members, siteOf)
    if (to !== null && to !== c.owner) moves.push({ csv: c.name, from: c.owner, to })
  }
  return moves
}
