/**
 * What a remote-copy verb promises and how `hvlab rcopy VERB` sees it kept: from every
 * array's status of the group (roles, started, each volume's state), the state the verb
 * leads to — start: started and every volume Synced; stop: stopped; failover: this side
 * Primary-Rev; recover: the partner Secondary-Rev and every volume Synced; restore: the
 * natural roles back, Synced; switchover: the roles swapped (this side Secondary-Rev).
 * sync and reverse return at once.
 */
import type { RcGroupStatus } from '../../shared/protocol/storage-messages.js'
import type { GroupView } from './rcopy-status-format.js'
import { type WaitStep, done, waiting } from './wait-for.js'

/** The verbs that wait for their outcome. */
export const WAITING_VERBS = ['start', 'stop', 'failover', 'recover', 'restore', 'switchover'] as const
export type WaitingVerb = (typeof WAITING_VERBS)[number]
export const isWaitingVerb = (verb: string): verb is WaitingVerb => (WAITING_VERBS as readonly string[]).includes(verb)

const sideOf = (views: readonly GroupView[], array: string, group: string): RcGroupStatus | undefined =>
  views.find((v) => v.array === array)?.groups.find((g) => g.group === group)

const allSynced = (s: RcGroupStatus): boolean => s.volumes.every((v) => v.state === 'Synced')

/** How a side looks, for the timeout message: "array-a primary, started, link up, volumes vm1-disk0 Syncing". */
function describeSide(array: string, s: RcGroupStatus | undefined): string {
  if (s === undefined) return `${array}: no answer`
  const vols = s.volumes.map((v) => `${v.volume} ${v.state}`).join(', ') || 'none'
  return `${array} ${s.role}, ${s.started ? 'started' : 'stopped'}, link ${s.link_up ? 'up' : 'down'}, volumes ${vols}`
}

/** Has `verb`, run on `ran_on`, reached the state it promises? */
export function verbOutcome(verb: WaitingVerb, group: string, ran_on: string, views: readonly GroupView[]): WaitStep<RcGroupStatus> {
  const here = sideOf(views, ran_on, group)
  const partnerName = here?.partner ?? ''
  const there = sideOf(views, partnerName, group)
  const reached = here !== undefined && promiseKept(verb, here, there)
  if (reached) return done(here)
  return waiting([describeSide(ran_on, here), ...(partnerName ? [describeSide(partnerName, there)] : [])].join('; '))
}

function promiseKept(verb: WaitingVerb, here: RcGroupStatus, there: RcGroupStatus | undefined): boolean {
  switch (verb) {
    case 'start':
      return here.started && here.link_up && allSynced(here)
    case 'stop':
      return !here.started
    case 'failover':
      return here.role === 'primary-rev'
    case 'recover':
      return there?.role === 'secondary-rev' && allSynced(here)
    case 'restore':
      return there?.role === 'primary' && allSynced(there)
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
    case 'failover':
      return `group ${group} failed over: ${ran_on} is Primary-Rev and takes writes`
    case 'recover':
      return `group ${group} recovered: ${s.partner} is Secondary-Rev and Synced from ${ran_on}`
    case 'restore':
      return `group ${group} restored to its natural roles: ${s.partner} is Primary, Synced`
    case 'switchover':
      return `group ${group} switched over: ${s.partner} is Primary-Rev, ${ran_on} Secondary-Rev`
  }
}
