/**
 * One proposer's attempt to decide the view of the next epoch (pure bookkeeping, no
 * sending): the promises and acceptances gathered so far, whether they make a quorum
 * of the previous view's votes, and which value Paxos obliges it to propose.
 */
import type { Ballot, ClusterDatabase, ClusterMessageOf, ViewProposal } from '../../shared/protocol/cluster-messages.js'
import { compareBallots } from '../../shared/consensus/acceptor.js'
import { hasQuorum, type Votes } from './quorum.js'

type PromiseMsg = ClusterMessageOf<'cluster-promise'>

export interface ViewElection {
  slot: number
  ballot: Ballot
  phase: 'prepare' | 'accept'
  started_ms: number
  /** Stop waiting for more promises once a quorum is in and this time has passed. */
  gather_until_ms: number
  /** Give up (and retry later) if not decided by then. */
  deadline_ms: number
  base_votes: Votes
  /** Who we hope hears from: base voters, peers that look up, the witness. */
  expected: Set<string>
  promises: Map<string, PromiseMsg>
  refused: Set<string>
  accepts: Set<string>
  value: ViewProposal | null
  /** Earliest time a voter said it may promise again (its lease to the current view). */
  lease_retry_at_ms: number
  /** Voters that refused only because they still keep the current view's lease. */
  lease_refusals: Set<string>
}

export function newElection(
  slot: number,
  ballot: Ballot,
  base_votes: Votes,
  expected: Set<string>,
  now_ms: number,
  gather_ms: number,
  phase_timeout_ms: number,
): ViewElection {
  return {
    slot,
    ballot,
    phase: 'prepare',
    started_ms: now_ms,
    gather_until_ms: now_ms + gather_ms,
    deadline_ms: now_ms + phase_timeout_ms,
    base_votes,
    expected,
    promises: new Map(),
    refused: new Set(),
    accepts: new Set(),
    value: null,
    lease_retry_at_ms: 0,
    lease_refusals: new Set(),
  }
}

export function matches(e: ViewElection, slot: number, ballot: Ballot): boolean {
  return e.slot === slot && compareBallots(e.ballot, ballot) === 0
}

export function promisedQuorum(e: ViewElection, witness: string): boolean {
  return hasQuorum(e.base_votes, new Set(e.promises.keys()), witness)
}

export function acceptedQuorum(e: ViewElection, witness: string): boolean {
  return hasQuorum(e.base_votes, e.accepts, witness)
}

/** Everyone expected has answered one way or the other. */
export function allAnswered(e: ViewElection): boolean {
  for (const name of e.expected) if (!e.promises.has(name) && !e.refused.has(name)) return false
  return true
}

/** The highest-ballot value some promiser already accepted: Paxos says propose that one. */
export function valueToRepeat(e: ViewElection): ViewProposal | null {
  let best: { ballot: Ballot; value: ViewProposal } | null = null
  for (const p of e.promises.values()) {
    if (p.accepted && (!best || compareBallots(p.accepted.ballot, best.ballot) > 0)) best = p.accepted
  }
  return best ? best.value : null
}

export type DatabaseChoice =
  | { ok: true; db: ClusterDatabase }
  /** A promiser (typically the witness) has seen a newer database than anyone here holds. */
  | { ok: false; newest_db_epoch: number; best_db_epoch: number | null }

/** The newest database among the promisers, unless someone has seen a newer one we lack. */
export function newestDatabase(e: ViewElection): DatabaseChoice {
  let best: ClusterDatabase | null = null
  let newest = 0
  for (const p of e.promises.values()) {
    newest = Math.max(newest, p.db_epoch)
    if (p.db && (!best || p.db.db_epoch > best.db_epoch)) best = p.db
  }
  if (!best || newest > best.db_epoch) return { ok: false, newest_db_epoch: newest, best_db_epoch: best?.db_epoch ?? null }
  return { ok: true, db: best }
}

/**
 * Can the prepare phase still reach a quorum: the promises so far plus every expected
 * voter that has not refused? False means waiting for the deadline is pointless (for
 * instance every live voter refused because it still keeps the old view's lease).
 */
export function quorumStillPossible(e: ViewElection, witness: string): boolean {
  const maybe = new Set(e.promises.keys())
  for (const name of e.expected) if (!e.refused.has(name)) maybe.add(name)
  return hasQuorum(e.base_votes, maybe, witness)
}
