/**
 * A host's answer to "what is the quorum state?" (pure): model, votes present / needed,
 * whether the witness votes and is reachable, the epoch and members, and each node's
 * state in WSFC's words — Up (a member, heard), Paused (Up, drained by the operator),
 * Joining (heard now but not yet in the view), Down (not heard, or out of the view and silent),
 * with its configured vote (NodeWeight) and whether that vote counts now (DynamicWeight:
 * dynamic quorum takes the votes of nodes out of the view, and one to keep the total odd).
 */
import type { ClusterStatus } from '../../shared/protocol/cluster-messages.js'
import type { Membership } from './membership.js'
import { totalVotes, votesHeld, votesNeeded } from './quorum.js'

export function pausedKey(node: string): string {
  return `node/${node}/state`
}

/**
 * What a paused node's key holds: `paused`, or a drain under way or how the last one ended,
 * so a new coordinator goes on draining and `cluster status` keeps showing it. Every value
 * means paused; no key means up.
 */
export const PAUSED_RECORDS = ['paused', 'draining', 'drained', 'drain-failed'] as const
export type PausedRecord = (typeof PAUSED_RECORDS)[number]

export function isPausedRecord(value: unknown): value is PausedRecord {
  return (PAUSED_RECORDS as readonly unknown[]).includes(value)
}

export function clusterStatus(m: Membership, now_ms: number, witnessReachable: boolean): ClusterStatus {
  const c = m.settings()
  const view = m.view()
  const db = m.database()
  const heard = new Set([c.name, ...m.upPeers(now_ms)])
  const present = new Set(heard)
  if (c.witness && witnessReachable) present.add(c.witness)
  const holds = m.holdsLease(now_ms)
  const nodes = Object.entries(c.sites)
    .sort(([a], [b]) => (a < b ? -1 : 1))
    .map(([name, site]) => {
      const member = view.members.includes(name) && view.epoch > 0
      // A node out of the view is Joining only while it is talking; one that went silent
      // (killed, cut off) is Down even before its missed-heartbeat threshold has passed.
      const up = heard.has(name) && (member || name === c.name || m.recentlyHeard(name, now_ms))
      const state = !up
        ? 'Down'
        : !member || (name === c.name && !holds)
          ? 'Joining'
          : isPausedRecord(db.config[pausedKey(name)])
            ? 'Paused'
            : 'Up'
      const voter = view.voters.includes(name)
      const node_weight = c.quorum.zero_weight_nodes?.includes(name) === true ? 0 : 1
      return { name, site, state: state as ClusterStatus['nodes'][number]['state'], voter, node_weight, dynamic_weight: voter ? 1 : 0 }
    })
  return {
    node: c.name,
    model: c.quorum.model,
    dynamic_quorum: c.quorum.dynamic_quorum,
    dynamic_witness: c.quorum.dynamic_witness,
    epoch: view.epoch,
    db_epoch: db.db_epoch,
    coordinator: view.coordinator,
    is_coordinator: m.isCoordinator(),
    forced: view.forced,
    holds_lease: holds,
    lease_until_ms: holds ? m.leaseUntil() : null,
    members: [...view.members],
    voters: [...view.voters],
    witness: c.witness ? { name: c.witness, votes: view.witness_vote, reachable: witnessReachable } : null,
    votes_total: totalVotes(view),
    votes_present: votesHeld(view, present, c.witness ?? ''),
    votes_needed: votesNeeded(view),
    nodes,
  }
}
