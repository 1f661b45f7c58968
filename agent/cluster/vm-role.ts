/**
 * A clustered VM role: the record the cluster keeps for one highly available VM (its
 * name, memory, preferred and possible owners, failback setting) and the state it is in.
 *
 * States (WSFC's group states in the lab's words):
 *   stopped  — not running anywhere, and the operator wants it off.
 *   pending  — should run, but no node can take it now (none Up, or no memory left).
 *   starting — a start was sent to `owner`; waiting for its confirmation.
 *   running  — `owner` confirmed it runs.
 *   stopping — a stop was sent to `owner`; waiting for its confirmation.
 *   failed   — the failover policy gave up; it stays off until the operator starts it.
 *
 * Invariant: `owner` is set exactly while the role is starting, running or stopping —
 * the only states in which the VM may exist on a node (and uses that node's memory).
 */
import { HvlabError } from '../../shared/errors.js'
import {
  ROLE_FAILOVER_PERIOD_H_MAX,
  ROLE_FAILOVER_PERIOD_H_MIN,
  ROLE_FAILOVER_THRESHOLD_MAX,
} from '../../shared/protocol/cluster-limits.js'
import {
  ROLE_PRIORITIES,
  type GuestLoadSetting,
  type VmRoleRecord,
  type VmStorageSpecRecord,
} from '../../shared/protocol/cluster-messages.js'
import { REPLICA_BROKER_ROLE } from '../../shared/protocol/replica-limits.js'
import type { ReplicaBrokerSettings, ReplicationSetting } from '../../shared/protocol/replica-messages.js'
import { vmDiskCount } from '../clx/disk-target.js'
import type { FailureHistory } from './failover-policy.js'

export const ROLE_STATES = ['stopped', 'pending', 'starting', 'running', 'stopping', 'failed'] as const
export type RoleState = (typeof ROLE_STATES)[number]

/** Limits on a role's definition. */
export const ROLE_LIMITS = {
  memory_mib_min: 32,
  memory_mib_max: 4 * 1024 * 1024, // 4 TiB, Hyper-V's per-VM maximum under 2022
  owners_max: 64, // WSFC's node limit
} as const

const NAME_PATTERN = /^[a-z0-9][a-z0-9._-]{0,62}$/

/** Failback to the most preferred owner: off by default; `window` is hours of the day. */
export interface FailbackSetting {
  enabled: boolean
  /** null = fail back at any hour; otherwise [start_hour, end_hour) hours of the day in UTC (the same on every host), may wrap midnight. */
  window: { start_hour: number; end_hour: number } | null
}

export const FAILBACK_OFF: FailbackSetting = Object.freeze({ enabled: false, window: null })

/** WSFC's priority: high, medium, low order starts and failovers; none = No Auto Start (not started after a failure). */
export type RolePriority = (typeof ROLE_PRIORITIES)[number]
export const DEFAULT_PRIORITY: RolePriority = 'medium'

/** The priority of a role (records without one: medium). */
export function priorityOf(role: Pick<VmRole, 'priority'>): RolePriority {
  return role.priority ?? DEFAULT_PRIORITY
}

/** Sorts roles high → low (none last), then by name: the order in which several roles are placed. */
export function byPriority(a: Pick<VmRole, 'name' | 'priority'>, b: Pick<VmRole, 'name' | 'priority'>): number {
  const rank = ROLE_PRIORITIES.indexOf(priorityOf(a)) - ROLE_PRIORITIES.indexOf(priorityOf(b))
  return rank !== 0 ? rank : a.name < b.name ? -1 : a.name > b.name ? 1 : 0
}

/**
 * Why a role's owner was asked to stop it (recorded while it is stopping, so a new
 * coordinator knows what the stop was for):
 *   operator — `vm stop`: it stays stopped;
 *   move     — `vm move` without live migration: stop here, start there;
 *   drain / failback — a planned move (pause --drain, failback) by stop-then-start;
 *   policy   — the failover policy after a failure (restart, fail over, or fail).
 */
export type StopCause = NonNullable<VmRoleRecord['stop_cause']>

/** A live or quick migration asked of the owner: to `to`, where the VM runs as start `op`. */
export interface RoleMigration {
  readonly to: string
  readonly op: number
}

