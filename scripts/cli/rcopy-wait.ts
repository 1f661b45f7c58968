/**
 * What a remote-copy verb promises and how `hvlab rcopy VERB` sees it kept: from every
 * array's status of the group (roles, started, each volume's state, last sync), the state
 * the verb leads to — start: started and every volume Synced; stop: stopped; sync: a delta
 * cycle completed after the request (its last sync moved past the one the reply showed,
 * no volume Syncing); failover: this side Primary-Rev; recover: the partner Secondary-Rev
 * and every volume Synced; restore: the natural roles back, Synced; reverse: both sides
 * swapped (this side as the reply showed it, the partner its counterpart, and this side
 * has heard so); switchover: the roles swapped (this side Secondary-Rev).
 * A sync with nothing to send (the reply shows no cycle and nothing behind) is a no-op.
 * reverse has none: it always swaps.
 */
import type { RC_VERBS, RcGroupStatus } from '../../shared/protocol/storage-messages.js'
import type { GroupView } from './rcopy-status-format.js'
import { type WaitStep, done, failed, waiting } from './wait-for.js'

/** The verbs that wait for their outcome: all of them. */
export type WaitingVerb = (typeof RC_VERBS)[number]
type Role = RcGroupStatus['role']

/** Where a verb ran and the group as that array replied to it (right after the verb). */
export interface VerbAccepted {
  array: string
  status: RcGroupStatus
}

const sideOf = (views: readonly GroupView[], array: string, group: string): RcGroupStatus | undefined =>
  views.find((v) => v.array === array)?.groups.find((g) => g.group === group)

const allSynced = (s: RcGroupStatus): boolean => s.volumes.every((v) => v.state === 'Synced')
const anySyncing = (s: RcGroupStatus): boolean => s.volumes.some((v) => v.state === 'Syncing')
const isSource = (role: Role): boolean => role === 'primary' || role === 'primary-rev'

/** The role the partner has when this side has `role`. */
const COUNTERPART: Record<Role, Role> = {
  primary: 'secondary',
  secondary: 'primary',
  'primary-rev': 'secondary-rev',
  'secondary-rev': 'primary-rev',
}
const ROLE_NAME: Record<Role, string> = {
  primary: 'Primary',
  secondary: 'Secondary',
  'primary-rev': 'Primary-Rev',
  'secondary-rev': 'Secondary-Rev',
}

/** How a side looks, for the timeout message: "array-a primary, started, link up, volumes vm1-disk0 Syncing". */
function describeSide(array: string, s: RcGroupStatus | undefined): string {
  if (s === undefined) return `${array}: no answer`
  const vols = s.volumes.map((v) => `${v.volume} ${v.state}`).join(', ') || 'none'
  return `${array} ${s.role}, ${s.started ? 'started' : 'stopped'}, link ${s.link_up ? 'up' : 'down'}, volumes ${vols}`
}

/** A verb that had nothing to do, from the reply to it: what to print, or undefined (then wait). */
export function verbNoop(verb: WaitingVerb, group: string, accepted: VerbAccepted): string | undefined {
  const s = accepted.status
  if (verb !== 'sync' || anySyncing(s) || s.bytes_behind > 0) return undefined
  return `group ${group} is already Synced on ${accepted.array}: nothing to send to ${s.partner}`
}

/** Has `verb`, accepted as `accepted`, reached the state it promises? */
export function verbOutcome(
  verb: WaitingVerb,
  group: string,
  accepted: VerbAccepted,
  views: readonly GroupView[],
): WaitStep<RcGroupStatus> {
  const ran_on = accepted.array
  const here = sideOf(views, ran_on, group)
  const partnerName = here?.partner ?? ''
  const there = sideOf(views, partnerName, group)
  const broken = here === undefined ? undefined : promiseBroken(verb, group, accepted, here)
  if (broken !== undefined) return broken
  if (here !== undefined && promiseKept(verb, accepted.status, here, there)) return done(here)
  return waiting([describeSide(ran_on, here), ...(partnerName ? [describeSide(partnerName, there)] : [])].join('; '))
}

/** A state from which the verb's promise cannot come true any more (sync, reverse), or undefined. */
function promiseBroken(verb: WaitingVerb, group: string, accepted: VerbAccepted, here: RcGroupStatus): WaitStep<never> | undefined {
  const where = `${accepted.array} is ${here.role}, ${here.started ? 'started' : 'stopped'}`
  if (verb === 'sync' && (!here.started || !isSource(here.role)))
    return failed('HVLAB_E_STATE', `the sync of group ${group} cannot complete: ${where}; \`hvlab rcopy status ${group}\` shows it`)
  if (verb === 'reverse' && here.role !== accepted.status.role)
    return failed(
      'HVLAB_E_STATE',
      `group ${group} changed roles again while reversing: ${where} (the reverse made it ${accepted.status.role}); \`hvlab rcopy status ${group}\` shows it`,
    )
  return undefined
}

function promiseKept(verb: WaitingVerb, before: RcGroupStatus, here: RcGroupStatus, there: RcGroupStatus | undefined): boolean {
  switch (verb) {
    case 'start':
      return here.started && here.link_up && allSynced(here)
    case 'stop':
      return !here.started
    case 'sync':
      return here.last_sync_ms !== undefined && (before.last_sync_ms ?? -1) < here.last_sync_ms && !anySyncing(here)
    case 'failover':
      return here.role === 'primary-rev'
    case 'recover':
      return there?.role === 'secondary-rev' && allSynced(here)
    case 'restore':
      return there?.role === 'primary' && allSynced(there)
    case 'reverse':
      return here.partner_role === COUNTERPART[here.role] && there?.role === COUNTERPART[here.role]
    case 'switchover':
      return here.role === 'secondary-rev' && there?.role === 'primary-rev'
  }
}

/** What the verb's success says, e.g. "group rc-vm1 is started and Synced on array-a". */
export function verbDone(verb: WaitingVerb, group: string, ran_on: string, s: RcGroupStatus): string {
  switch (verb) {
    case 'start':
      return `group ${group} is started and Synced (${ran_on} ${s.role} → ${s.partner})`
    case 'stop':
      return `group ${group} is stopped on ${ran_on}; changes are tracked for a resync`
    case 'sync':
      return `group ${group} synced: ${s.partner} holds ${ran_on}'s volumes as of the new sync point${s.bytes_behind > 0 ? `; ${s.bytes_behind} bytes written since are behind` : ''}`
    case 'failover':
      return `group ${group} failed over: ${ran_on} is Primary-Rev and takes writes`
    case 'recover':
      return `group ${group} recovered: ${s.partner} is Secondary-Rev and Synced from ${ran_on}`
    case 'restore':
      return `group ${group} restored to its natural roles: ${s.partner} is Primary, Synced`
    case 'reverse':
      return `group ${group} reversed: ${ran_on} is ${ROLE_NAME[s.role]}, ${s.partner} ${ROLE_NAME[COUNTERPART[s.role]]}`
    case 'switchover':
      return `group ${group} switched over: ${s.partner} is Primary-Rev, ${ran_on} Secondary-Rev`
  }
}
