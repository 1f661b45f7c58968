/**
 * Cluster Extension (CLX): what to do with a VM's remote-copy group before the VM starts
 * on a host — PURE (no I/O, no clock).
 *
 * Input: the group's status as each array reports it (or that the array could not be
 * reached), which array is in the starting host's site ("local") and which is not
 * ("remote"), and whether the operator forces.
 *
 *   local array unreachable / group unknown there      → refuse (never forceable)
 *   local copy Primary or Primary-Rev, and the remote
 *   array reachable holding it as a source too:
 *     local failed over last (higher generation)       → none (the newest copy; the array fences the stale one)
 *     else                                             → refuse 'both-primary' (this copy is the stale one; never
 *                                                        forceable: `hvlab rcopy recover` on the other side first)
 *   local copy Primary or Primary-Rev                  → none (already writable; a move within a site lands here)
 *   local copy secondary, remote array reachable, remote copy a source:
 *     arrays linked, started, every volume Synced,
 *     nothing behind                                   → switchover (run on the remote array:
 *                                                        `switchover` from Primary, `restore` from Primary-Rev)
 *     any volume Syncing                               → refuse 'syncing' (a force is refused too)
 *     New / NotSynced / Stale / Stopped, group stopped,
 *     or the arrays cannot reach each other            → refuse; forced → failover on the local array
 *                                                        (stopping the group on the remote first while it
 *                                                        still replicates to us)
 *   local copy secondary, remote array unreachable (the primary site's array is lost):
 *     local array still linked to its partner          → refuse 'primary-linked' (the primary is alive;
 *                                                        only this host cannot reach it — never forceable)
 *     every local volume NotSynced (consistent at its
 *     last sync point)                                 → failover on the local array
 *     a volume Syncing                                 → refuse 'syncing' (a force is refused too)
 *     a volume New / Stale / Stopped                   → refuse; forced → failover (force) on the local array
 *   local copy secondary, remote copy not a source     → refuse 'no-source' (a role change is under way; retry)
 */
import type { RcGroupStatus } from '../../shared/protocol/storage-messages.js'

export type ArrayView =
  | {
      readonly array: string
      readonly reachable: true
      /** undefined: the array has no such group. */ readonly status: RcGroupStatus | undefined
    }
  | { readonly array: string; readonly reachable: false; readonly error: string }

export interface ClxDecisionInput {
  readonly vm: string
  readonly group: string
  /** The host that will run the VM, and its site. */
  readonly host: string
  readonly host_site: string
  /** The array in the host's site, and the other one. */
  readonly local: ArrayView
  readonly remote: ArrayView
  readonly force: boolean
  /** What the copy is made writable for (default start): it words the refusal and its remedy (only a start can be forced). */
  readonly operation?: ClxOperation
  /** Total bytes of the group's volumes, when known (for "73% synced"). */
  readonly group_bytes?: number
}

/** What CLX decides for: a VM start (the operator may force it), or a move that must find the group Synced. */
export type ClxOperation = 'start' | 'live-migration' | 'quick-migration'

/** "cannot start vm web1 on host-b1" / "cannot quick-migrate vm web1 to host-b1". */
function cannotText(input: ClxDecisionInput): string {
  const op = input.operation ?? 'start'
  if (op === 'start') return `cannot start vm ${input.vm} on ${input.host}`
  return `cannot ${op === 'live-migration' ? 'live-migrate' : 'quick-migrate'} vm ${input.vm} to ${input.host}`
}

/** What clears a refusal of a move (it cannot be forced): the command that fixes the group's state. */
function moveRemedy(reason: ClxRefusalReason, group: string): string {
  if (reason === 'stopped') return `start it with \`hvlab rcopy start ${group}\`, then move the VM again`
  if (reason === 'arrays-split')
    return `restore the link between the arrays (\`hvlab heal\` ends a partition), wait until \`hvlab rcopy status ${group}\` shows Synced, then move the VM again`
  return `wait until \`hvlab rcopy status ${group}\` shows Synced, then move the VM again`
}

export type ClxRefusalReason =
  | 'local-array-unreachable'
  | 'group-unknown'
  | 'syncing'
  | 'new'
  | 'not-synced'
  | 'stale'
  | 'stopped'
  | 'arrays-split'
  | 'primary-linked'
  | 'no-source'
  | 'both-primary'

export type ClxDecision =
  | { readonly action: 'none'; readonly array: string; readonly why: string }
  | {
      readonly action: 'switchover'
      readonly run_on: string
      readonly verb: 'switchover' | 'restore'
      readonly local_array: string
      readonly why: string
    }
  | {
      readonly action: 'failover'
      readonly run_on: string
      readonly force: boolean
      /** Stop the group on this array first (it still replicates to the local one). */
      readonly stop_first_on?: string
      readonly why: string
    }
  | { readonly action: 'refuse'; readonly reason: ClxRefusalReason; readonly forceable: boolean; readonly message: string }

