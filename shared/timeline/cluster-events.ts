/**
 * A host's cluster membership on the timeline: what Membership emits
 * (agent/cluster/membership.ts) and what its service says when it restores its record.
 * A ballot goes on the timeline as its JSON text (shared/timeline/flatten.ts), as it always has.
 */
import type { Ballot } from '../protocol/cluster-messages.js'
import { defineEvents, detail } from './details.js'
import type { DetailsOf } from './events.js'

const db_epochs = { newest_db_epoch: detail.uint(), own_db_epoch: detail.uint().nullable(), hint: detail.text() }

export const clusterEvents = defineEvents({
  'cluster.node-up': { node: detail.name() },
  'cluster.node-down': { node: detail.name(), reason: detail.word().optional() },
  'cluster.node-left': { epoch: detail.uint() },
  'cluster.node-restored': { epoch: detail.uint(), db_epoch: detail.uint() },
  'cluster.quorum-gained': { epoch: detail.uint(), lease_until_ms: detail.time_ms(), coordinator: detail.name() },
  /** The lease ran out (with its end), or a new view replaced it (with the reason). */
  'cluster.quorum-lost': { epoch: detail.uint(), lease_until_ms: detail.time_ms().optional(), reason: detail.text().optional() },
  'cluster.view-change-wanted': { epoch: detail.uint(), members: detail.names(), live: detail.names(), at_ms: detail.time_ms() },
  'cluster.election-started': { slot: detail.uint(), ballot: detail.text() },
  'cluster.election-abandoned': { slot: detail.uint(), ballot: detail.text(), reason: detail.text() },
  /** Our database is older than one the voters have seen; `witness_epoch` when the witness said so. */
  'cluster.partition-in-time': { slot: detail.uint(), witness_epoch: detail.uint().optional(), ...db_epochs },
  'cluster.view-changed': {
    epoch: detail.uint(),
    members: detail.names(),
    voters: detail.names(),
    witness_vote: detail.flag(),
    coordinator: detail.name(),
    forced: detail.flag(),
    db_epoch: detail.uint(),
    removed: detail.names(),
    /** Every lease of the views before ends by then; the removed hosts' roles are free at roles_free_at_ms. */
    leases_end_ms: detail.time_ms(),
    removed_lease_end_ms: detail.time_ms(),
    roles_free_at_ms: detail.time_ms(),
  },
  'cluster.config-committed': { db_epoch: detail.uint(), epoch: detail.uint() },
  'cluster.config-write-refused': { key: detail.text(), by: detail.name(), reason: detail.text() },
  'cluster.forced-quorum': { epoch: detail.uint(), db_epoch: detail.uint(), warning: detail.text() },
})

export type ClusterEventKind = keyof typeof clusterEvents

/**
 * Where Membership's details are nested — the ballot itself, which the timeline shows as
 * its JSON text (shared/timeline/flatten.ts) and a transcript as `n/node`.
 */
interface NestedClusterDetails {
  'cluster.election-started': { ballot: Ballot }
  'cluster.election-abandoned': { ballot: Ballot }
}

/** A cluster event's details as the machine emits them, before they are flattened for the timeline. */
export type ClusterDetailsOf<K extends ClusterEventKind | WitnessEventKind> = K extends keyof NestedClusterDetails
  ? Omit<DetailsOf<K>, keyof NestedClusterDetails[K]> & NestedClusterDetails[K]
  : DetailsOf<K>

/** The witness's Arbiter (witness/arbiter.ts) and its service. */
export const witnessEvents = defineEvents({
  'witness.epoch-recorded': { epoch: detail.uint(), db_epoch: detail.uint() },
  'witness.restored': { epoch: detail.uint(), db_epoch: detail.uint() },
})

export type WitnessEventKind = keyof typeof witnessEvents
