/**
 * The CLI's requests in the user's words: wire message types (`role-command-request`,
 * `cluster-force-quorum-request`) never reach the person at the terminal. A request the CLI
 * built is checked against its schema before it is sent, and a bad field is reported as
 * the argument it came from ("the VM name \"Web 1\" is not valid: a name is 1–63 …"); a
 * process that does not answer a request (HVLAB_E_UNSUPPORTED: the wrong kind of process)
 * is reported as the command and the kind of process it takes, with the lab's processes of
 * that kind.
 */
import type { z } from 'zod'
import { HvlabError } from '../../shared/errors.js'
import { messageDef, type Message, type MessageType } from '../../shared/protocol/messages.js'
import type { Role } from '../../shared/protocol/runtime-messages.js'

/** The command a request carries out and the kind of process that answers it. */
interface RequestWords {
  command: string
  takes: Role
}

/** Every request type the CLI sends to one named process (by type). */
export const REQUEST_WORDS: Partial<Record<MessageType, RequestWords>> = {
  'cluster-force-quorum-request': { command: 'cluster force-quorum', takes: 'host' },
  'cluster-status-request': { command: 'cluster status', takes: 'host' },
  'role-command-request': { command: 'vm', takes: 'host' },
  'role-list-request': { command: 'vm list', takes: 'host' },
  'vm-inspect-request': { command: 'vm inspect', takes: 'host' },
  'vm-hang-request': { command: 'vm hang', takes: 'host' },
  'vm-load-request': { command: 'vm load', takes: 'host' },
  'replica-server-enable-request': { command: 'replica server enable', takes: 'standalone' },
  'vm-migrate-cancel-request': { command: 'vm migrate-cancel', takes: 'host' },
  'vm-migrate-command-request': { command: 'vm migrate', takes: 'host' },
  'vm-migration-status-request': { command: 'vm migrate', takes: 'host' },
  'csv-create-request': { command: 'csv create', takes: 'host' },
  'csv-list-request': { command: 'csv list', takes: 'host' },
  'csv-move-request': { command: 'csv move', takes: 'host' },
  'csv-read-request': { command: 'csv read', takes: 'host' },
  'csv-write-request': { command: 'csv write', takes: 'host' },
  'csv-region-request': { command: 'csv allocate/release', takes: 'host' },
  'csv-state-request': { command: 'csv list', takes: 'host' },
  'rc-status-request': { command: 'rcopy status', takes: 'array' },
  'block-digest-request': { command: 'array read', takes: 'array' },
  'volume-list': { command: 'array volume list', takes: 'array' },
}

/** What a field of a request is to the user, by its key (the last one of its path). */
const FIELD_WORDS: Readonly<Record<string, string>> = {
  vm: 'VM name',
  node: 'host name',
  host: 'host name',
  to: 'host name',
  preferred_owners: 'preferred owner',
  volume: 'volume name',
  group: 'group name',
  csv: 'CSV name',
  array: 'array name',
  memory_mib: 'memory (MiB)',
}

/** Where a request names something other than with these words: a role command's `name` is its VM's. */
const NAME_IN: Partial<Record<MessageType, string>> = { 'role-command-request': 'VM name' }

function valueAt(message: unknown, path: readonly PropertyKey[]): unknown {
  let at = message
  for (const key of path) at = at !== null && typeof at === 'object' ? (at as Record<PropertyKey, unknown>)[key] : undefined
  return at
}

/** One bad field as the user gave it: `the VM name "Web 1" is not valid: a name is 1–63 …`. */
function fieldProblem(message: Message, issue: z.core.$ZodIssue): string {
  const key = [...issue.path].reverse().find((k): k is string => typeof k === 'string') ?? 'value'
  const words = (key === 'name' ? NAME_IN[message.t] : undefined) ?? FIELD_WORDS[key] ?? key.replace(/_/g, ' ')
  const value = valueAt(message, issue.path)
  const shown = value === undefined ? '' : ` ${JSON.stringify(value)?.slice(0, 80)}`
  return `the ${words}${shown} is not valid: ${issue.message}`
}

/** Throws a usage error in the user's words when `message` would not pass the receiver's check. */
export function checkOutgoingRequest(message: Message): void {
  const def = messageDef(message.t)
  const result = def?.schema.safeParse(message)
  if (!result || result.success) return
  throw new HvlabError('HVLAB_E_USAGE', result.error.issues.map((i) => fieldProblem(message, i)).join('; '))
}

/** What a process of each role is, in the user's words: "standalone" alone does not say it is a Hyper-V host. */
const ROLE_WORDS: Readonly<Record<Role, string>> = {
  host: 'host',
  witness: 'witness',
  array: 'array',
  standalone: 'standalone Hyper-V host',
}

const article = (word: string): string => (/^[aeiou]/.test(word) ? `an ${word}` : `a ${word}`)

/**
 * A refusal of `process` to answer `type` (HVLAB_E_UNSUPPORTED) as the command and the
 * kind of process it takes, with the lab's processes of that kind (`lab`: name and role of each).
 */
export function wrongProcessError(
  process: string,
  type: MessageType,
  lab: readonly { name: string; role: Role }[] | undefined,
): HvlabError | undefined {
  const words = REQUEST_WORDS[type]
  if (!words) return undefined
  const role = lab?.find((p) => p.name === process)?.role
  const is = role === undefined ? 'does not answer it' : `is ${article(ROLE_WORDS[role])}`
  const takers = (lab ?? []).filter((p) => p.role === words.takes).map((p) => p.name)
  const known = takers.length ? `: ${takers.join(', ')}` : ''
  return new HvlabError(
    'HVLAB_E_USAGE',
    `${process} ${is}, not ${article(words.takes === 'host' ? 'host (a cluster node)' : words.takes)}; \`hvlab ${words.command}\` takes ${article(words.takes)}${known}`,
  )
}
