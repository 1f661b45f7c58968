/**
 * The acceptor rules every voter follows, hosts and the file-share witness alike (pure).
 *
 * Each epoch's view is one Paxos decision among the voters of the previous view. On top
 * of that, quorum leases, carried over a view change instead of dropped:
 *   - A voter confirms a lease (lease-ack) only for the view it last saw decided and only
 *     until it has promised a successor; it remembers when the newest lease it confirmed
 *     ends (`lease_until_ms`, in any view) and reports that in every promise.
 *   - So the promises of any quorum bound every lease of the old view: an ack quorum and
 *     a promise quorum share a voter, who either confirmed before promising (and reported
 *     it) or refused after. The proposer writes that bound (and the old view's own bound,
 *     for leases carried into it) into the new view as `leases_end_ms`.
 *   - A member of the new view keeps the lease it holds (never longer), so a view change
 *     decided by a quorum of the old view costs its members no lease gap; only a host cut
 *     off from a quorum loses its lease. A new coordinator may act only after
 *     `leases_end_ms` + clock skew, and a removed host's roles are free only after its own
 *     bound (`removed_lease_end_ms`) + clock skew + the time to stop them (membership.ts).
 *   - The bound is kept in memory only (no write per renewal): a voter that (re)starts
 *     assumes it confirmed a lease until now + lease + skew, which covers any it
 *     confirmed before it stopped.
 * Liveness only: a voter refuses ('lease') to help a proposer other than the coordinator
 * whose lease requests it has heard within `coordinatorAliveMs`, so a host cut off from
 * its coordinator cannot replace a view that still works.
 */
import type { AcceptedValue, Ballot, ClusterMessageOf } from '../protocol/cluster-messages.js'

export interface AcceptorRecord {
  /** Epoch of the newest view this voter knows was decided. */
  committed_epoch: number
  /** Newest cluster-database epoch this voter has acknowledged; never goes backwards. */
  db_epoch: number
  /** Promise for epoch committed_epoch + 1. */
  promised: Ballot | null
  /** Value accepted for epoch committed_epoch + 1. */
  accepted: AcceptedValue | null
  /** The newest view whose lease this voter confirmed (0: none). */
  lease_epoch: number
  /** Every lease this voter confirmed, in any view, ends by then (kept in memory, see above). */
  lease_until_ms: number
}

export interface AcceptorSettings {
  lease_ms: number
  /** Largest difference between two hosts' clocks; a lease promise is kept this much longer. */
  clock_skew_ms: number
  renew_interval_ms: number
}

/** In memory: the coordinator whose lease request this voter last confirmed, and when. */
export interface CoordinatorHeard {
  epoch: number
  coordinator: string
  at_ms: number
}

export const NOT_HEARD: CoordinatorHeard = { epoch: 0, coordinator: '', at_ms: -Infinity }

/** How long after its last lease request a coordinator counts as alive to a voter. */
export const coordinatorAliveMs = (settings: AcceptorSettings): number => Math.floor((settings.renew_interval_ms * 3) / 2)

/** The record a voter starts from: as persisted, with a lease bound that covers any it confirmed before. */
export function startedAcceptor(rec: AcceptorRecord, now_ms: number, settings: AcceptorSettings): AcceptorRecord {
  return { ...rec, lease_until_ms: Math.max(rec.lease_until_ms, now_ms + settings.lease_ms + settings.clock_skew_ms) }
}

export const emptyAcceptorRecord = (): AcceptorRecord => ({
  committed_epoch: 0,
  db_epoch: 0,
  promised: null,
  accepted: null,
  lease_epoch: 0,
  lease_until_ms: 0,
})

/** Orders ballots: by number, then by node name. */
export function compareBallots(a: Ballot, b: Ballot): number {
  if (a.n !== b.n) return a.n < b.n ? -1 : 1
  return a.node < b.node ? -1 : a.node > b.node ? 1 : 0
}

/** Until when this voter refuses to help `proposer` form a view (0 if free): its coordinator is alive. */
export function coordinatorAliveUntil(rec: AcceptorRecord, heard: CoordinatorHeard, proposer: string, settings: AcceptorSettings): number {
  if (heard.epoch !== rec.committed_epoch || heard.coordinator === proposer) return 0
  return heard.at_ms + coordinatorAliveMs(settings)
}

type Refuse = ClusterMessageOf<'cluster-refuse'>
type Promise_ = ClusterMessageOf<'cluster-promise'>

export interface AcceptorReply<M> {
  record: AcceptorRecord
  reply: M | Refuse
  /** The record changed and must be persisted before the reply is sent. */
  changed: boolean
}

function refuse(
  self: string,
  rec: AcceptorRecord,
  slot: number,
  ballot: Ballot,
  reason: Refuse['reason'],
  retry_at_ms: number | null = null,
): Refuse {
  return {
    t: 'cluster-refuse',
    from: self,
    slot,
    ballot,
    reason,
    committed_epoch: rec.committed_epoch,
    db_epoch: rec.db_epoch,
    promised: rec.promised,
    retry_at_ms,
  }
}

