/**
 * The options of `hvlab events`, each checked as it is parsed: a bad one is a usage error
 * (HVLAB_E_USAGE, exit 2) that names the option and says what it takes. The --kind items
 * are checked against the declared kinds when the command runs (resolveKinds): the kinds
 * come with the timeline's schemas, which every other command starts without.
 */
import { HvlabError } from '../../shared/errors.js'

/** A name as processes and VMs are named (shared/protocol/define.ts `field.name`). */
const NAME_PATTERN = /^[a-z0-9][a-z0-9._-]{0,62}$/

const usage = (message: string): HvlabError => new HvlabError('HVLAB_E_USAGE', message)

/** The kinds' families with their dot, e.g. `cluster.`, `role.`. */
export function eventFamilies(kinds: readonly string[]): string[] {
  return [...new Set(kinds.map((k) => k.slice(0, k.indexOf('.') + 1)))].sort()
}

/** One --kind item: an exact kind, or a family given as `cluster.` or `cluster`. */
function kindItem(item: string, kinds: readonly string[]): string {
  if (kinds.includes(item)) return item
  const family = item.endsWith('.') ? item : `${item}.`
  const families = eventFamilies(kinds)
  if (families.includes(family)) return family
  throw usage(
    `--kind ${item}: no event kind or family of that name; give a kind such as cluster.node-down, or a family: ${families.join(' ')}`,
  )
}

/** --kind K, repeatable, each a comma list: the items so far, as given (resolveKinds checks them). */
export function parseKinds(value: string, previous: readonly string[] = []): string[] {
  const items = value
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
  if (items.length === 0) throw usage('--kind needs a kind or a family, e.g. --kind cluster. or --kind process.crashed,peer.lost')
  return [...previous, ...items]
}

/** The --kind items as kinds and families (`cluster` becomes `cluster.`); an item that is neither is a usage error. */
export function resolveKinds(items: readonly string[], kinds: readonly string[]): string[] {
  return items.map((item) => kindItem(item, kinds))
}

/** --vm NAME or --source NAME: a name as the lab gives them. */
export const parseName =
  (option: '--vm' | '--source') =>
  (value: string): string => {
    if (NAME_PATTERN.test(value)) return value
    throw usage(`${option} ${JSON.stringify(value.slice(0, 80))}: a name is 1–63 of a-z 0-9 . _ - starting with a letter or digit`)
  }

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }
/** An ISO 8601 date, with a time and a zone or not: 2026-01-31, 2026-01-31T10:00:00Z, 2026-01-31T10:00:00.123+01:00. */
const ISO_TIME = /^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d{1,3})?)?(Z|[+-]\d{2}:\d{2})?)?$/

/** --since T: a duration back from `now_ms` (5m, 30s, 2h, 1d, 500ms) or an ISO time; the time in ms since the epoch. */
export function parseSince(value: string, now_ms: number): number {
  const ago = /^(\d{1,9})(ms|s|m|h|d)$/.exec(value)
  if (ago) return now_ms - Number(ago[1]) * UNIT_MS[ago[2]!]!
  const at_ms = ISO_TIME.test(value) ? Date.parse(value) : NaN
  if (Number.isFinite(at_ms)) return at_ms
  throw usage(
    `--since ${JSON.stringify(value.slice(0, 80))}: give a duration back from now (30s, 5m, 2h, 1d) or an ISO time (2026-01-31T10:00:00Z)`,
  )
}

/** An integer option within bounds, e.g. --tail N (from 1) or --after SEQ (from 0). */
export const parseCount =
  (option: string, min: number, max = Number.MAX_SAFE_INTEGER) =>
  (value: string): number => {
    const n = /^\d{1,16}$/.test(value) ? Number(value) : NaN
    if (Number.isSafeInteger(n) && n >= min && n <= max) return n
    throw usage(`${option} ${JSON.stringify(value.slice(0, 80))}: give a whole number from ${min} to ${max}`)
  }

/** --source: one of the lab's processes or `lab` (the controller), when the lab's topology is known. */
export function checkSource(source: string, processes: readonly string[] | undefined): void {
  if (processes === undefined || source === 'lab' || processes.includes(source)) return
  throw usage(`--source ${source}: the lab has no process of that name; known: lab ${processes.join(' ')}`)
}
