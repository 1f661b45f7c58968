/**
 * A host's cluster state machine (pure): heartbeats and failure detection, view changes
 * agreed by the previous view's voters (one decided view per epoch), the quorum lease
 * that lets this host run roles, the replicated cluster database, and the operator
 * commands force-quorum, pause, resume, leave and set-config.
 *
 *   step(input, now_ms) -> Effect[]   (send / set-timer / persist / emit)
 *
 * How it stays safe: see shared/consensus/acceptor.ts. How a view changes: one Paxos
 * round for epoch + 1 among the current view's voters, run by
 *   - the coordinator, at once, when the live hosts differ from the view's members;
 *   - a member whose coordinator has gone silent (a takeover), while it still holds its
 *     lease (a renewal interval of it left, staggered briefly by rank among the survivors);
 * and a member of the new view keeps the lease it holds (carried over, never extended),
 * so a view change decided by a quorum of the old view costs its members no lease gap;
 *   - a host that has never seen a view, once it has heard from every host of the
 *     topology (first formation), staggered by rank;
 *   - any host that has had no valid lease for `election_timeout_ms` (+ stagger × rank),
 *     the slow path for everything else (a first formation with a host missing, a
 *     coordinator that is alive but cannot renew).
 * A coordinator that took over from another runs the roles only once every lease of the
 * views before has ended (`leases_end_ms` + skew), so two coordinators never act at once.
 * The new view's members are the hosts that promised, and its votes follow the quorum
 * settings (quorum.ts). The decided view's coordinator then renews a quorum lease every
 * `renew_interval_ms`; each renewal carries the database, so a configuration write is
 * committed when a quorum confirms a renewal that carries it.
 */
import { HvlabError } from '../../shared/errors.js'
import { nextGenerationEpoch } from '../../shared/consensus/epoch-generation.js'
import {
  CLUSTER_NODES_MAX,
  CONFIG_ENTRIES_MAX,
  type ClusterDatabase,
  type ClusterMessage,
  type ClusterMessageOf,
  type ClusterView,
} from '../../shared/protocol/cluster-messages.js'
import {
  NOT_HEARD,
  emptyAcceptorRecord,
  onAccept,
  onDecided,
  onLeaseRequest,
  onPrepare,
  startedAcceptor,
  type AcceptorRecord,
  type CoordinatorHeard,
  type VoterNow,
} from '../../shared/consensus/acceptor.js'
import type { ClusterCommand, ClusterEvent, ClusterInput, Effect } from '../../shared/consensus/cluster-effects.js'
import type { LeaseTimings } from '../../shared/consensus/lease-timings.js'
import type { ClusterDetailsOf, ClusterEventKind } from '../../shared/timeline/cluster-events.js'
import { nextTickAt } from '../../shared/periodic-task.js'
import { HeartbeatDetector, type HeartbeatSettings } from './heartbeat-detector.js'
import { computeVotes, forcedVotes, hasQuorum, type QuorumSettings } from './quorum.js'
import {
  acceptedQuorum,
  allAnswered,
  matches,
  newElection,
  newestDatabase,
  promisedQuorum,
  quorumStillPossible,
  valueToRepeat,
  type ViewElection,
} from './view-election.js'

/** Database epochs: view epoch × this + writes within the view, so a new view's database is newer than any write before it. */
export const DB_WRITES_PER_VIEW = 2 ** 16

/** The lease timings (shared/consensus/lease-timings.ts) and this host's place in the cluster. */
export interface MembershipConfig extends LeaseTimings {
  name: string
  /** Every cluster host and its site. */
  sites: Readonly<Record<string, string>>
  /** The file-share witness's name, or null without a witness. */
  witness: string | null
  quorum: Omit<QuorumSettings, 'nodes'>
  heartbeat: HeartbeatSettings
  config_writes_pending_max: number
  /** Where in each tick interval this host ticks, a fraction in [0, 1) (periodic-task.ts); 0 when not given. */
  tick_phase?: number
}

export interface NodeRecord {
  acceptor: AcceptorRecord
  view: ClusterView
  db: ClusterDatabase
  /** Highest ballot number used or seen, so a restarted host never reuses one. */
  ballot_n: number
  left: boolean
}

export type MembershipEffect = Effect<NodeRecord>

interface LeaseRound {
  round: number
  started_ms: number
  request: ClusterMessageOf<'cluster-lease-request'>
  acks: Set<string>
  /** Members that answered without a vote (answerWithoutVote). */
  alive: Set<string>
  granted: boolean
}

export function checkMembershipConfig(c: MembershipConfig): void {
  const nodes = Object.keys(c.sites)
  const bad = (what: string): never => {
    throw new HvlabError('HVLAB_E_TOPOLOGY', `cluster config for ${c.name}: ${what}`)
  }
  if (!nodes.includes(c.name)) bad(`host ${c.name} is not one of the cluster's hosts (${nodes.join(', ')})`)
  if (nodes.length > CLUSTER_NODES_MAX) bad(`at most ${CLUSTER_NODES_MAX} hosts`)
  if (c.witness !== null && nodes.includes(c.witness)) bad(`the witness name ${c.witness} is also a host name`)
  if (c.quorum.model === 'node-and-file-share-majority' && c.witness === null) bad('node-and-file-share-majority needs a witness')
  if (!(c.renew_interval_ms < c.lease_ms)) bad('renew_interval_ms must be shorter than lease_ms, or leases lapse between renewals')
  if (!(c.election_timeout_ms > c.lease_ms)) bad('election_timeout_ms must be longer than lease_ms')
  if (!(c.takeover_stagger_ms < c.election_stagger_ms + c.election_timeout_ms))
    bad('takeover_stagger_ms must be shorter than the election timeout')
  if (c.tick_phase !== undefined && !(c.tick_phase >= 0 && c.tick_phase < 1)) bad('tick_phase must be in [0, 1)')
  for (const k of [
    'tick_ms',
    'lease_ms',
    'renew_interval_ms',
    'election_timeout_ms',
    'phase_timeout_ms',
    'gather_ms',
    'takeover_stagger_ms',
  ] as const) {
    if (!(c[k] > 0)) bad(`${k} must be positive`)
  }
}

