/**
 * How VM roles and node pauses live in the replicated cluster database: one entry per
 * role (`role/NAME` → the role as JSON, its reason shortened to fit the value limit) and
 * `node/NAME/state` = `paused` for a paused node. A damaged entry is skipped with a
 * warning rather than stopping the coordinator.
 */
import { CONFIG_VALUE_CHARS_MAX, vmRoleSchema, type VmRoleRecord } from '../../shared/protocol/cluster-messages.js'
import { isPausedRecord, pausedKey, type PausedRecord } from './cluster-status.js'
import type { VmRole } from './vm-role.js'

export const ROLE_KEY_PREFIX = 'role/'
/** Reasons are cut to this in the database (the full one is on the timeline). */
export const STORED_REASON_CHARS_MAX = 240

export function roleKey(name: string): string {
  return `${ROLE_KEY_PREFIX}${name}`
}

/**
 * The database value of a role: its reason is cut to STORED_REASON_CHARS_MAX, and further
 * when the record would not fit otherwise, then its oldest restarts, then its oldest
 * failovers are left out (the failure counters then undercount); throws if even that would not fit (too many owners).
 */
export function encodeRole(role: VmRole): string {
  let reason_chars = STORED_REASON_CHARS_MAX
  let kept = role
  for (;;) {
    const value = JSON.stringify({ ...kept, reason: shortened(role.reason, reason_chars) })
    if (value.length <= CONFIG_VALUE_CHARS_MAX) return value
    if (reason_chars === 0 && kept.failures !== undefined && kept.failures.restarts.length > 0) {
      kept = { ...kept, failures: { ...kept.failures, restarts: kept.failures.restarts.slice(1) } }
      continue
    }
    // A role allowed more failovers than its record holds (vm set --failover-threshold) counts the newest that fit.
    if (reason_chars === 0 && kept.failures !== undefined && kept.failures.failovers_ms.length > 0) {
      kept = { ...kept, failures: { ...kept.failures, failovers_ms: kept.failures.failovers_ms.slice(1) } }
      continue
    }
    if (reason_chars === 0) {
      throw new Error(
        `vm ${role.name}: its record is ${value.length} characters; the cluster database holds at most ${CONFIG_VALUE_CHARS_MAX} per entry (list fewer owners)`,
      )
    }
    reason_chars = Math.max(0, Math.min(reason_chars - 1, reason_chars - (value.length - CONFIG_VALUE_CHARS_MAX)))
  }
}

function shortened(reason: string, chars: number): string {
  if (reason.length <= chars) return reason
  return chars === 0 ? '' : `${reason.slice(0, chars - 1)}…`
}

/**
 * A role record as the role controller uses it. Older records lack fields added since; each
 * has its default: `storage` local (null), `stop_cause` unknown and `migration` none (absent),
 * `priority` medium, `anti_affinity` none and `failures` none (absent).
 */
export function toVmRole(r: VmRoleRecord): VmRole {
  const { stop_cause, migration, ...rest } = r
  return {
    ...rest,
    failback: { enabled: r.failback.enabled, window: r.failback.window && { ...r.failback.window } },
    storage: r.storage ?? null,
    ...(stop_cause === undefined ? {} : { stop_cause }),
    ...(migration === undefined ? {} : { migration: { to: migration.to, op: migration.op } }),
  }
}

export interface DecodedRoles {
  roles: VmRole[]
  paused: string[]
  /** What each paused node's key holds (a drain under way, or how the last one ended). */
  paused_records: Record<string, PausedRecord>
  /** Entries that could not be read, with why (for a warning). */
  damaged: { key: string; reason: string }[]
}

/** Every role and paused node in a database's entries. */
export function decodeRoles(config: Readonly<Record<string, string>>): DecodedRoles {
  const out: DecodedRoles = { roles: [], paused: [], paused_records: {}, damaged: [] }
  for (const [key, value] of Object.entries(config).sort(([a], [b]) => (a < b ? -1 : 1))) {
    if (key.startsWith('node/') && key.endsWith('/state')) {
      const node = key.slice('node/'.length, -'/state'.length)
      if (isPausedRecord(value) && key === pausedKey(node)) {
        out.paused.push(node)
        out.paused_records[node] = value
      }
      continue
    }
    if (!key.startsWith(ROLE_KEY_PREFIX)) continue
    const r = decodeRoleEntry(key, value)
    if (typeof r === 'string') out.damaged.push({ key, reason: r })
    else out.roles.push(r)
  }
  return out
}

/** Role `name` as a database's entries hold it; null when it has none, or a damaged one. */
export function decodeRole(config: Readonly<Record<string, string>>, name: string): VmRole | null {
  const key = roleKey(name)
  const value = Object.hasOwn(config, key) ? config[key] : undefined
  if (value === undefined) return null
  const r = decodeRoleEntry(key, value)
  return typeof r === 'string' ? null : r
}

/** One role entry; a string says why it cannot be read. */
function decodeRoleEntry(key: string, value: string): VmRole | string {
  let raw: unknown
  try {
    raw = JSON.parse(value)
  } catch {
    return 'not JSON'
  }
  const r = vmRoleSchema.safeParse(raw)
  if (!r.success) return r.error.issues[0]?.message ?? 'invalid'
  if (roleKey(r.data.name) !== key) return 'name does not match its key'
  return toVmRole(r.data)
}