export interface VmRole {
  readonly name: string
  readonly memory_mib: number
  /** Nodes to try first, in order. */
  readonly preferred_owners: readonly string[]
  /** Nodes allowed to host it; null = every node of the cluster. */
  readonly possible_owners: readonly string[] | null
  readonly failback: FailbackSetting
  readonly state: RoleState
  /** The node the VM is on (starting, running or stopping there); null otherwise. */
  readonly owner: string | null
  /** The last node it ran on, for `vm list` after it stopped or failed. */
  readonly last_owner: string | null
  /** Why it is in its state (e.g. why it failed or is pending), for people only: code never reads it back. */
  readonly reason: string
  /**
   * Why its owner was asked to stop it: present only while it is stopping (a record
   * without it — none, or written before causes were recorded — reads as unknown).
   */
  readonly stop_cause?: StopCause
  /** The migration under way (it stays running on its owner meanwhile): present only while one is. */
  readonly migration?: RoleMigration
  /** Its disk (agent/clx/vm-storage.ts); absent or null: local to the host (no storage to fail over). */
  readonly storage?: VmStorageSpecRecord | null
  /** Absent: medium. */
  readonly priority?: RolePriority
  /** Its anti-affinity class (WSFC AntiAffinityClassNames); absent or null: none. */
  readonly anti_affinity?: string | null
  /** WSFC FailoverThreshold: failovers within its period; absent or null: the cluster's policy (nodes − 1). */
  readonly failover_threshold?: number | null
  /** WSFC FailoverPeriod, hours; absent: the cluster's policy (6). */
  readonly failover_period_h?: number
  /** Restarts and failovers within the policy's windows; absent: none (kept in the record for the next coordinator). */
  readonly failures?: FailureHistory
  /** The guest load `vm load` set, applied at every start (a restarted guest runs its applications again); absent: idle. */
  readonly load?: GuestLoadSetting
  /** Hyper-V Replica (`hvlab replica enable`): whichever host runs the VM replicates it; absent: not replicated. */
  readonly replication?: ReplicationSetting
  /** The cluster's Replica Broker role (REPLICA_BROKER_ROLE) only: its settings (`hvlab replica server enable cluster`). */
  readonly replica_broker?: ReplicaBrokerSettings
}

export interface VmRoleSpec {
  name: string
  memory_mib?: number
  preferred_owners?: readonly string[]
  possible_owners?: readonly string[] | null
  failback?: FailbackSetting
  /** The disk provisioned for it before the create (null: local). */
  storage?: VmStorageSpecRecord | null
  priority?: RolePriority
  anti_affinity?: string | null
}

/** What `vm set` may change; an absent field keeps its value. */
export interface VmRoleChanges {
  preferred_owners?: readonly string[]
  priority?: RolePriority
  failback?: FailbackSetting
  anti_affinity?: string | null
  memory_mib?: number
  /** null: back to the cluster's policy. */
  failover_threshold?: number | null
  failover_period_h?: number
  /** Merged into the role's load: what `vm load` changed. */
  load?: GuestLoadSetting
  /** `replica enable` sets it, `replica disable` (null) removes it. */
  replication?: ReplicationSetting | null
  /** `replica server enable cluster`: the Replica Broker's settings (that role only). */
  replica_broker?: ReplicaBrokerSettings
}

export const DEFAULT_MEMORY_MIB = 1024

/**
 * Refuses a VM that no host it may run on could ever hold (HVLAB_E_REFUSED: the cluster
 * refuses it at once rather than leave it pending for ever; the message names the
 * largest such host). `hosts`: the cluster's hosts with their memory for VMs.
 */
export function checkFitsAHost(
  spec: Pick<VmRoleSpec, 'name' | 'memory_mib' | 'possible_owners'>,
  hosts: Iterable<{ name: string; memory_mib: number }>,
  verb = 'create',
): void {
  const memory_mib = spec.memory_mib ?? DEFAULT_MEMORY_MIB
  const eligible = [...hosts].filter(
    (h) => spec.possible_owners == null || spec.possible_owners.length === 0 || spec.possible_owners.includes(h.name),
  )
  const largest = eligible.reduce<{ name: string; memory_mib: number } | undefined>(
    (a, h) => (a === undefined || h.memory_mib > a.memory_mib ? h : a),
    undefined,
  )
  if (largest === undefined || largest.memory_mib >= memory_mib) return
  throw new HvlabError(
    'HVLAB_E_REFUSED',
    `cannot ${verb} vm ${spec.name}: it needs ${memory_mib} MiB and the largest host it may run on (${largest.name}) has ${largest.memory_mib} MiB; give it --memory-mib ${largest.memory_mib} or less`,
  )
}