/** The record of a host that has never run: the genesis view (epoch 0) with every host. */
export function genesisRecord(c: MembershipConfig): NodeRecord {
  const nodes = Object.keys(c.sites).sort()
  const votes = computeVotes(nodes, { ...c.quorum, nodes })
  return {
    acceptor: emptyAcceptorRecord(),
    view: {
      epoch: 0,
      members: nodes,
      voters: votes.voters,
      witness_vote: votes.witness_vote,
      coordinator: nodes[0] ?? c.name,
      forced: false,
      leases_end_ms: 0,
      removed_lease_end_ms: 0,
    },
    db: { db_epoch: 0, config: {} },
    ballot_n: 0,
    left: false,
  }
}

export class Membership {
  private rec: NodeRecord
  private readonly nodes: string[]
  private readonly rank: number
  private readonly detector: HeartbeatDetector
  private readonly next_heartbeat_ms = new Map<string, number>()
  private lease: { epoch: number; until_ms: number } | null = null
  /** When the last lease this host held ended (0: none yet): what `leaseUntil` says once it is gone. */
  private ended_lease_until_ms = 0
  private last_lease_ms: number
  /** This incarnation has held a lease of the current view (so its coordinator was heard renewing). */
  private leased_in_view = false
  /** The coordinator whose lease request this host's acceptor last confirmed. */
  private heard: CoordinatorHeard = NOT_HEARD
  /** As coordinator, run the roles from then on (every earlier lease has ended). */
  private roles_from_ms = 0
  /** When the hosts outside the current view have surely stopped their VMs (the view's `roles_free_at_ms`). */
  private roles_free_at_ms: number
  /** The epoch whose view change this coordinator announced (once per view). */
  private change_wanted_epoch = -1
  /**
   * As the coordinator of the current view since it was decided (in this incarnation):
   * the end of the last grant sent to each member. Null when unknown (restored, or not
   * the coordinator), and a removal then counts on `leases_end_ms` for every host.
   */
  private granted_until: Map<string, number> | null = null
  /** As coordinator: the newest database epoch each voter said it has on disk (this view). */
  private readonly durable_db_epochs = new Map<string, number>()
  /**
   * As coordinator: the database epoch each member holds, learned from its vote on a lease
   * request of that epoch (it adopted the database or already had it). A lease request
   * leaves the database out for a member that holds its epoch; one that lost it since (a
   * restart before its write) asks to catch up and is sent the whole request.
   */
  private readonly db_held = new Map<string, number>()
  /** The newest database epoch this host told its coordinator it has on disk. */
  private durably_acked_db_epoch = 0
  /** When this host last promised another host's ballot (someone else is forming a view). */
  private promised_other_at_ms = -Infinity
  /** Hosts heard from since this process started; first formation waits for all of them. */
  private readonly heard_from = new Set<string>()
  /** When the last host of the topology was first heard from (null until then). */
  private all_heard_at_ms: number | null = null
  /** A lease request for a view this host has not learned yet (it overtook the commit). */
  private early_lease_request: ClusterMessageOf<'cluster-lease-request'> | null = null
  private next_election_ms = 0
  private election: ViewElection | null = null
  private leasing: LeaseRound | null = null
  private round = 0
  private draft_db: ClusterDatabase | null = null
  private committed_db_epoch = 0
  private last_catch_up_ms = -Infinity
  private out: MembershipEffect[] = []
  private now_ms = 0
  /** When the next tick is due (on the grid of tick_ms, periodic-task.ts). */
  private tick_at_ms = -Infinity

  constructor(
    private readonly config: MembershipConfig,
    record: NodeRecord | null,
    start_ms: number,
  ) {
    checkMembershipConfig(config)
    const rec = structuredClone(record ?? genesisRecord(config))
    this.rec = { ...rec, acceptor: startedAcceptor(rec.acceptor, start_ms, config) }
    this.nodes = Object.keys(config.sites).sort()
    this.rank = this.nodes.indexOf(config.name)
    this.detector = new HeartbeatDetector(config.name, new Map(Object.entries(config.sites)), config.heartbeat, start_ms)
    this.last_lease_ms = start_ms
    this.committed_db_epoch = this.rec.db.db_epoch
    this.roles_free_at_ms = this.rolesFreeAt(this.rec.view, start_ms) // restored: counted from the restart, later than from its adoption
  }

  /** A host restarted from its persisted record: no lease, no election, roles stopped. */
  static restore(config: MembershipConfig, record: NodeRecord, now_ms: number): Membership {
    return new Membership(config, record, now_ms)
  }

  /** The first effects a shell runs: arm the tick timer. */
  start(now_ms: number): MembershipEffect[] {
    return [{ kind: 'set-timer', at_ms: now_ms, token: 'tick' }]
  }

  // ---- what others may read -------------------------------------------------

  get name(): string {
    return this.config.name
  }
  view(): Readonly<ClusterView> {
    return this.rec.view
  }
  database(): Readonly<ClusterDatabase> {
    return this.rec.db
  }
  record(): Readonly<NodeRecord> {
    return this.rec
  }
  /** May this host run roles now? Only while its quorum lease for its current view is valid. */
  holdsLease(now_ms: number): boolean {
    return !this.rec.left && this.lease !== null && this.lease.epoch === this.rec.view.epoch && now_ms < this.lease.until_ms
  }
  /**
   * When this host's lease runs out, or ran out (0: it never had one). Kept after the lease
   * is dropped: a host frozen past its lease (SIGSTOP) notices only when it wakes, and its
   * VMs' grace must count from the lease's end, not from then (vm-agent.ts).
   */
  leaseUntil(): number {
    return this.lease?.until_ms ?? this.ended_lease_until_ms
  }
  /** Peers whose heartbeats arrive in time now (the failure detector's view). */
  /** Whether `peer` has been heard within two of its heartbeat intervals: it is talking now. */
  recentlyHeard(peer: string, now_ms: number): boolean {
    return this.detector.silentFor(peer, now_ms) < 2 * this.detector.intervalTo(peer)
  }