type VolumeState = RcGroupStatus['volumes'][number]['state']

const isSource = (role: RcGroupStatus['role']): boolean => role === 'primary' || role === 'primary-rev'

/** The worst volume state of a group, in the order that matters to CLX. */
export function worstVolumeState(status: RcGroupStatus): VolumeState | undefined {
  const order: VolumeState[] = ['Syncing', 'New', 'Stale', 'Stopped', 'NotSynced', 'Synced']
  for (const s of order) if (status.volumes.some((v) => v.state === s)) return s
  return undefined
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`
  if (n < 1024 ** 2) return `${(n / 1024).toFixed(1)} KiB`
  if (n < 1024 ** 3) return `${(n / 1024 ** 2).toFixed(1)} MiB`
  return `${(n / 1024 ** 3).toFixed(1)} GiB`
}

/** "73%, 1.1 MiB behind" — or just the bytes when the group's size is unknown. */
function progress(bytes_behind: number, group_bytes: number | undefined): string {
  if (group_bytes === undefined || group_bytes <= 0) return `${formatBytes(bytes_behind)} behind`
  const pct = Math.max(0, Math.min(99, Math.floor((100 * (group_bytes - bytes_behind)) / group_bytes)))
  return `${pct}%, ${formatBytes(bytes_behind)} behind`
}

export function decideClx(input: ClxDecisionInput): ClxDecision {
  const { vm, group, local, remote } = input
  const cannot = cannotText(input)
  if (!local.reachable) {
    return refuse(
      'local-array-unreachable',
      false,
      `${cannot}: array ${local.array} in its site (${input.host_site}) is unreachable (${local.error}), so remote copy group ${group} cannot be made writable there; restore the path to ${local.array}, or start the VM in the other site`,
    )
  }
  const l = local.status
  if (!l) {
    return refuse(
      'group-unknown',
      false,
      `${cannot}: array ${local.array} has no remote copy group ${group}; check the VM's storage (hvlab vm deps ${vm}) and hvlab rcopy status`,
    )
  }
  if (isSource(l.role)) {
    const r = remote.reachable ? remote.status : undefined
    if (r !== undefined && isSource(r.role) && l.generation > r.generation) {
      // Both writable after a failover while the arrays were cut off: this copy failed over
      // last, so it is the newest (the array fences the other; auto_recover resyncs it).
      return {
        action: 'none',
        array: local.array,
        why: `array ${local.array} holds the newest writable copy of ${group} (${l.role}, generation ${l.generation}; ${remote.array}'s ${r.role} copy is stale and fenced until recovered)`,
      }
    }
    if (r !== undefined && isSource(r.role)) {
      return refuse(
        'both-primary',
        false,
        `${cannot}: arrays ${local.array} (${l.role}) and ${remote.array} (${r.role}) both hold remote copy group ${group} as a writable copy — a failover happened while they were cut off, and writes on either may be lost; keep one with \`hvlab rcopy recover ${group}\` on the Primary-Rev side (the other becomes its secondary), then retry`,
      )
    }
    return { action: 'none', array: local.array, why: `array ${local.array} already holds the writable copy of ${group} (${l.role})` }
  }
  return remote.reachable ? withRemote(input, l, remote) : remoteLost(input, l, remote)
}