/** Builds a stopped role from a create request; throws HVLAB_E_USAGE with what to fix. `verb` names the command in messages. */
export function createVmRole(spec: VmRoleSpec, verb = 'create'): VmRole {
  const name = spec.name
  if (typeof name !== 'string' || !NAME_PATTERN.test(name)) {
    throw usage(`invalid vm name ${JSON.stringify(name)}: use 1–63 of a-z 0-9 . _ - starting with a letter or digit`)
  }
  const what = `cannot ${verb} vm ${name}`
  const memory_mib = spec.memory_mib ?? DEFAULT_MEMORY_MIB
  if (!Number.isInteger(memory_mib) || memory_mib < ROLE_LIMITS.memory_mib_min || memory_mib > ROLE_LIMITS.memory_mib_max) {
    throw usage(
      `${what}: --memory-mib must be a whole number from ${ROLE_LIMITS.memory_mib_min} to ${ROLE_LIMITS.memory_mib_max}, got ${memory_mib}`,
    )
  }
  const preferred_owners = checkOwnerList(what, 'preferred', spec.preferred_owners ?? [])
  const possible_owners = spec.possible_owners == null ? null : checkOwnerList(what, 'possible', spec.possible_owners)
  checkOwnersAgree(what, preferred_owners, possible_owners)
  const failback = checkFailback(what, spec.failback ?? FAILBACK_OFF)
  const storage = spec.storage ?? null
  if (storage?.kind === 'replicated') {
    const owners = possible_owners ?? []
    const unserved = owners.filter((n) => !storage.hosts.includes(n))
    if (unserved.length > 0)
      throw usage(
        `${what}: its disk ${storage.volume} is not presented to possible owner ${unserved.join(', ')}; leave that host out or present the volume to it`,
      )
  }
  return {
    name,
    memory_mib,
    preferred_owners,
    possible_owners,
    failback,
    state: 'stopped',
    owner: null,
    last_owner: null,
    reason: 'created',
    storage,
    ...checkPlacementHints(what, spec),
  }
}

/**
 * The role with `changes` applied (`vm set`), checked exactly as a create checks them;
 * state, owner, storage and failure counters stay. Throws HVLAB_E_USAGE with what to fix.
 */
export function changeVmRole(role: VmRole, changes: VmRoleChanges): VmRole {
  const checked = createVmRole(
    {
      name: role.name,
      memory_mib: changes.memory_mib ?? role.memory_mib,
      preferred_owners: changes.preferred_owners ?? role.preferred_owners,
      possible_owners: role.possible_owners,
      failback: changes.failback ?? role.failback,
      storage: role.storage ?? null,
      priority: changes.priority ?? priorityOf(role),
      anti_affinity: changes.anti_affinity === undefined ? (role.anti_affinity ?? null) : changes.anti_affinity,
    },
    'change',
  )
  const { memory_mib, preferred_owners, failback, priority, anti_affinity } = checked
  checkBrokerChanges(role.name, changes)
  checkReplicatedDisks(role, changes.replication)
  const { replication, ...kept } = role
  return {
    ...kept,
    memory_mib,
    preferred_owners,
    failback,
    priority: priority ?? DEFAULT_PRIORITY,
    anti_affinity: anti_affinity ?? null,
    ...failoverLimitsChanged(role, changes),
    ...(changes.load === undefined ? {} : { load: { ...role.load, ...changes.load } }),
    ...replicationAfter(replication, changes.replication),
    ...(changes.replica_broker === undefined ? {} : { replica_broker: changes.replica_broker }),
  }
}