  upPeers(now_ms: number): string[] {
    return [...this.detector.upPeers(now_ms)]
  }
  settings(): Readonly<MembershipConfig> {
    return this.config
  }
  isCoordinator(): boolean {
    return this.rec.view.epoch > 0 && this.rec.view.coordinator === this.config.name && !this.rec.left
  }
  /**
   * May this host run the cluster's roles now: the coordinator, holding the lease, and past
   * the end of every lease of the views before when it took over from another coordinator.
   */
  runsRoles(now_ms: number): boolean {
    return this.isCoordinator() && this.holdsLease(now_ms) && now_ms >= this.roles_from_ms
  }
  /**
   * From when the hosts outside the current view have surely stopped their VMs, so their
   * roles may start elsewhere: the `roles_free_at_ms` of the view's `cluster.view-changed`.
   * Read it here, with `view()`: the machine adopts a view at once while its events wait
   * for its record's fsync (cluster-driver.ts), so the event may come after the view.
   */
  rolesFreeAtMs(): number {
    return this.roles_free_at_ms
  }

  // ---- step ---------------------------------------------------------------------

  step(input: ClusterInput, now_ms: number): MembershipEffect[] {
    this.now_ms = now_ms
    this.out = []
    switch (input.kind) {
      case 'timer':
        this.onTick()
        break
      case 'message':
        if (!this.rec.left) this.onMessage(input.message)
        break
      case 'command':
        this.onCommand(input.command)
        break
    }
    const out = this.out
    this.out = []
    return out
  }

  // ---- tick -----------------------------------------------------------------------

  private onTick(): void {
    const now = this.now_ms
    // After the tick that was due, even if this clock reads a hair earlier when it fires.
    this.tick_at_ms = nextTickAt(Math.max(now, this.tick_at_ms), this.config.tick_ms, this.config.tick_phase)
    this.out.push({ kind: 'set-timer', at_ms: this.tick_at_ms, token: 'tick' })
    if (this.rec.left) return
    this.detector.watch(this.heartbeatPeers(), now)
    for (const peer of this.detector.newlyDown(now)) this.emit('cluster.node-down', { node: peer })
    this.checkLeaseExpiry()
    if (this.isCoordinator()) this.coordinate()
    if (this.election) this.checkElection()
    else if (this.wantsElection()) this.startElection()
    // Last: a lease request or a prepare sent in this tick stands in for the heartbeat.
    this.sendHeartbeats(this.heartbeatPeers())
  }

  /**
   * The peers this host heartbeats, and watches (the same rule on both ends, so each pair
   * agrees): a member of a view heartbeats its coordinator and the hosts out of the view;
   * the coordinator, a host out of the view and a host that has seen no view heartbeat
   * every host. The coordinator judges the members and the members judge the coordinator
   * — the view is the coordinator's to change — so the heartbeats grow with the hosts, not
   * with their square (a 16-host lab: 120 a beat instead of 240 between members alone).
   */
  private heartbeatPeers(): string[] {
    const view = this.rec.view
    const all = this.detector.peers()
    if (view.epoch === 0 || view.coordinator === this.config.name || !view.members.includes(this.config.name)) return [...all]
    return all.filter((p) => p === view.coordinator || !view.members.includes(p))
  }

  /** A heartbeat to each of `peers` that has had no liveness message from this host for its interval. */
  private sendHeartbeats(peers: readonly string[]): void {
    for (const peer of peers) {
      const due = this.next_heartbeat_ms.get(peer) ?? 0
      if (this.now_ms < due) continue
      const heartbeat = { from: this.config.name, epoch: this.rec.view.epoch, db_epoch: this.rec.db.db_epoch, sent_ms: this.now_ms }
      this.send(peer, { t: 'cluster-heartbeat', ...heartbeat }, true)
    }
  }

  private dropLease(): void {
    if (this.lease) this.ended_lease_until_ms = Math.max(this.ended_lease_until_ms, this.lease.until_ms)
    this.lease = null
  }

  private checkLeaseExpiry(): void {
    if (this.lease && !this.holdsLease(this.now_ms)) {
      this.emit('cluster.quorum-lost', { epoch: this.lease.epoch, lease_until_ms: this.lease.until_ms })
      this.dropLease()
    }
    if (this.holdsLease(this.now_ms)) this.last_lease_ms = this.now_ms
  }

  /**
   * The hosts that should be in the view: this one; every member the failure detector
   * still counts up (a member is removed only once it misses its heartbeat threshold);
   * and every other peer that is up and heard lately. A peer a takeover left out because
   * it went silent (the dead coordinator's site-mate, not yet past its cross-site
   * threshold) is not asked back in: that would change the view again at once, and each
   * view change costs the survivors a lease gap.
   */
  private desiredMembers(): string[] {
    const members = this.rec.view.members
    const up = this.detector.upPeers(this.now_ms).filter((p) => members.includes(p) || !this.peerSilent(p))
    return [this.config.name, ...up].sort()
  }

  /**
   * The coordinator renews its view's lease, or changes the view at once when the live
   * hosts differ from its members (no renewals while its own election runs: its voters
   * promised the next view and confirm the old one no more).
   *
   * After a restart (even of the whole lab) a restored coordinator that sees every member
   * up renews leases for the view it had, without a new epoch. That is deliberate and
   * safe: a voter confirms a lease only for the epoch it last saw decided, with no
   * successor promised and no newer database (acceptor.ts onLeaseRequest, persisted
   * across restarts, the witness included), so a quorum of confirmations proves no newer
   * view was decided while the hosts were down — the same proof as every renewal. A
   * partition in time is still refused: a voter (the witness) that saw a newer epoch or
   * database refuses the renewal, the coordinator's record is caught up by the first
   * newer heartbeat, and a member set that changed forces a normal view change. A new
   * epoch would add a Paxos round and a lease gap and prove nothing more.
   */
  private coordinate(): void {
    const view = this.rec.view
    if (!this.election && this.now_ms >= this.next_election_ms && !sameMembers(view.members, this.desiredMembers())) {
      if (this.change_wanted_epoch !== view.epoch) {
        this.change_wanted_epoch = view.epoch
        this.emit('cluster.view-change-wanted', {
          epoch: view.epoch,
          members: view.members,
          live: this.desiredMembers(),
          at_ms: this.now_ms,
        })
      }
      this.startElection()
    }
    if (this.election) return
    if (!this.leasing || this.now_ms >= this.renewalDueMs(this.leasing.started_ms)) this.startLeaseRound()
  }

