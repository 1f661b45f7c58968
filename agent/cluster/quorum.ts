/**
 * Vote arithmetic of the failover cluster (pure): which nodes and whether the witness
 * vote in a view, and whether a set of responders is a quorum of that view.
 *
 * - Node Majority: every voting node has one vote.
 * - Node and File Share Majority: the witness adds one vote.
 * - Dynamic quorum: only the members of the view vote (a failed node's vote is removed
 *   by the next view change), so sequential failures can take the cluster down to its
 *   last node. If the total would be even, the tie-breaker (the last member by name)
 *   loses its vote, as WSFC does.
 * - Dynamic witness: the witness votes only when the node votes are even.
 * - Forced quorum: a forced view has only the forcing node as voter.
 */
export const QUORUM_MODELS = ['node-majority', 'node-and-file-share-majority'] as const
export type QuorumModel = (typeof QUORUM_MODELS)[number]

export interface QuorumSettings {
  model: QuorumModel
  dynamic_quorum: boolean
  dynamic_witness: boolean
  /** Every configured node, sorted or not; each has one vote unless weights say 0. */
  nodes: readonly string[]
  /** Nodes configured with no vote (WSFC NodeWeight = 0). */
  zero_weight_nodes?: readonly string[]
}

export interface Votes {
  voters: string[]
  witness_vote: boolean
}

/** The votes of a view whose members are `members`. */
export function computeVotes(members: readonly string[], settings: QuorumSettings): Votes {
  const weighted = new Set(settings.nodes.filter((n) => !settings.zero_weight_nodes?.includes(n)))
  const base = settings.dynamic_quorum ? members.filter((m) => weighted.has(m)) : [...weighted]
  const voters = [...new Set(base)].sort()
  const hasWitness = settings.model === 'node-and-file-share-majority'
  let witness_vote = hasWitness && (!settings.dynamic_witness || voters.length % 2 === 0)
  if (hasWitness && voters.length === 0) witness_vote = true
  const total = voters.length + (witness_vote ? 1 : 0)
  if (settings.dynamic_quorum && total % 2 === 0 && voters.length >= 2) voters.pop()
  return { voters, witness_vote }
}

/** The votes of a forced view: only the forcing node. */
export function forcedVotes(node: string): Votes {
  return { voters: [node], witness_vote: false }
}

export function totalVotes(votes: Votes): number {
  return votes.voters.length + (votes.witness_vote ? 1 : 0)
}

/** Votes held by `responders` (node names, and `witnessName` for the witness). */
export function votesHeld(votes: Votes, responders: ReadonlySet<string>, witnessName: string): number {
  let held = 0
  for (const v of votes.voters) if (responders.has(v)) held++
  if (votes.witness_vote && responders.has(witnessName)) held++
  return held
}

/** A strict majority of the view's votes; no quorum is possible with no votes. */
export function hasQuorum(votes: Votes, responders: ReadonlySet<string>, witnessName: string): boolean {
  const total = totalVotes(votes)
  return total > 0 && 2 * votesHeld(votes, responders, witnessName) > total
}

/** Votes still needed for a quorum. */
export function votesNeeded(votes: Votes): number {
  return Math.floor(totalVotes(votes) / 2) + 1
}