/** Only the Replica Broker's role keeps broker settings, and it replicates nothing itself. */
function checkBrokerChanges(name: string, changes: VmRoleChanges): void {
  if (changes.replica_broker !== undefined && name !== REPLICA_BROKER_ROLE)
    throw usage(
      `vm ${name} is not the cluster's Replica Broker (${REPLICA_BROKER_ROLE}): \`hvlab replica server enable cluster\` sets its settings`,
    )
  if (changes.replication != null && name === REPLICA_BROKER_ROLE)
    throw usage(`${REPLICA_BROKER_ROLE} is the cluster's Replica Broker, not a VM to replicate`)
}

/** `replica enable --disks` names disks the VM has. */
function checkReplicatedDisks(role: VmRole, replication: ReplicationSetting | null | undefined): void {
  const n = vmDiskCount(role.storage)
  const missing = replication?.disks?.find((k) => k >= n)
  if (missing !== undefined)
    throw usage(
      `vm ${role.name} has ${n} disk(s), 0–${n - 1}; it has no disk ${missing} to replicate (\`hvlab vm deps ${role.name}\` lists them)`,
    )
}

/** The role's replication after a change: kept (undefined), set, or removed (null). */
function replicationAfter(now: ReplicationSetting | undefined, change: ReplicationSetting | null | undefined): Pick<VmRole, 'replication'> {
  const after = change === undefined ? now : (change ?? undefined)
  return after === undefined ? {} : { replication: after }
}

/** The role's own failover threshold and period after `changes`, checked (WSFC FailoverThreshold, FailoverPeriod). */
function failoverLimitsChanged(role: VmRole, changes: VmRoleChanges): Pick<VmRole, 'failover_threshold' | 'failover_period_h'> {
  const threshold = changes.failover_threshold === undefined ? role.failover_threshold : changes.failover_threshold
  const period_h = changes.failover_period_h ?? role.failover_period_h
  const what = `cannot change vm ${role.name}`
  if (threshold != null && (!Number.isInteger(threshold) || threshold < 0 || threshold > ROLE_FAILOVER_THRESHOLD_MAX))
    throw usage(`${what}: the failover threshold must be a whole number from 0 to ${ROLE_FAILOVER_THRESHOLD_MAX}, got ${threshold}`)
  if (
    period_h !== undefined &&
    (!Number.isInteger(period_h) || period_h < ROLE_FAILOVER_PERIOD_H_MIN || period_h > ROLE_FAILOVER_PERIOD_H_MAX)
  )
    throw usage(
      `${what}: the failover period must be a whole number of hours from ${ROLE_FAILOVER_PERIOD_H_MIN} to ${ROLE_FAILOVER_PERIOD_H_MAX}, got ${period_h}`,
    )
  return {
    ...(threshold === undefined ? {} : { failover_threshold: threshold }),
    ...(period_h === undefined ? {} : { failover_period_h: period_h }),
  }
}

function checkOwnersAgree(what: string, preferred_owners: readonly string[], possible_owners: readonly string[] | null): void {
  if (possible_owners === null) return
  if (possible_owners.length === 0) throw usage(`${what}: possible owners is empty; name at least one host or leave it out`)
  const outside = preferred_owners.filter((n) => !possible_owners.includes(n))
  if (outside.length > 0) {
    throw usage(`${what}: preferred owner ${outside.join(', ')} is not a possible owner; add it to the possible owners or drop it`)
  }
}

/** Priority and anti-affinity class, when given (a record leaves out what was never set). */
function checkPlacementHints(
  what: string,
  spec: Pick<VmRoleSpec, 'priority' | 'anti_affinity'>,
): Pick<VmRole, 'priority' | 'anti_affinity'> {
  const { priority, anti_affinity } = spec
  if (priority !== undefined && !ROLE_PRIORITIES.includes(priority)) {
    throw usage(`${what}: priority must be one of ${ROLE_PRIORITIES.join(', ')}, got ${JSON.stringify(priority)}`)
  }
  if (anti_affinity != null && (typeof anti_affinity !== 'string' || !NAME_PATTERN.test(anti_affinity))) {
    throw usage(
      `${what}: anti-affinity class ${JSON.stringify(anti_affinity)} must be 1–63 of a-z 0-9 . _ - starting with a letter or digit`,
    )
  }
  return {
    ...(priority === undefined ? {} : { priority }),
    ...(anti_affinity === undefined ? {} : { anti_affinity }),
  }
}