  /**
   * A renewal interval after the last round, give or take half a tick: the tick nearest it,
   * not the one after. Without the half tick, a round started a little late (the tick fired
   * 1 ms after its due time) made the next one wait a whole extra tick whenever that tick
   * fired less late, and members sent a heartbeat of their own in the gap. Renewing up to
   * half a tick early only renews more often.
   */
  private renewalDueMs(started_ms: number): number {
    return started_ms + this.config.renew_interval_ms - this.config.tick_ms / 2
  }

  private wantsElection(): boolean {
    if (this.now_ms < this.next_election_ms) return false
    if (this.takeoverDue()) return true
    if (this.holdsLease(this.now_ms)) return false
    if (this.firstFormationDue()) return true
    const patience_ms = this.config.election_timeout_ms + this.rank * this.config.election_stagger_ms
    return this.now_ms - this.last_lease_ms >= patience_ms
  }

  private noteHeard(host: string): void {
    this.heard_from.add(host)
    if (this.all_heard_at_ms === null && this.heard_from.size === this.nodes.length - 1) this.all_heard_at_ms = this.now_ms
  }

  /**
   * First formation: a host that has never seen a view need not wait out a lease nobody
   * can hold. Once it has heard from every host of the topology it starts at once,
   * staggered by rank so the first-ranked host usually proposes alone, and the view of all
   * hosts forms in one round instead of after `election_timeout_ms` (or a view of the
   * first few to start, then a second one). Liveness only: the acceptors' rules decide
   * safety as for any election, and a host that has not heard from all waits as before.
   */
  private firstFormationDue(): boolean {
    if (this.rec.view.epoch !== 0 || this.all_heard_at_ms === null) return false
    if (this.now_ms - this.promised_other_at_ms < this.config.phase_timeout_ms) return false
    return this.now_ms >= this.all_heard_at_ms + this.rank * this.config.election_stagger_ms
  }

  /**
   * A member whose coordinator went silent starts the next view while it still holds its
   * lease: once no more than a renewal interval of it is left (staggered by rank among the
   * surviving members), so the new view forms and renews before the carried lease runs out,
   * while a coordinator that renews within lease − renewal interval of its last renewal
   * (1.5 s in the default lab) is not replaced: a stall of up to a lease less two renewal
   * intervals (1 s) never costs it its view, wherever in a renewal interval it began.
   * Voters that still hear the coordinator refuse (acceptor.ts): liveness only, never safety.
   */
  private takeoverDue(): boolean {
    const view = this.rec.view
    if (view.epoch === 0 || view.coordinator === this.config.name || !view.members.includes(this.config.name)) return false
    if (!this.coordinatorSuspected()) return false
    // Someone else's takeover is under way: give it a phase to finish before competing.
    if (this.now_ms - this.promised_other_at_ms < this.config.phase_timeout_ms) return false
    if (!this.holdsLease(this.now_ms)) return true
    const survivors = view.members.filter((m) => m !== view.coordinator && (m === this.config.name || this.detector.isUp(m, this.now_ms)))
    const stagger_ms = Math.max(0, survivors.indexOf(this.config.name)) * this.config.takeover_stagger_ms
    return this.leaseUntil() - this.now_ms <= this.config.renew_interval_ms - stagger_ms
  }

  /** The coordinator is declared down, or silent for a renewal plus a heartbeat after renewing our lease. */
  private coordinatorSuspected(): boolean {
    const c = this.rec.view.coordinator
    if (!this.detector.isUp(c, this.now_ms)) return true
    return this.leased_in_view && this.peerSilent(c)
  }

  private peerSilent(peer: string): boolean {
    return this.detector.silentFor(peer, this.now_ms) >= this.silenceThresholdMs(peer)
  }

  /** Silent this long, a peer has missed a lease renewal and a heartbeat. */
  private silenceThresholdMs(peer: string): number {
    return this.config.renew_interval_ms + this.detector.intervalTo(peer)
  }

  // ---- view change: proposer ---------------------------------------------------------

  private startElection(): void {
    const view = this.rec.view
    this.rec = { ...this.rec, ballot_n: this.rec.ballot_n + 1 }
    this.persist()
    const ballot = { n: this.rec.ballot_n, node: this.config.name }
    const expected = new Set([...view.voters, ...this.detector.upPeers(this.now_ms), this.config.name])
    // A silent peer (a dead coordinator) is not waited for; if it answers in time it still counts.
    for (const peer of this.detector.peers()) if (this.peerSilent(peer)) expected.delete(peer)
    if (this.config.witness) expected.add(this.config.witness)
    this.election = newElection(
      view.epoch + 1,
      ballot,
      { voters: view.voters, witness_vote: view.witness_vote },
      expected,
      this.now_ms,
      this.config.gather_ms,
      this.config.phase_timeout_ms,
    )
    this.emit('cluster.election-started', { slot: view.epoch + 1, ballot })
    this.broadcast({ t: 'cluster-prepare', from: this.config.name, slot: view.epoch + 1, ballot }, true)
  }

  private checkElection(): void {
    const e = this.election
    if (!e) return
    if (e.slot !== this.rec.view.epoch + 1) {
      this.election = null
      return
    }
    if (this.now_ms >= e.deadline_ms) return this.abandonElection('no quorum answered in time')
    if (e.phase === 'prepare') this.maybeAccept()
    this.giveUpIfHopeless()
  }

  /**
   * Every voter that could still make a quorum has refused: stop waiting for the deadline.
   * If the refusals were old-lease promises, retry right when they end (not a duel, so no
   * back-off); otherwise back off as usual.
   */
  private giveUpIfHopeless(): void {
    const e = this.election
    if (!e || e.phase !== 'prepare' || quorumStillPossible(e, this.config.witness ?? '')) return
    const lease_only = e.lease_retry_at_ms > this.now_ms && [...e.refused].every((n) => e.lease_refusals.has(n))
    this.abandonElection(
      lease_only ? 'the voters still keep the old lease; retrying when it ends' : 'refused by too many voters',
      lease_only,
    )
  }

  private abandonElection(why: string, retry_at_lease_end = false): void {
    const e = this.election
    if (!e) return
    this.election = null
    const backoff_ms = retry_at_lease_end ? this.config.tick_ms : this.config.election_stagger_ms * (1 + this.rank) + this.config.tick_ms
    this.next_election_ms = Math.max(this.now_ms + backoff_ms, e.lease_retry_at_ms)
    this.emit('cluster.election-abandoned', { slot: e.slot, ballot: e.ballot, reason: why })
  }