/** Why this voter cannot take part in deciding `slot` with `ballot` now, or null. */
function obstacle(
  rec: AcceptorRecord,
  slot: number,
  ballot: Ballot,
  strictlyHigher: boolean,
  now: VoterNow,
): { reason: Refuse['reason']; retry_at_ms: number | null } | null {
  if (slot <= rec.committed_epoch) return { reason: 'decided', retry_at_ms: null }
  if (slot > rec.committed_epoch + 1) return { reason: 'behind', retry_at_ms: null }
  if (rec.promised) {
    const c = compareBallots(ballot, rec.promised)
    if (c < 0 || (strictlyHigher && c === 0)) return { reason: 'promised', retry_at_ms: null }
  }
  const busy_until_ms = coordinatorAliveUntil(rec, now.heard, ballot.node, now.settings)
  if (now.now_ms < busy_until_ms) return { reason: 'lease', retry_at_ms: busy_until_ms }
  return null
}

/** What a voter's decision depends on besides its record: the time, its settings, and its coordinator. */
export interface VoterNow {
  now_ms: number
  settings: AcceptorSettings
  heard: CoordinatorHeard
}

/** Phase 1. The reply's `db` is null here; a host fills in its database contents. */
export function onPrepare(
  self: string,
  rec: AcceptorRecord,
  msg: ClusterMessageOf<'cluster-prepare'>,
  now: VoterNow,
): AcceptorReply<Promise_> {
  const why = obstacle(rec, msg.slot, msg.ballot, true, now)
  if (why) return { record: rec, reply: refuse(self, rec, msg.slot, msg.ballot, why.reason, why.retry_at_ms), changed: false }
  const record = { ...rec, promised: msg.ballot }
  const reply: Promise_ = {
    t: 'cluster-promise',
    from: self,
    slot: msg.slot,
    ballot: msg.ballot,
    accepted: rec.accepted,
    db_epoch: rec.db_epoch,
    db: null,
    leases_until_ms: rec.lease_until_ms,
  }
  return { record, reply, changed: true }
}

/** Phase 2. */
export function onAccept(
  self: string,
  rec: AcceptorRecord,
  msg: ClusterMessageOf<'cluster-accept'>,
  now: VoterNow,
): AcceptorReply<ClusterMessageOf<'cluster-accepted'>> {
  const why = obstacle(rec, msg.slot, msg.ballot, false, now)
  if (why) return { record: rec, reply: refuse(self, rec, msg.slot, msg.ballot, why.reason, why.retry_at_ms), changed: false }
  if (msg.value.view.epoch !== msg.slot) {
    return { record: rec, reply: refuse(self, rec, msg.slot, msg.ballot, 'stale'), changed: false }
  }
  const record = { ...rec, promised: msg.ballot, accepted: { ballot: msg.ballot, value: msg.value } }
  return { record, reply: { t: 'cluster-accepted', from: self, slot: msg.slot, ballot: msg.ballot }, changed: true }
}

/**
 * A decided view: move to it; the promise and accepted value of the old slot are void.
 * The lease bound stays: leases confirmed in the old view may be carried into this one.
 */
export function onDecided(rec: AcceptorRecord, epoch: number, db_epoch: number): { record: AcceptorRecord; changed: boolean } {
  if (epoch <= rec.committed_epoch) {
    if (db_epoch > rec.db_epoch && epoch === rec.committed_epoch) return { record: { ...rec, db_epoch }, changed: true }
    return { record: rec, changed: false }
  }
  return {
    record: { ...rec, committed_epoch: epoch, db_epoch: Math.max(rec.db_epoch, db_epoch), promised: null, accepted: null },
    changed: true,
  }
}

/**
 * Quorum confirmation of the current view. Null: do not confirm (an older or newer
 * view, an older database, or a successor already promised). The ack confirms the lease
 * alone (`db_epoch` null) and needs no write (see startedAcceptor), so it may go at once;
 * `durable`: the record changed (the database moved on) and must be persisted, after which
 * the voter says so with the same ack carrying its `db_epoch`.
 */
export function onLeaseRequest(
  self: string,
  rec: AcceptorRecord,
  msg: ClusterMessageOf<'cluster-lease-request'>,
  settings: AcceptorSettings,
): { record: AcceptorRecord; ack: ClusterMessageOf<'cluster-lease-ack'>; durable: boolean } | null {
  if (msg.epoch !== rec.committed_epoch || rec.promised !== null) return null
  if (msg.db_epoch < rec.db_epoch) return null
  const record: AcceptorRecord = {
    ...rec,
    db_epoch: msg.db_epoch,
    lease_epoch: msg.epoch,
    lease_until_ms: Math.max(rec.lease_until_ms, msg.started_ms + settings.lease_ms),
  }
  const durable = msg.db_epoch > rec.db_epoch || rec.lease_epoch !== msg.epoch
  return { record, ack: { t: 'cluster-lease-ack', from: self, epoch: msg.epoch, round: msg.round, vote: true, db_epoch: null }, durable }
}