/** True if `node` may host the role. */
export function isPossibleOwner(role: Pick<VmRole, 'possible_owners'>, node: string): boolean {
  return role.possible_owners === null || role.possible_owners.includes(node)
}

/** States in which the VM may exist on its owner (and uses its memory). */
export function isOnNode(state: RoleState): boolean {
  return state === 'starting' || state === 'running' || state === 'stopping'
}

const ALLOWED: Readonly<Record<RoleState, readonly RoleState[]>> = {
  stopped: ['starting', 'pending'],
  pending: ['starting', 'stopped', 'failed'],
  starting: ['running', 'stopping', 'pending'],
  running: ['stopping', 'pending'],
  stopping: ['stopped', 'pending', 'failed'],
  failed: ['starting', 'pending', 'stopped'],
}

/**
 * The role in its next state. `owner` must be given for starting/running/stopping and
 * must be null otherwise. A role on a node may only change node by leaving it first
 * (through stopped/pending/failed), which is what keeps a VM on one node at a time.
 * `stop_cause`: why, when it goes to stopping. A change of state ends any migration and
 * clears the stop cause of a previous stop.
 * Throws HVLAB_E_INTERNAL on a transition the lifecycle does not allow (a bug).
 */
export function transition(role: VmRole, to: RoleState, owner: string | null, reason: string, stop_cause?: StopCause): VmRole {
  if (!ALLOWED[role.state].includes(to)) {
    throw new HvlabError('HVLAB_E_INTERNAL', `vm ${role.name}: ${role.state} → ${to} is not a valid role transition (${reason})`)
  }
  if (isOnNode(to) !== (owner !== null)) {
    throw new HvlabError(
      'HVLAB_E_INTERNAL',
      `vm ${role.name}: state ${to} ${owner === null ? 'needs an owner' : `cannot have owner ${owner}`}`,
    )
  }
  if (isOnNode(role.state) && isOnNode(to) && role.owner !== owner) {
    throw new HvlabError(
      'HVLAB_E_INTERNAL',
      `vm ${role.name}: cannot go from ${role.state} on ${role.owner} to ${to} on ${owner} without leaving ${role.owner} first`,
    )
  }
  const last_owner = owner ?? role.owner ?? role.last_owner
  const { stop_cause: _stopped_for, migration: _migrating, ...rest } = role
  return { ...rest, state: to, owner, last_owner, reason, ...(to === 'stopping' && stop_cause !== undefined ? { stop_cause } : {}) }
}

/** The role with its migration recorded (`migration` null: none under way). */
export function withMigration(role: VmRole, migration: RoleMigration | null, reason: string): VmRole {
  const { migration: _was, ...rest } = role
  return migration === null ? { ...rest, reason } : { ...rest, reason, migration: { to: migration.to, op: migration.op } }
}

function checkOwnerList(what: string, kind: string, list: readonly string[]): readonly string[] {
  if (!Array.isArray(list)) throw usage(`${what}: ${kind} owners must be a list of host names`)
  if (list.length > ROLE_LIMITS.owners_max) {
    throw usage(`${what}: ${list.length} ${kind} owners is more than the ${ROLE_LIMITS.owners_max} a cluster can have`)
  }
  const seen = new Set<string>()
  for (const node of list) {
    if (typeof node !== 'string' || !NAME_PATTERN.test(node)) {
      throw usage(`${what}: ${kind} owner ${JSON.stringify(node)} is not a host name`)
    }
    if (seen.has(node)) throw usage(`${what}: ${kind} owner ${node} is listed twice`)
    seen.add(node)
  }
  return Object.freeze([...list])
}

function checkFailback(what: string, failback: FailbackSetting): FailbackSetting {
  const w = failback.window
  if (w !== null) {
    for (const h of [w.start_hour, w.end_hour]) {
      if (!Number.isInteger(h) || h < 0 || h > 23) {
        throw usage(`${what}: failback window hours must be whole hours 0–23, got ${h}`)
      }
    }
    if (w.start_hour === w.end_hour) {
      throw usage(`${what}: failback window ${w.start_hour}–${w.end_hour} is empty; leave the window out to fail back at any hour`)
    }
  }
  return { enabled: failback.enabled === true, window: w === null ? null : { ...w } }
}

function usage(message: string): HvlabError {
  return new HvlabError('HVLAB_E_USAGE', message)
}