  private maybeAccept(): void {
    const e = this.election
    const witness = this.config.witness ?? ''
    if (!e || e.phase !== 'prepare' || !e.promises.has(this.config.name) || !promisedQuorum(e, witness)) return
    if (!allAnswered(e) && this.now_ms < e.gather_until_ms) return
    const value = valueToRepeat(e) ?? this.freshValue(e)
    if (!value) return
    e.phase = 'accept'
    e.value = value
    this.broadcast({ t: 'cluster-accept', from: this.config.name, slot: e.slot, ballot: e.ballot, value }, true)
  }

  /** Every lease of the views before ends by then: the old view's bound and the promisers' (acceptor.ts). */
  private leasesEndMs(e: ViewElection): number {
    let end_ms = this.rec.view.leases_end_ms
    for (const p of e.promises.values()) end_ms = Math.max(end_ms, p.leases_until_ms)
    return end_ms
  }

  /**
   * The leases of the hosts a new view of `members` leaves out end by then. The old view's
   * coordinator knows what it granted each of them (it grants only to members that ack);
   * a lease carried into its view ended by that view's `leases_end_ms`. Anyone else (a
   * takeover) counts on every lease's bound.
   */
  private removedLeaseEndMs(e: ViewElection, members: readonly string[]): number {
    const granted = this.granted_until
    if (granted === null || this.rec.view.coordinator !== this.config.name) return this.leasesEndMs(e)
    let end_ms = this.rec.view.leases_end_ms
    for (const m of this.rec.view.members) if (!members.includes(m)) end_ms = Math.max(end_ms, granted.get(m) ?? 0)
    return end_ms
  }

  private freshValue(e: ViewElection): ViewElection['value'] {
    const choice = newestDatabase(e)
    if (!choice.ok) {
      this.emit('cluster.partition-in-time', {
        slot: e.slot,
        newest_db_epoch: choice.newest_db_epoch,
        own_db_epoch: choice.best_db_epoch,
        hint: 'a host with a newer cluster database must join, or an operator may force quorum on this host',
      })
      this.abandonElection('partition in time: our cluster database is older than one the voters have seen')
      return null
    }
    const members = [...e.promises.keys()].filter((n) => this.nodes.includes(n)).sort()
    const votes = computeVotes(members, { ...this.config.quorum, nodes: this.nodes })
    const current = this.rec.view
    if (current.forced && !hasQuorum(votes, new Set(e.promises.keys()), this.config.witness ?? '')) {
      // WSFC stays in ForceQuorum until the nodes' own votes make a quorum: a host that
      // joins a forced cluster (prevent quorum) must not end it. Without this, with static
      // votes the first joiner would make a view of 2 of 5 votes and nobody would hold quorum.
      return {
        view: {
          epoch: e.slot,
          members,
          voters: [...current.voters],
          witness_vote: current.witness_vote,
          coordinator: this.config.name,
          forced: true,
          leases_end_ms: this.leasesEndMs(e),
          removed_lease_end_ms: this.removedLeaseEndMs(e, members),
        },
        db: { db_epoch: e.slot * DB_WRITES_PER_VIEW, config: choice.db.config },
      }
    }
    return {
      view: {
        epoch: e.slot,
        members,
        voters: votes.voters,
        witness_vote: votes.witness_vote,
        coordinator: this.config.name,
        forced: false,
        leases_end_ms: this.leasesEndMs(e),
        removed_lease_end_ms: this.removedLeaseEndMs(e, members),
      },
      db: { db_epoch: e.slot * DB_WRITES_PER_VIEW, config: choice.db.config },
    }
  }

  private onPromise(m: ClusterMessageOf<'cluster-promise'>): void {
    const e = this.election
    if (!e || e.phase !== 'prepare' || !matches(e, m.slot, m.ballot)) return
    e.promises.set(m.from, m)
    this.maybeAccept()
  }

  private onRefuse(m: ClusterMessageOf<'cluster-refuse'>): void {
    if (m.promised) this.noteBallot(m.promised.n)
    const e = this.election
    if (!e || !matches(e, m.slot, m.ballot)) return
    e.refused.add(m.from)
    switch (m.reason) {
      case 'behind':
        this.send(m.from, this.commitMessage())
        break
      case 'lease':
        e.lease_retry_at_ms = Math.max(e.lease_retry_at_ms, m.retry_at_ms ?? 0)
        e.lease_refusals.add(m.from)
        break
      case 'decided':
        if (m.from === this.config.witness) {
          this.emit('cluster.partition-in-time', {
            slot: e.slot,
            witness_epoch: m.committed_epoch,
            newest_db_epoch: m.db_epoch,
            own_db_epoch: this.rec.db.db_epoch,
            hint: 'the witness has seen a newer cluster; a host that was in it must join, or an operator may force quorum',
          })
        }
        // A voter knows a newer decided view (perhaps a forced one, which no Paxos round of
        // this slot would reveal): this host's view is stale, so it must catch up, never
        // decide a successor of its own, even where its old view's votes would suffice.
        return this.abandonElection(`${m.from} knows a newer view (epoch ${m.committed_epoch}); catching up first`)
      default:
        break
    }
    if (e.phase === 'prepare') this.maybeAccept()
    this.giveUpIfHopeless()
  }

  private onAccepted(m: ClusterMessageOf<'cluster-accepted'>): void {
    const e = this.election
    if (!e || e.phase !== 'accept' || !matches(e, m.slot, m.ballot) || !e.value) return
    e.accepts.add(m.from)
    if (!acceptedQuorum(e, this.config.witness ?? '')) return
    const value = e.value
    this.election = null
    this.adoptView(value.view, value.db)
    this.broadcast(this.commitMessage(), false)
  }

  // ---- view change: acceptor and learner ------------------------------------------------

  private onPrepare(m: ClusterMessageOf<'cluster-prepare'>): void {
    this.noteBallot(m.ballot.n)
    const r = onPrepare(this.config.name, this.rec.acceptor, m, this.voterNow())
    this.setAcceptor(r.record, r.changed)
    if (r.reply.t === 'cluster-promise') {
      if (m.from !== this.config.name) this.promised_other_at_ms = this.now_ms
      this.send(m.from, { ...r.reply, db: this.rec.db })
      return
    }
    if (r.reply.reason === 'decided') this.send(m.from, this.commitMessage())
    this.send(m.from, r.reply)
  }

