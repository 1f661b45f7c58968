/**
 * The acceptor rules every voter follows, hosts and the file-share witness alike (pure).
 *
 * Each epoch's view is one Paxos decision among the voters of the previous view. On
 * top of that, a voter that confirmed the current view's quorum lease (lease-ack)
 * promises not to help any other view form until that lease has run out (plus the
 * allowed clock skew), and once it has promised a successor it confirms the current
 * view no more. Together: every lease of a view ends before its successor is decided,
 * so no two views ever hold a valid lease at the same time.
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
  /** The view whose lease this voter confirmed (0: none) and until when. */
  lease_epoch: number
  lease_until_ms: number
}

export interface AcceptorSettings {
  lease_ms: number
  /** Largest difference between two hosts' clocks; a lease promise is kept this much longer. */
  clock_skew_ms: number
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

/** Until when this voter may not help another view form (0 if free). */
export function leaseBusyUntil(rec: AcceptorRecord, settings: AcceptorSettings): number {
  if (rec.lease_epoch === 0 || rec.lease_epoch !== rec.committed_epoch) return 0
  return rec.lease_until_ms + settings.clock_skew_ms
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
  now_ms: number,
  settings: AcceptorSettings,
): { reason: Refuse['reason']; retry_at_ms: number | null } | null {
  if (slot <= rec.committed_epoch) return { reason: 'decided', retry_at_ms: null }
  if (slot > rec.committed_epoch + 1) return { reason: 'behind', retry_at_ms: null }
  if (rec.promised) {
    const c = compareBallots(ballot, rec.promised)
    if (c < 0 || (strictlyHigher && c === 0)) return { reason: 'promised', retry_at_ms: null }
  }
  const busy_until_ms = leaseBusyUntil(rec, settings)
  if (now_ms < busy_until_ms) return { reason: 'lease', retry_at_ms: busy_until_ms }
  return null
}

/** Phase 1. The reply's `db` is null here; a host fills in its database contents. */
export function onPrepare(
  self: string,
  rec: AcceptorRecord,
  msg: ClusterMessageOf<'cluster-prepare'>,
  now_ms: number,
  settings: AcceptorSettings,
): AcceptorReply<Promise_> {
  const why = obstacle(rec, msg.slot, msg.ballot, true, now_ms, settings)
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
  }
  return { record, reply, changed: true }
}

/** Phase 2. */
export function onAccept(
  self: string,
  rec: AcceptorRecord,
  msg: ClusterMessageOf<'cluster-accept'>,
  now_ms: number,
  settings: AcceptorSettings,
): AcceptorReply<ClusterMessageOf<'cluster-accepted'>> {
  const why = obstacle(rec, msg.slot, msg.ballot, false, now_ms, settings)
  if (why) return { record: rec, reply: refuse(self, rec, msg.slot, msg.ballot, why.reason, why.retry_at_ms), changed: false }
  if (msg.value.view.epoch !== msg.slot) {
    return { record: rec, reply: refuse(self, rec, msg.slot, msg.ballot, 'stale'), changed: false }
  }
  const record = { ...rec, promised: msg.ballot, accepted: { ballot: msg.ballot, value: msg.value } }
  return { record, reply: { t: 'cluster-accepted', from: self, slot: msg.slot, ballot: msg.ballot }, changed: true }
}

/** A decided view: move to it; the promise and accepted value of the old slot are void. */
export function onDecided(rec: AcceptorRecord, epoch: number, db_epoch: number): { record: AcceptorRecord; changed: boolean } {
  if (epoch <= rec.committed_epoch) {
    if (db_epoch > rec.db_epoch && epoch === rec.committed_epoch) return { record: { ...rec, db_epoch }, changed: true }
    return { record: rec, changed: false }
  }
  return {
    record: {
      committed_epoch: epoch,
      db_epoch: Math.max(rec.db_epoch, db_epoch),
      promised: null,
      accepted: null,
      lease_epoch: 0,
      lease_until_ms: 0,
    },
    changed: true,
  }
}

/**
 * Quorum confirmation of the current view. Null: do not confirm (an older or newer
 * view, an older database, or a successor already promised).
 */
export function onLeaseRequest(
  self: string,
  rec: AcceptorRecord,
  msg: ClusterMessageOf<'cluster-lease-request'>,
  settings: AcceptorSettings,
): { record: AcceptorRecord; ack: ClusterMessageOf<'cluster-lease-ack'> } | null {
  if (msg.epoch !== rec.committed_epoch || rec.promised !== null) return null
  if (msg.db.db_epoch < rec.db_epoch) return null
  const record: AcceptorRecord = {
    ...rec,
    db_epoch: msg.db.db_epoch,
    lease_epoch: msg.epoch,
    lease_until_ms: Math.max(rec.lease_epoch === msg.epoch ? rec.lease_until_ms : 0, msg.started_ms + settings.lease_ms),
  }
  return { record, ack: { t: 'cluster-lease-ack', from: self, epoch: msg.epoch, round: msg.round } }
}