/** The local copy is a secondary and the remote array answered. */
function withRemote(input: ClxDecisionInput, l: RcGroupStatus, remote: Extract<ArrayView, { reachable: true }>): ClxDecision {
  const { group, host, local, force } = input
  const cannot = cannotText(input)
  const starting = (input.operation ?? 'start') === 'start'
  const r = remote.status
  if (!r) {
    return refuse(
      'group-unknown',
      false,
      `${cannot}: array ${remote.array} has no remote copy group ${group}, though array ${local.array} holds its secondary copy; check hvlab rcopy status on both arrays`,
    )
  }
  if (!isSource(r.role)) {
    return refuse(
      'no-source',
      false,
      `${cannot}: neither array holds a writable copy of remote copy group ${group} (${local.array}: ${l.role}, ${remote.array}: ${r.role}); a role change is probably under way — retry in a moment, or check hvlab rcopy status`,
    )
  }
  const state = worstVolumeState(r)
  if (state === 'Syncing') {
    return refuse(
      'syncing',
      false,
      `${cannot}: remote copy group ${group} is syncing (${progress(r.bytes_behind, input.group_bytes)}); wait until it is Synced${starting ? ` — a force is refused while the copy on ${local.array} is a secondary that is still being written` : ''}`,
    )
  }
  const failover: ClxDecision = {
    action: 'failover',
    run_on: local.array,
    force: true,
    ...(r.started && r.link_up ? { stop_first_on: remote.array } : {}),
    why: `forced by the operator: remote copy group ${group} was not in sync; data written on ${remote.array} since the last sync is not on ${local.array}`,
  }
  const orForce = (reason: ClxRefusalReason, what: string): ClxDecision => {
    if (!starting) return refuse(reason, false, `${cannot}: remote copy group ${group} ${what}; ${moveRemedy(reason, group)}`)
    return force
      ? failover
      : refuse(
          reason,
          true,
          `${cannot}: remote copy group ${group} ${what}; ${host} would run it on stale data. Fix the replication and wait for Synced, or force (the copy on ${local.array} is used as it is, and later writes on ${remote.array} are lost)`,
        )
  }
  if (!r.link_up)
    return orForce(
      'arrays-split',
      `is not replicating: arrays ${remote.array} and ${local.array} cannot reach each other (${formatBytes(r.bytes_behind)} behind)`,
    )
  if (!r.started) return orForce('stopped', `is stopped on ${remote.array}`)
  if (state === 'New') return orForce('new', `has volumes that never completed a first sync`)
  // In sync mode a write on its way to the partner is not acknowledged to the host yet, so it
  // counts in bytes_behind without making the group out of sync (the array's switchover drains
  // it before swapping roles); in periodic mode bytes behind are data the secondary lacks.
  const behind = r.mode === 'sync' ? 0 : r.bytes_behind
  if (state === 'NotSynced' || state === 'Stale' || state === 'Stopped' || behind > 0) {
    return orForce(
      state === 'Stale' ? 'stale' : state === 'Stopped' ? 'stopped' : 'not-synced',
      `is not in sync (${state ?? 'no volumes'}, ${formatBytes(r.bytes_behind)} behind)`,
    )
  }
  if (state === undefined) return orForce('new', 'has no volumes yet')
  return {
    action: 'switchover',
    run_on: remote.array,
    verb: r.role === 'primary' ? 'switchover' : 'restore',
    local_array: local.array,
    why: `planned move of ${group} from ${remote.array} to ${local.array}: both arrays healthy and Synced`,
  }
}

/** The local copy is a secondary and the remote array (the primary's) did not answer. */
function remoteLost(input: ClxDecisionInput, l: RcGroupStatus, remote: Extract<ArrayView, { reachable: false }>): ClxDecision {
  const { vm, group, host, local, force } = input
  const cannot = cannotText(input)
  if (l.link_up) {
    return refuse(
      'primary-linked',
      false,
      `${cannot}: ${host} cannot reach array ${remote.array} (${remote.error}), but array ${local.array} is still linked to it, so the primary copy of ${group} is alive; restore ${host}'s path to ${remote.array} and retry, or start the VM in ${remote.array}'s site`,
    )
  }
  const state = worstVolumeState(l)
  if (state === 'Syncing') {
    return refuse(
      'syncing',
      false,
      `${cannot}: the copy of remote copy group ${group} on ${local.array} is a secondary that is still syncing; a force is refused while it is being written`,
    )
  }
  const failover = (forced: boolean, why: string): ClxDecision => ({ action: 'failover', run_on: local.array, force: forced, why })
  if (state === 'NotSynced' || state === 'Synced') {
    return failover(
      false,
      `array ${remote.array} (the primary of ${group}) is lost: ${remote.error}; the copy on ${local.array} is consistent at its last sync`,
    )
  }
  const what =
    state === 'New'
      ? `never completed a first sync on ${local.array}`
      : state === 'Stale'
        ? `was in the middle of a resync on ${local.array} when array ${remote.array} was lost (the copy is older than the primary's)`
        : state === 'Stopped'
          ? `was stopped before array ${remote.array} was lost (the copy on ${local.array} may be far behind)`
          : `has no volumes`
  if (force) return failover(true, `forced by the operator: array ${remote.array} is lost and group ${group} ${what}`)
  const reason: ClxRefusalReason = state === 'New' || state === undefined ? 'new' : state === 'Stale' ? 'stale' : 'stopped'
  return refuse(
    reason,
    true,
    `${cannot}: array ${remote.array} is lost (${remote.error}) and remote copy group ${group} ${what}; force to start the VM on this copy anyway`,
  )
}

function refuse(reason: ClxRefusalReason, forceable: boolean, message: string): ClxDecision {
  return { action: 'refuse', reason, forceable, message }
}