  private onAccept(m: ClusterMessageOf<'cluster-accept'>): void {
    this.noteBallot(m.ballot.n)
    const r = onAccept(this.config.name, this.rec.acceptor, m, this.voterNow())
    this.setAcceptor(r.record, r.changed)
    if (r.reply.t === 'cluster-refuse' && r.reply.reason === 'decided') this.send(m.from, this.commitMessage())
    this.send(m.from, r.reply)
  }

  private onCommit(m: ClusterMessageOf<'cluster-commit'>): void {
    const mine = this.rec.view
    if (m.view.epoch > mine.epoch) {
      this.adoptView(m.view, m.db)
    } else if (m.view.epoch === mine.epoch && m.db.db_epoch > this.rec.db.db_epoch) {
      const r = onDecided(this.rec.acceptor, m.view.epoch, m.db.db_epoch)
      this.rec = { ...this.rec, acceptor: r.record, db: m.db }
      this.persist()
    }
  }

  private adoptView(view: ClusterView, db: ClusterDatabase): void {
    const old = this.rec.view
    const carried_until_ms = this.holdsLease(this.now_ms) && view.members.includes(this.config.name) ? this.leaseUntil() : null
    const r = onDecided(this.rec.acceptor, view.epoch, db.db_epoch)
    this.rec = { ...this.rec, acceptor: r.record, view, db }
    this.persist()
    this.carryLease(carried_until_ms)
    this.leasing = null
    this.draft_db = null
    this.committed_db_epoch = db.db_epoch
    if (this.election && this.election.slot <= view.epoch) this.election = null
    this.last_lease_ms = this.now_ms
    const skew_ms = this.config.clock_skew_ms
    const took_over = old.coordinator !== view.coordinator || old.epoch === 0
    if (took_over) this.roles_from_ms = view.leases_end_ms + skew_ms
    this.granted_until = view.coordinator === this.config.name ? new Map() : null
    this.durable_db_epochs.clear()
    const removed = old.members.filter((n) => !view.members.includes(n))
    this.roles_free_at_ms = this.rolesFreeAt(view, this.now_ms)
    this.emit('cluster.view-changed', {
      epoch: view.epoch,
      members: view.members,
      voters: view.voters,
      witness_vote: view.witness_vote,
      coordinator: view.coordinator,
      forced: view.forced,
      db_epoch: db.db_epoch,
      removed,
      leases_end_ms: view.leases_end_ms,
      removed_lease_end_ms: view.removed_lease_end_ms,
      roles_free_at_ms: this.roles_free_at_ms,
    })
    if (this.isCoordinator()) {
      this.draft_db = db
      this.startLeaseRound()
    }
    // The new coordinator's first lease request may have overtaken its commit: answer it now
    // (onLeaseRequest checks it against the view just adopted, as for any request).
    const early = this.early_lease_request
    if (early && early.epoch <= view.epoch) {
      this.early_lease_request = null
      if (early.epoch === view.epoch) this.onLeaseRequest(early)
    }
  }

  /**
   * A removed host's lease ends by the view's removed_lease_end_ms (+ skew); its roles are
   * free once it has had time to stop them, and never sooner than a stop bound from `now_ms`.
   */
  private rolesFreeAt(view: ClusterView, now_ms: number): number {
    return Math.max(now_ms, view.removed_lease_end_ms + this.config.clock_skew_ms) + this.config.roles_stop_bound_ms
  }

  /** A member of the new view keeps the lease it holds (never longer); anyone else loses it. */
  private carryLease(until_ms: number | null): void {
    if (until_ms === null && this.lease) this.emit('cluster.quorum-lost', { epoch: this.lease.epoch, reason: 'view changed' })
    if (until_ms === null) this.dropLease()
    else this.lease = { epoch: this.rec.view.epoch, until_ms }
    this.leased_in_view = until_ms !== null
  }

  private onCatchUp(m: ClusterMessageOf<'cluster-catch-up'>): void {
    if (this.rec.view.epoch === 0) return
    this.send(m.from, this.commitMessage())
    // A member that got the first lease request of a new view before its commit asks to
    // catch up; give it the round again (its ack earns it the grant) rather than leaving
    // it without a lease until the next renewal.
    const l = this.leasing
    if (!l || !this.isCoordinator() || !this.rec.view.members.includes(m.from)) return
    this.send(m.from, l.request)
  }

  /**
   * The grant of round `l` to `member`, which acked it: only members that answer get a
   * lease, so a host that stopped answering holds none past the last round it acked, and
   * none is granted once this coordinator is changing the view (its bound is decided).
   */
  private grant(member: string, l: LeaseRound): void {
    const until_ms = l.started_ms + this.config.lease_ms
    if (member === this.config.name || !this.rec.view.members.includes(member) || until_ms <= this.now_ms || this.election) return
    this.granted_until?.set(member, Math.max(this.granted_until.get(member) ?? 0, until_ms))
    this.send(member, { t: 'cluster-lease-grant', from: this.config.name, epoch: this.rec.view.epoch, until_ms }, true)
  }

  private maybeCatchUp(peer: string, epoch: number, db_epoch: number): void {
    const behind = epoch > this.rec.view.epoch || (epoch === this.rec.view.epoch && db_epoch > this.rec.db.db_epoch)
    if (!behind || this.now_ms - this.last_catch_up_ms < this.config.tick_ms) return
    this.last_catch_up_ms = this.now_ms
    this.send(peer, { t: 'cluster-catch-up', from: this.config.name, epoch: this.rec.view.epoch })
  }

  // ---- quorum lease -------------------------------------------------------------------

  private startLeaseRound(): void {
    const db = this.draft_db ?? this.rec.db
    const view = this.rec.view
    const msg: ClusterMessageOf<'cluster-lease-request'> = {
      t: 'cluster-lease-request',
      from: this.config.name,
      epoch: view.epoch,
      round: ++this.round,
      started_ms: this.now_ms,
      db_epoch: db.db_epoch,
      db,
    }
    this.leasing = { round: msg.round, started_ms: this.now_ms, request: msg, acks: new Set(), alive: new Set(), granted: false }
    const withoutDb = { ...msg, db: null }
    for (const member of view.members) {
      if (member !== this.config.name) this.send(member, this.db_held.get(member) === db.db_epoch ? withoutDb : msg, true)
    }
    if (this.config.witness) this.send(this.config.witness, withoutDb, true)
    this.onLeaseRequest(msg)
  }

