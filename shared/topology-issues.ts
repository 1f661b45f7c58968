/**
 * A topology's problems as a person reads them: every problem at once, each at a path
 * whose list items are named by their `name` where they have one (`hosts[host-a1].memory_mib`,
 * else `hosts[0].name`), an unknown key named as such; one problem on one line, several as
 * a list under the file's name.
 */
import type { z } from 'zod'

/** A name usable in a path: what a topology name may look like, not arbitrary text. */
const PATH_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/

/** `path` with list items named by their `name` in `raw`: hosts[host-a1].memory_mib, quorum.model, (top level). */
export function issuePath(path: readonly PropertyKey[], raw: unknown): string {
  let out = ''
  let at: unknown = raw
  for (const key of path) {
    const item = at !== null && typeof at === 'object' ? (at as Record<PropertyKey, unknown>)[key] : undefined
    if (typeof key === 'number') {
      const name = item !== null && typeof item === 'object' ? (item as { name?: unknown }).name : undefined
      out += `[${typeof name === 'string' && PATH_NAME.test(name) ? name : key}]`
    } else out += `${out ? '.' : ''}${String(key)}`
    at = item
  }
  return out || '(top level)'
}

/** One schema issue: where, and what is wrong there. */
export function issueText(issue: z.core.$ZodIssue, raw: unknown): string {
  const where = issuePath(issue.path, raw)
  if (issue.code === 'unrecognized_keys')
    return `${where}: unrecognized key${issue.keys.length > 1 ? 's' : ''} ${issue.keys.join(', ')} (misspelt, or not a setting of this version)`
  return `${where}: ${issue.message}`
}

const EXAMPLE = 'see topologies/two-site.json for a valid example'

/** The message of a topology error: `source` and its problems, with where to look for a valid one. */
export function problemsMessage(source: string, problems: readonly string[]): string {
  if (problems.length === 1) return `${source}: ${problems[0]}; ${EXAMPLE}`
  return `${source}: ${problems.length} problems (${EXAMPLE}):\n${problems.map((p) => `  - ${p}`).join('\n')}`
}