  private onLeaseRequest(m: ClusterMessageOf<'cluster-lease-request'>): void {
    if (m.epoch > this.rec.view.epoch) {
      const kept = this.early_lease_request
      if (!kept || m.epoch > kept.epoch || (m.epoch === kept.epoch && m.round > kept.round)) this.early_lease_request = m
      return this.maybeCatchUp(m.from, m.epoch, m.db_epoch)
    }
    if (m.epoch < this.rec.view.epoch || m.from !== this.rec.view.coordinator) return
    if (m.db !== null && m.db.db_epoch !== m.db_epoch) return
    // Sent without the database, as this host had its epoch: if it has not (a restart lost
    // a write), it cannot vote for what it does not hold; the catch-up brings the whole request.
    const db = m.db ?? (this.rec.db.db_epoch === m.db_epoch ? this.rec.db : null)
    if (db === null) return this.rec.db.db_epoch < m.db_epoch ? this.maybeCatchUp(m.from, m.epoch, m.db_epoch) : this.answerWithoutVote(m)
    const r = onLeaseRequest(this.config.name, this.rec.acceptor, m, this.config)
    if (!r) return this.answerWithoutVote(m)
    this.heard = { epoch: m.epoch, coordinator: m.from, at_ms: this.now_ms }
    this.rec = { ...this.rec, acceptor: r.record, db }
    this.send(m.from, r.ack, true)
    if (r.durable) this.persist()
    // Once written (this send waits behind the persist), the database epoch this host holds.
    if (this.rec.db.db_epoch <= this.durably_acked_db_epoch) return
    this.durably_acked_db_epoch = this.rec.db.db_epoch
    this.send(m.from, { ...r.ack, db_epoch: this.rec.db.db_epoch })
  }

  /**
   * A member whose acceptor may not confirm the lease (it promised a successor that has
   * not been decided yet) still tells its coordinator it is alive, so it keeps its grant.
   */
  private answerWithoutVote(m: ClusterMessageOf<'cluster-lease-request'>): void {
    const promised = this.rec.acceptor.promised !== null && m.epoch === this.rec.acceptor.committed_epoch
    if (!promised || !this.rec.view.members.includes(this.config.name)) return
    this.send(m.from, { t: 'cluster-lease-ack', from: this.config.name, epoch: m.epoch, round: m.round, vote: false, db_epoch: null }, true)
  }

  private onLeaseAck(m: ClusterMessageOf<'cluster-lease-ack'>): void {
    const l = this.leasing
    const view = this.rec.view
    if (!this.isCoordinator() || m.epoch !== view.epoch) return
    if (m.db_epoch !== null) return this.noteDurable(m.from, m.db_epoch)
    if (!l || m.round !== l.round) return
    if (m.vote) this.db_held.set(m.from, l.request.db_epoch)
    if (l.granted) return this.grant(m.from, l)
    if (!m.vote) return void l.alive.add(m.from)
    l.acks.add(m.from)
    if (!hasQuorum(view, l.acks, this.config.witness ?? '')) return
    l.granted = true
    for (const member of [...l.acks, ...l.alive]) this.grant(member, l)
    this.extendLease(view.epoch, l.started_ms + this.config.lease_ms)
  }

  /**
   * A voter has the database up to `db_epoch` on disk: a write is committed once a quorum
   * of the view's voters has it there (the lease may be renewed well before that: a slow
   * disk delays commits, never the lease).
   */
  private noteDurable(voter: string, db_epoch: number): void {
    const on_disk = this.durable_db_epochs
    on_disk.set(voter, Math.max(on_disk.get(voter) ?? 0, db_epoch))
    const view = this.rec.view
    for (const d of [...new Set(on_disk.values())].sort((a, b) => b - a)) {
      if (d <= this.committed_db_epoch) return
      const holders = new Set([...on_disk].filter(([, e]) => e >= d).map(([v]) => v))
      if (!hasQuorum(view, holders, this.config.witness ?? '')) continue
      this.committed_db_epoch = d
      this.emit('cluster.config-committed', { db_epoch: d, epoch: view.epoch })
      return
    }
  }

  private onLeaseGrant(m: ClusterMessageOf<'cluster-lease-grant'>): void {
    const view = this.rec.view
    if (m.epoch !== view.epoch || m.from !== view.coordinator || !view.members.includes(this.config.name)) return
    this.extendLease(m.epoch, m.until_ms)
  }

  private extendLease(epoch: number, until_ms: number): void {
    if (until_ms <= this.now_ms) return
    const had = this.holdsLease(this.now_ms)
    this.lease = { epoch, until_ms: Math.max(until_ms, this.lease?.epoch === epoch ? this.lease.until_ms : 0) }
    this.last_lease_ms = this.now_ms
    this.leased_in_view = true
    if (!had) this.emit('cluster.quorum-gained', { epoch, lease_until_ms: this.lease.until_ms, coordinator: this.rec.view.coordinator })
  }

  // ---- messages ------------------------------------------------------------------------

  private onMessage(m: ClusterMessage): void {
    const from = m.from
    if (from === this.config.name) {
      // Only our own loop-back deliveries; a peer claiming our name is ignored by the shell.
    } else if (this.nodes.includes(from)) {
      if (this.detector.heard(from, this.now_ms)) this.emit('cluster.node-up', { node: from })
      this.noteHeard(from)
    } else if (from !== this.config.witness) {
      return
    }
    switch (m.t) {
      case 'cluster-heartbeat':
        return this.maybeCatchUp(m.from, m.epoch, m.db_epoch)
      case 'cluster-prepare':
        return this.onPrepare(m)
      case 'cluster-promise':
        return this.onPromise(m)
      case 'cluster-refuse':
        return this.onRefuse(m)
      case 'cluster-accept':
        return this.onAccept(m)
      case 'cluster-accepted':
        return this.onAccepted(m)
      case 'cluster-commit':
        return this.onCommit(m)
      case 'cluster-catch-up':
        return this.onCatchUp(m)
      case 'cluster-lease-request':
        return this.onLeaseRequest(m)
      case 'cluster-lease-ack':
        return this.onLeaseAck(m)
      case 'cluster-lease-grant':
        return this.onLeaseGrant(m)
      case 'cluster-config-write':
        if (this.isCoordinator()) this.writeConfig(m.key, m.value, m.from)
        return
      case 'cluster-leave':
        this.detector.markDown(m.from)
        this.emit('cluster.node-down', { node: m.from, reason: 'left' })
        return
    }
  }

  // ---- operator commands ------------------------------------------------------------------

  private onCommand(c: ClusterCommand): void {
    if (this.rec.left) {
      throw new HvlabError('HVLAB_E_STATE', `host ${this.config.name} has left the cluster; restart it with a fresh record to rejoin`)
    }
    switch (c.kind) {
      case 'force-quorum':
        return this.forceQuorum()
      case 'pause':
        return this.requestWrite(`node/${this.config.name}/state`, 'paused')
      case 'resume':
        return this.requestWrite(`node/${this.config.name}/state`, null)
      case 'set-config':
        return this.requestWrite(c.key, c.value)
      case 'leave':
        return this.leave()
    }
  }

  private requestWrite(key: string, value: string | null): void {
    if (this.rec.view.epoch === 0) {
      throw new HvlabError('HVLAB_E_STATE', `cannot change the cluster configuration: no cluster has formed yet; wait for quorum`)
    }
    if (this.isCoordinator()) return this.writeConfig(key, value, this.config.name)
    this.send(this.rec.view.coordinator, { t: 'cluster-config-write', from: this.config.name, key, value })
  }

  private writeConfig(key: string, value: string | null, by: string): void {
    const db = this.draft_db ?? this.rec.db
    const pending = db.db_epoch - this.committed_db_epoch
    const refuse = (why: string): void => this.emit('cluster.config-write-refused', { key, by, reason: why })
    if (this.election !== null || !this.holdsLease(this.now_ms))
      return refuse('this coordinator holds no quorum lease (a view change is under way); retry shortly')
    if (pending >= this.config.config_writes_pending_max) return refuse(`${pending} writes are already waiting for quorum; retry shortly`)
    if ((db.db_epoch + 1) % DB_WRITES_PER_VIEW === 0) return refuse('too many writes in this view; they resume after the next view change')
    const config = { ...db.config }
    if (value === null) delete config[key]
    else config[key] = value
    if (Object.keys(config).length > CONFIG_ENTRIES_MAX)
      return refuse(`the cluster database holds at most ${CONFIG_ENTRIES_MAX} entries; delete some first`)
    this.draft_db = { db_epoch: db.db_epoch + 1, config }
    this.startLeaseRound()
  }

  private forceQuorum(): void {
    const highest = Math.max(this.rec.view.epoch, this.rec.acceptor.committed_epoch + 1)
    const epoch = nextGenerationEpoch(highest)
    const votes = forcedVotes(this.config.name)
    const view: ClusterView = {
      epoch,
      members: [this.config.name],
      voters: votes.voters,
      witness_vote: votes.witness_vote,
      coordinator: this.config.name,
      forced: true,
      leases_end_ms: Math.max(this.rec.view.leases_end_ms, this.rec.acceptor.lease_until_ms),
      removed_lease_end_ms: Math.max(this.rec.view.leases_end_ms, this.rec.acceptor.lease_until_ms),
    }
    this.election = null
    this.emit('cluster.forced-quorum', {
      epoch,
      db_epoch: epoch * DB_WRITES_PER_VIEW,
      warning: "this host's cluster database is now authoritative; other hosts will join it (prevent quorum)",
    })
    this.adoptView(view, { db_epoch: epoch * DB_WRITES_PER_VIEW, config: { ...this.rec.db.config } })
    this.broadcast(this.commitMessage(), false)
  }

  private leave(): void {
    this.rec = { ...this.rec, left: true }
    this.persist()
    this.dropLease()
    this.election = null
    this.leasing = null
    for (const peer of this.detector.peers()) this.send(peer, { t: 'cluster-leave', from: this.config.name })
    this.emit('cluster.node-left', { epoch: this.rec.view.epoch })
  }

  // ---- small pieces ---------------------------------------------------------------------

  private commitMessage(): ClusterMessageOf<'cluster-commit'> {
    return { t: 'cluster-commit', from: this.config.name, view: this.rec.view, db: this.rec.db }
  }

  private voterNow(): VoterNow {
    return { now_ms: this.now_ms, settings: this.config, heard: this.heard }
  }

  private noteBallot(n: number): void {
    if (n > this.rec.ballot_n) this.rec = { ...this.rec, ballot_n: n }
  }

  private setAcceptor(record: AcceptorRecord, changed: boolean): void {
    if (!changed) return
    this.rec = { ...this.rec, acceptor: record }
    this.persist()
  }

  /** To every other host and the witness; with `self`, also through our own acceptor. */
  private broadcast(m: ClusterMessage, self: boolean): void {
    for (const n of this.nodes) if (n !== this.config.name) this.send(n, m)
    if (this.config.witness) this.send(this.config.witness, m)
    if (self) this.onMessage(m)
  }

  /** `liveness`: the message depends on no write and leaves at once (shared/machine/effect.ts). */
  private send(to: string, message: ClusterMessage, liveness = false): void {
    if (to === this.config.name) return this.onMessage(message)
    // A message that leaves at once proves this host alive as a heartbeat does.
    if (liveness && this.nodes.includes(to)) this.next_heartbeat_ms.set(to, this.now_ms + this.detector.intervalTo(to))
    this.out.push(liveness ? { kind: 'send', to, message, liveness } : { kind: 'send', to, message })
  }

  private persist(): void {
    // Records are replaced, never mutated in place, so the shell may keep this one as is.
    this.out.push({ kind: 'persist', record: this.rec })
  }

  private emit<K extends ClusterEventKind>(kind: K, details: ClusterDetailsOf<K>): void {
    const event = { kind, source: this.config.name, details } as ClusterEvent
    this.out.push({ kind: 'emit', event })
  }
}

function sameMembers(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i])
}
