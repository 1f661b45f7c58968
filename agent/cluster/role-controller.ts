/**
 * The cluster's role controller: a pure state machine that decides where each VM role
 * runs. Driven by membership (which nodes are Up / Paused / Down, in an epoch), the
 * agents' confirmations (started, stopped, start failed), health verdicts, operator
 * commands and a periodic failback check; it answers with effects for its shell.
 *
 * Safety: a VM is never on two nodes. A role gets a start on a node only while it has
 * no owner, and it loses its owner only when (a) the owner confirmed the stop, (b) the
 * owner reported the start failed, or (c) membership declared the owner Down — which
 * the membership layer does only after the quorum-loss bound, by when a node cut off
 * from the cluster has stopped its VMs. A move is stop-then-start, or — with
 * `live_migration` on — a migration: the owner is asked to migrate the VM (`migrate-vm`),
 * the role stays running on its owner meanwhile (inventory reconcile leaves it alone), and
 * only when the owner reports the VM runs on the target (it releases its copy only after
 * the target runs it) does the owner change, without a stop; a failed migration leaves it
 * on the owner (the way back).
 *
 * Every start-vm / stop-vm carries an `op` number (per role, increasing); the agent echoes
 * it in its reply, and `vm-failed` carries the op of the start that made that incarnation.
 * A reply for any other op is stale and ignored, so a late answer can never be taken for
 * the current one. The agent must apply a role's starts and stops in the order received.
 *
 * Refused operator commands throw HvlabError (HVLAB_E_USAGE / NOT_FOUND / STATE) with a
 * message for people, before changing anything.
 */
import { HvlabError } from '../../shared/errors.js'
import type { ReplicationSetting } from '../../shared/protocol/replica-messages.js'
import type { EmitEffect } from '../../shared/machine/effect.js'
import type { DetailsOf } from '../../shared/timeline/events.js'
import type { RoleEvent, RoleEventKind } from '../../shared/timeline/role-events.js'
import {
  DEFAULT_FAILOVER_POLICY,
  EMPTY_HISTORY,
  checkFailoverPolicy,
  decideOnFailure,
  failoversAllowed,
  inFailbackWindow,
  recordDecision,
  policyInterval,
  rolePolicy,
  type FailoverPolicy,
  type FailureHistory,
} from './failover-policy.js'
import {
  chooseNode,
  classesOn,
  loadOf,
  planDrain,
  planFailback,
  planReturn,
  refusal,
  type MovePlan,
  type NodeStatus,
  type NodeView,
} from './placement.js'
import type { PausedRecord } from './cluster-status.js'
import { failBackRefusal, failedOverRefusal, failedOverTo, replicationChangeRefusal } from './replica-failover-guard.js'
import { removalRefusal } from './role-removal.js'
import {
  CLUSTER_NODES_MAX,
  FAILURE_HISTORY_ENTRIES_MAX,
  ROLES_MAX,
  type DRAIN_STATUSES,
  type GuestLoadSetting,
  type VmStorageSpecRecord,
} from '../../shared/protocol/cluster-messages.js'
import {
  byPriority,
  changeVmRole,
  checkFitsAHost,
  createVmRole,
  isOnNode,
  priorityOf,
  transition,
  withMigration,
  type RoleState,
  type StopCause,
  type VmRole,
  type VmRoleChanges,
  type VmRoleSpec,
} from './vm-role.js'

/** Get-ClusterNode's DrainStatus of a node. */
export type DrainStatus = (typeof DRAIN_STATUSES)[number]

/** A paused node's database record for a drain status (a drain under way is `draining` whatever its status). */
const RECORD_OF_DRAIN_STATUS: Record<DrainStatus, PausedRecord> = {
  NotInitiated: 'paused',
  InProgress: 'draining',
  Completed: 'drained',
  Failed: 'drain-failed',
}
const DRAIN_STATUS_OF_RECORD: Record<PausedRecord, DrainStatus> = {
  paused: 'NotInitiated',
  draining: 'InProgress',
  drained: 'Completed',
  'drain-failed': 'Failed',
}

export interface RoleControllerConfig {
  /** The cluster's failover policy, its periods already scaled by the lab's timeScale (scaledFailoverPolicy). */
  policy: FailoverPolicy
  /** The lab's timeScale, for the periods a role sets itself (`vm set --failover-period-h`). */
  time_scale: number
  /** The most roles the cluster keeps. */
  roles_max: number
  /** The `source` of timeline events. */
  source: string
  /** Moves (move, drain, failback) live-migrate instead of stop-then-start. */
  live_migration: boolean
}

/** How a role is migrated (see shared/protocol/cluster-messages.ts). */
export interface MigrationOptions {
  readonly mode: 'live' | 'quick'
  readonly budget_ms: number | null
  readonly max_rounds: number | null
  readonly verify: boolean
  readonly ticket: string
}

/**
 * A start's answer may take this long (the host first makes the VM's disk writable in its
 * site: CLX status, switchover or failover, and the wait for the copy to become writable);
 * until then an inventory that does not show the VM does not count as a failure.
 */
export const START_REPLY_WAIT_MS = 60_000

/** After a migration failed, drain and failback leave the role alone this long. */
export const MIGRATION_RETRY_AFTER_MS = 30_000

export const DEFAULT_ROLE_CONTROLLER: Readonly<RoleControllerConfig> = Object.freeze({
  policy: DEFAULT_FAILOVER_POLICY,
  time_scale: 1,
  roles_max: ROLES_MAX,
  source: 'cluster',
  live_migration: false,
})

export type RoleCommand =
  | { readonly op: 'create'; readonly spec: VmRoleSpec }
  /** `force_storage`: the next start may use a copy CLX would refuse as not in sync (the operator's call). */
  | { readonly op: 'start'; readonly name: string; readonly force_storage?: boolean }
  | { readonly op: 'stop'; readonly name: string }
  /** `vm set`: settings applied at once (memory only while the VM is on no node). */
  | { readonly op: 'set'; readonly name: string; readonly changes: VmRoleChanges }
  /** The VM left its replica server (a fail-back): its replication goes forward again as `replication` (null: none, an unplanned failover here), and the cluster may start it. */
  | { readonly op: 'fail-back'; readonly name: string; readonly replication: ReplicationSetting | null }
  | { readonly op: 'move'; readonly name: string; readonly to: string }
  | { readonly op: 'migrate'; readonly name: string; readonly to: string; readonly options: MigrationOptions }
  | { readonly op: 'pause'; readonly node: string; readonly drain: boolean }
  | { readonly op: 'resume'; readonly node: string; readonly failback: boolean }
  /** Removes a stopped or failed role (role-removal.ts); its disk is the shell's (vm-removal.ts). */
  | { readonly op: 'remove'; readonly name: string }

export type RoleInput =
  /** The membership layer's view; a node is Down only after the quorum-loss bound. */
  | { readonly kind: 'membership'; readonly epoch: number; readonly nodes: readonly NodeView[] }
  | { readonly kind: 'vm-started'; readonly role: string; readonly node: string; readonly op: number }
  /**
   * `storage_refused`: CLX would not make the VM's disk writable on that node (stale or
   * syncing copy …): a failed start (role.storage-refused on the timeline) that the failover
   * policy restarts and fails over within its limits; when they are spent the role is
   * failed with the reason, and the operator may `vm start --force-storage`.
   */
  | {
      readonly kind: 'vm-start-failed'
      readonly role: string
      readonly node: string
      readonly op: number
      readonly reason: string
      readonly storage_refused?: boolean
      /** The node held no quorum lease when the start came: no failure of the role (deferStart). */
      readonly no_lease?: boolean
    }
  | { readonly kind: 'vm-stopped'; readonly role: string; readonly node: string; readonly op: number }
  /**
   * The owner reports the VM failed: a health verdict (IsAlive failed; `gone` false, the VM
   * process still exists) or a crash or guest shutdown (`gone` true). `op` is the op of the
   * start that made this incarnation.
   */
  | {
      readonly kind: 'vm-failed'
      readonly role: string
      readonly node: string
      readonly op: number
      readonly gone: boolean
      readonly reason: string
    }
  /** Sent by the shell periodically with the cluster's local hour, for failback windows. */
  | { readonly kind: 'failback-check'; readonly hour_of_day: number }
  | { readonly kind: 'command'; readonly command: RoleCommand }
  /**
   * What `node` reports it runs (its VM inventory). `ops_at_request` is `opSnapshot()`
   * taken when the inventory was asked for: a role whose op changed since is left alone
   * (a start or stop crossed the question), so only settled roles are corrected.
   */
  | {
      readonly kind: 'inventory'
      readonly node: string
      readonly vms: readonly InventoryVm[]
      readonly ops_at_request: ReadonlyMap<string, number>
    }
  /** After `restore`: every member was asked for its inventory; placing roles may begin. */
  | { readonly kind: 'sync-done' }
  /** Time passed: starts held until now (nextHeldStartMs) are carried out. */
  | { readonly kind: 'timer' }
  /** The owner `node` reports how migration `op` to `to` ended; ok: the VM runs on `to` and no longer on `node`. */
  | {
      readonly kind: 'vm-migrated'
      readonly role: string
      readonly node: string
      readonly to: string
      readonly op: number
      readonly ok: boolean
      readonly reason: string
    }

export interface InventoryVm {
  readonly role: string
  /** The op of the start that made the VM on that host. */
  readonly op: number
}

/** A role or node event for the timeline (shared/timeline/role-events.ts). */
export type { RoleEvent }

export type RoleEffect =
  | {
      readonly kind: 'start-vm'
      readonly role: string
      readonly node: string
      readonly op: number
      readonly epoch: number
      readonly memory_mib: number
      /** The VM's disk, for the host's CLX (null: local). */
      readonly storage: VmStorageSpecRecord | null
      readonly force_storage: boolean
      /** The guest load the role keeps (`vm load`), applied as it starts; null: idle. */
      readonly load: GuestLoadSetting | null
    }
  | {
      readonly kind: 'stop-vm'
      readonly role: string
      readonly node: string
      readonly op: number
      readonly epoch: number
      readonly reason: string
    }
  /** Ask the owner `node` to migrate the VM to `to`, where it runs as start `op`. */
  | {
      readonly kind: 'migrate-vm'
      readonly role: string
      readonly node: string
      readonly to: string
      readonly op: number
      readonly epoch: number
      readonly options: MigrationOptions
    }
  /**
   * The role record changed (state, owner, reason): the shell queues it as a desired write
   * to the cluster database (written through the quorum a few per tick, and repeated
   * until the database shows it); not a `persist`, which would be durable before the next effect.
   */
  | { readonly kind: 'write-role-record'; readonly role: VmRole }
  /** Record the node's paused flag in the cluster database (a desired write, like write-role-record). */
  | { readonly kind: 'set-node-paused'; readonly node: string; readonly paused: boolean; readonly record?: PausedRecord }
  /** The role was removed: delete its record from the cluster database (a desired write, like write-role-record). */
  | { readonly kind: 'delete-role-record'; readonly role: string }
  | EmitEffect<RoleEvent>

/** What to do once the owner confirms a stop. `failover`: the placement is the failover policy's (role.failed-over). */
type AfterStop =
  | { readonly kind: 'stay-stopped' }
  | { readonly kind: 'fail'; readonly reason: string }
  /** `not_before_ms`: the start waits until then (the policy's restart delay after a failure). */
  | { readonly kind: 'start-on'; readonly node: string; readonly reason: string; readonly not_before_ms?: number }
  | {
      readonly kind: 'place'
      readonly avoid: string | null
      readonly reason: string
      readonly failover?: boolean
      readonly not_before_ms?: number
    }

interface RoleEntry {
  role: VmRole
  history: FailureHistory
  after_stop: AfterStop | null
  /** The paused node it was drained from, for `resume --failback`. */
  drained_from: string | null
  /** Last reason reported for not draining it, so the timeline is not flooded. */
  drain_stuck: string | null
  /** The last op number used for this role. */
  op_seq: number
  /** The op of the start or stop whose reply is awaited (or was last received). */
  current_op: number
  /** The op of the start that made the incarnation now on the owner. */
  start_op: number
  /** Restored from the database: its owner's inventory has not been seen yet. */
  needs_sync: boolean
  /** A migration to `to` as op `op` is under way (the role stays running on its owner). */
  migrating: { readonly to: string; readonly op: number } | null
  /** When its last migration failed (drain and failback wait MIGRATION_RETRY_AFTER_MS). */
  migrate_failed_ms: number | null
  /** Its owner was lost mid-migration to this node, which may run it: tried there while it stays in the cluster (lostWithNode). */
  in_doubt_on?: string
  /** The operator forced storage for the next start. */
  force_storage?: boolean
  /** When the current start was sent (an inventory without the VM is a failure only START_REPLY_WAIT_MS later). */
  start_sent_ms?: number
  /** While pending: what placement last said it waits for (told once, until that changes). */
  waiting?: string
  /** A start held back until `at_ms` (see HeldStart); the role is pending or failed meanwhile. */
  hold?: HeldStart
}

/**
 * A start the controller holds back: after a failure on a live node (the policy's
 * restart delay), after the policy failed the role (its retry period), or after a node
 * refused the start for want of a lease. At `at_ms` the role is restarted on `node` or
 * placed away from `avoid`; a timer input (or any other) after that carries it out.
 */
type HeldStart = { readonly at_ms: number; readonly then: StartPlan }

/** `start-on` with `in_place`: a restart on the node it ran on (allowed even if that node is paused). */
type StartPlan =
  | { readonly kind: 'start-on'; readonly node: string; readonly reason: string; readonly in_place: boolean }
  | {
      readonly kind: 'place'
      readonly avoid: string | null
      readonly reason: string
      readonly failover: boolean
      /** The node to start it on if it can take it (the destination of a migration its lost source left in doubt). */
      readonly prefer?: string
    }

/**
 * How long a role whose start a node refused for want of a quorum lease waits before it is
 * placed again (onStartDeferred): a few lease renewals, so a lapse has passed; the next
 * input after it (an inventory comes every 3 s) places it.
 */
export const NO_LEASE_RETRY_MS = 1_000

/** Ops of a restored controller start here × the epoch, so no reply to an older coordinator's op can match. */
export const OPS_PER_EPOCH = 1_000_000

export class RoleController {
  private readonly config: RoleControllerConfig
  private readonly entries = new Map<string, RoleEntry>()
  private nodes = new Map<string, NodeView>()
  private readonly paused = new Set<string>()
  private readonly draining = new Set<string>()
  /** Each node's last drain (absent: NotInitiated), as Get-ClusterNode's DrainStatus. */
  private readonly drain_status = new Map<string, DrainStatus>()
  /** What each paused node's database key holds as this controller last wrote or restored it. */
  private readonly paused_records = new Map<string, PausedRecord>()
  private epoch = 0
  private now_ms = 0
  private out: RoleEffect[] = []
  /** Restored and not yet synced with the hosts' inventories: do not place roles. */
  private syncing = false
  /**
   * Restored roles their recorded owner did not report while syncing, by role → that owner:
   * another member may still report it (the record can be stale), so they are judged when syncing ends.
   */
  private readonly missing_at_sync = new Map<string, string>()
  /** Every member's inventory was asked for and is in (`sync-done`); syncing may end. */
  private inventories_in = false
  /** Nodes whose inventory came in while syncing. */
  private readonly inventoried = new Set<string>()
  /** The highest op a removed role used: a role created again under its name starts above it, so no late reply matches. */
  private removed_ops_max = 0

  constructor(config: Partial<RoleControllerConfig> = {}) {
    this.config = { ...DEFAULT_ROLE_CONTROLLER, ...config }
    checkFailoverPolicy(this.config.policy)
  }

  step(input: RoleInput, now_ms: number): RoleEffect[] {
    if (!Number.isFinite(now_ms)) throw new HvlabError('HVLAB_E_INTERNAL', `now_ms must be finite, got ${now_ms}`)
    this.now_ms = Math.max(this.now_ms, now_ms)
    this.out = []
    switch (input.kind) {
      case 'membership':
        this.onMembership(input.epoch, input.nodes)
        break
      case 'vm-started':
        this.onStarted(input.role, input.node, input.op)
        break
      case 'vm-start-failed':
        if (input.no_lease === true) this.onStartDeferred(input.role, input.node, input.op, input.reason)
        else this.onStartFailed(input.role, input.node, input.op, input.reason, input.storage_refused === true)
        break
      case 'vm-stopped':
        this.onStopped(input.role, input.node, input.op)
        break
      case 'vm-failed':
        this.onFailed(input.role, input.node, input.op, input.gone, input.reason)
        break
      case 'failback-check':
        this.onFailbackCheck(input.hour_of_day)
        break
      case 'command':
        this.onCommand(input.command)
        break
      case 'inventory':
        this.onInventory(input.node, input.vms, input.ops_at_request)
        break
      case 'sync-done':
        this.inventories_in = true
        break
      case 'vm-migrated':
        this.onMigrated(input.role, input.node, input.to, input.op, input.ok, input.reason)
        break
      case 'timer':
        break // held starts that are due are carried out by reconcile
    }
    this.endSyncWhenSafe()
    this.reconcile()
    this.recordPausedNodes()
    const out = this.out
    this.out = []
    return out
  }

  /**
   * Loads the roles a previous coordinator kept in the cluster database, for a new
   * coordinator of `epoch`. Owners are as recorded; each role waits for its owner's
   * inventory (`inventory` input) to learn the op that made its VM, and no role is
   * placed until `sync-done`. A failed role is tried again the policy's retry period
   * after `now_ms` (its failure time is not recorded, so never sooner than that). Call
   * before any step.
   */
  restore(
    roles: readonly VmRole[],
    paused_nodes: readonly string[],
    epoch: number,
    paused_records: Readonly<Record<string, PausedRecord>> = {},
    now_ms = 0,
  ): void {
    if (this.entries.size > 0 || this.nodes.size > 0)
      throw new HvlabError('HVLAB_E_INTERNAL', 'restore is only for a fresh role controller')
    if (roles.length > this.config.roles_max)
      throw new HvlabError('HVLAB_E_INTERNAL', `the database lists ${roles.length} roles; at most ${this.config.roles_max} are allowed`)
    const op_base = epoch * OPS_PER_EPOCH
    for (const role of roles) {
      const after_stop: AfterStop | null = role.state === 'stopping' ? afterRestoredStop(role.stop_cause) : null
      this.entries.set(role.name, {
        role,
        history: role.failures ?? EMPTY_HISTORY, // the last coordinator's counters go on
        after_stop,
        drained_from: null,
        drain_stuck: null,
        op_seq: op_base,
        current_op: 0,
        start_op: 0,
        needs_sync: true,
        migrating: null,
        migrate_failed_ms: null,
      })
    }
    this.now_ms = Math.max(this.now_ms, now_ms)
    for (const e of this.entries.values()) if (e.role.state === 'failed') this.holdFailedRetry(e)
    for (const n of paused_nodes) this.restorePaused(n, paused_records[n] ?? 'paused')
    this.syncing = true
  }

  /** A paused node as the last coordinator left it: a drain under way goes on. */
  private restorePaused(node: string, record: PausedRecord): void {
    this.paused.add(node)
    this.paused_records.set(node, record)
    if (record === 'draining') this.draining.add(node)
    const status = DRAIN_STATUS_OF_RECORD[record]
    if (status !== 'NotInitiated') this.drain_status.set(node, status)
  }

  /** When the earliest held start falls due (feed a `timer` input then); null when none is held. */
  nextHeldStartMs(): number | null {
    let next: number | null = null
    for (const e of this.entries.values()) if (e.hold !== undefined && (next === null || e.hold.at_ms < next)) next = e.hold.at_ms
    return next
  }

  /** The current op of every role, to pass back with an inventory asked for now. */
  opSnapshot(): Map<string, number> {
    return new Map([...this.entries].map(([name, e]) => [name, e.current_op]))
  }

  get isSyncing(): boolean {
    return this.syncing
  }

  /** Every role, by name, for `vm list`. */
  list(): VmRole[] {
    return [...this.entries.values()].map((e) => e.role).sort((a, b) => (a.name < b.name ? -1 : 1))
  }

  role(name: string): VmRole | undefined {
    return this.entries.get(name)?.role
  }

  /** The effective status of every known node (membership, overlaid with pauses). */
  nodeViews(): NodeView[] {
    return [...this.nodes.values()].map((n) => ({ ...n, status: this.statusOf(n) }))
  }

  get currentEpoch(): number {
    return this.epoch
  }

  /** The failover policy's limits for this cluster's size (`cluster status` shows the counters against them). */
  failoverLimits(): { restarts_max: number; restart_period_ms: number; failovers_max: number; failover_period_ms: number } {
    const p = this.config.policy
    return {
      restarts_max: p.restarts_max,
      restart_period_ms: p.restart_period_ms,
      failovers_max: failoversAllowed(p, this.nodes.size),
      failover_period_ms: p.failover_period_ms,
    }
  }

  /** Every known node's drain status, by name. */
  drainStatuses(): Array<{ node: string; status: DrainStatus }> {
    return [...this.nodes.keys()].sort().map((node) => ({ node, status: this.drain_status.get(node) ?? 'NotInitiated' }))
  }

  // ── inputs ────────────────────────────────────────────────────────────────────────

  private onMembership(epoch: number, nodes: readonly NodeView[]): void {
    if (!Number.isInteger(epoch) || epoch < this.epoch) {
      this.emit('membership.stale', { epoch, current_epoch: this.epoch })
      return
    }
    if (nodes.length > CLUSTER_NODES_MAX)
      throw new HvlabError('HVLAB_E_INTERNAL', `membership lists ${nodes.length} nodes; at most ${CLUSTER_NODES_MAX} are allowed`)
    const before = this.nodes
    this.epoch = epoch
    this.nodes = new Map(nodes.map((n) => [n.name, { ...n }]))
    for (const [name, old] of before) {
      const now = this.nodes.get(name)
      if (old.status !== 'down' && (now === undefined || now.status === 'down')) this.onNodeLost(name)
    }
    for (const name of [...this.draining])
      if (this.nodes.get(name)?.status !== 'paused' && !this.paused.has(name)) this.draining.delete(name)
  }

  private onNodeLost(node: string): void {
    this.emit('node.lost', { node, epoch: this.epoch })
    if (this.draining.delete(node)) this.drain_status.set(node, 'Failed')
    // Several roles fail over at once: high priority first (WSFC's start order).
    for (const e of this.sortedEntries().sort((a, b) => byPriority(a.role, b.role))) {
      const after = e.after_stop
      if (after?.kind === 'start-on' && after.node === node && e.role.owner !== node) {
        e.after_stop = { kind: 'place', avoid: node, reason: `${after.reason}; target ${node} is down` }
      }
      if (e.role.owner !== node) continue
      if (this.syncing && e.needs_sync) continue // a stale record? judged when syncing ends
      this.lostWithNode(e, node)
    }
  }

  /**
   * The role's owner `node` is down: it ran there, so it runs nowhere now — unless it was
   * migrating: its destination may run it already (the source asked it to resume before it
   * was lost). The failover then goes to that destination if it can take it, where a start
   * keeps a VM that runs (VmHost.start) and a source's late resume is refused; while the
   * destination stays in the cluster without taking it, nothing starts it elsewhere
   * (awaitInDoubt); a destination out of the cluster has stopped its copy. Placed elsewhere at
   * once, two copies would run until the destination's next inventory had its copy stopped.
   */
  private lostWithNode(e: RoleEntry, node: string): void {
    const after = e.after_stop
    const destination = e.migrating?.to
    if (destination !== undefined) e.in_doubt_on = destination
    e.needs_sync = false
    e.migrating = null
    e.after_stop = null
    if (e.role.state === 'stopping' && after?.kind === 'stay-stopped') {
      this.setState(e, 'stopped', null, `${node} went down while it was stopping`)
    } else if (e.role.state === 'stopping' && after?.kind === 'fail') {
      this.failRole(e, after.reason)
    } else {
      this.onFailure(e, node, `${node} is down`, {
        node_lost: true,
        vm_present: false,
        ...(destination ? { migrated_to: destination } : {}),
      })
    }
  }

  private onStarted(name: string, node: string, op: number): void {
    const e = this.entries.get(name)
    if (e !== undefined && e.role.owner === node) {
      if (e.role.state === 'starting' && op === e.current_op) {
        delete e.in_doubt_on // one copy runs, the cluster's
        this.setState(e, 'running', node, `running on ${node}`)
      }
      return // otherwise a stale reply; the reply to the current op follows on the same channel
    }
    // Not ours to run there (a late or zombie report): make sure it is off.
    const stop_op = e === undefined ? 0 : ++e.op_seq
    this.emit('role.stray', { role: name, node, reason: 'a node reported a vm it does not own; stopping it there' })
    this.push({ kind: 'stop-vm', role: name, node, op: stop_op, epoch: this.epoch, reason: 'this node is not the owner of this vm' })
  }

  private onStartFailed(name: string, node: string, op: number, reason: string, storage_refused: boolean): void {
    const e = this.entries.get(name)
    if (e === undefined || e.role.owner !== node || op !== e.current_op || e.role.state !== 'starting') return
    // A refusal by storage (CLX) is the resource failing to come online on that node, as in
    // WSFC: the failover policy restarts it (a syncing copy may be Synced by then) and then
    // fails it over — to the other site, where the writable copy may be — within its limits.
    if (storage_refused) this.emit('role.storage-refused', { role: name, node, reason })
    this.onFailure(e, node, `start on ${node} ${storage_refused ? 'refused by storage' : 'failed'}: ${reason}`, {
      node_lost: false,
      vm_present: false,
    })
  }

  /**
   * `node` refused the start because it held no quorum lease just then (its lease lapsed
   * for a moment: a stalled process, a starved machine). That is no failure of the role, so
   * the failover policy does not count it (it used to, and a flapping cluster spent the
   * budget and failed roles that never ran): the role waits, pending, NO_LEASE_RETRY_MS
   * and is then placed again, away from that node if another may take it.
   */
  private onStartDeferred(name: string, node: string, op: number, reason: string): void {
    const e = this.entries.get(name)
    if (e === undefined || e.role.owner !== node || op !== e.current_op || e.role.state !== 'starting') return
    this.setState(e, 'pending', null, `start on ${node} deferred: ${reason}`)
    // The destination of a migration its lost source left in doubt may run the VM until its own lease lapses: tried again there, never beside it, while it stays in the cluster.
    const in_doubt = e.in_doubt_on === node
    e.hold = {
      at_ms: this.now_ms + NO_LEASE_RETRY_MS,
      then: in_doubt
        ? {
            kind: 'place',
            avoid: null,
            reason: `${node} may run it (its migration was left in doubt): tried there again`,
            failover: false,
            prefer: node,
          }
        : { kind: 'place', avoid: node, reason: 'placed after waiting', failover: false },
    }
  }

  private onStopped(name: string, node: string, op: number): void {
    const e = this.entries.get(name)
    if (e === undefined || e.role.owner !== node || op !== e.current_op || e.role.state !== 'stopping') return
    this.finishStop(e)
  }

  private onFailed(name: string, node: string, op: number, gone: boolean, reason: string): void {
    const e = this.entries.get(name)
    if (e === undefined || e.role.owner !== node || op !== e.start_op || e.migrating !== null) return
    if (e.role.state !== 'running' && e.role.state !== 'starting') return
    this.onFailure(e, node, reason, { node_lost: false, vm_present: !gone })
  }

  private onInventory(node: string, vms: readonly InventoryVm[], ops_at_request: ReadonlyMap<string, number>): void {
    const settled = (e: RoleEntry): boolean => e.current_op === (ops_at_request.get(e.role.name) ?? -1)
    if (this.syncing) this.inventoried.add(node)
    const reported = new Set<string>()
    for (const vm of [...vms].sort((a, b) => (a.role < b.role ? -1 : 1))) {
      reported.add(vm.role)
      const e = this.entries.get(vm.role)
      if (e === undefined) {
        this.emit('role.stray', { role: vm.role, node, reason: 'a node runs a vm the cluster does not know; stopping it there' })
        this.push({ kind: 'stop-vm', role: vm.role, node, op: 0, epoch: this.epoch, reason: 'the cluster has no role of this name' })
        continue
      }
      if (!settled(e) || e.migrating !== null) continue
      const { state, owner } = e.role
      if (e.needs_sync && owner !== null && owner !== node && state === 'running' && e.role.migration?.to === node) {
        // A coordinator change crossed a migration that completed: the VM runs on its target.
        this.leaveNode(e, `migrated to ${node} while the coordinator changed`)
        this.adopt(e, node, vm.op)
        continue
      }
      if (e.needs_sync && owner !== null && owner !== node && (state === 'running' || state === 'starting')) {
        // The last coordinator started it here and lost quorum before its record was written:
        // the VM runs on `node`, not on the recorded owner (stopping it here while restarting
        // it there could run it twice).
        this.leaveNode(e, `found running on ${node}, not on ${owner}, after a coordinator change`)
        this.adopt(e, node, vm.op)
        continue
      }
      if (owner === node) {
        if (e.needs_sync || (state === 'starting' && vm.op === e.current_op)) this.adopt(e, node, vm.op)
        // Asked after the stop was sent and still there: the stop was lost (its request
        // failed); without sending it again the role would stay stopping for good.
        else if (state === 'stopping') this.resendStop(e, node, `stopping again on ${node}: the stop did not arrive`)
        continue
      }
      if (owner === null && e.needs_sync) {
        this.adopt(e, node, vm.op)
        continue
      }
      this.emit('role.stray', {
        role: vm.role,
        node,
        reason: `${node} runs it but the cluster has it ${owner === null ? state : `on ${owner}`}; stopping it there`,
      })
      e.op_seq++
      this.push({ kind: 'stop-vm', role: vm.role, node, op: e.op_seq, epoch: this.epoch, reason: 'this node is not the owner of this vm' })
    }
    for (const e of this.sortedEntries()) {
      if (e.role.owner !== node || reported.has(e.role.name) || !settled(e) || e.migrating !== null) continue
      // A start still preparing the VM's replicated disk (CLX): its answer comes with the start reply.
      if (
        !e.needs_sync &&
        e.role.state === 'starting' &&
        e.role.storage?.kind === 'replicated' &&
        this.now_ms - (e.start_sent_ms ?? -Infinity) < START_REPLY_WAIT_MS
      )
        continue
      if (e.needs_sync && this.syncing) {
        this.missing_at_sync.set(e.role.name, node) // another member's inventory may still show it
        continue
      }
      this.missingOn(e, node)
    }
  }

  /** The owner `node` does not have the VM (any more). */
  private missingOn(e: RoleEntry, node: string): void {
    e.needs_sync = false
    if (e.role.state === 'stopping') this.finishStop(e)
    else this.onFailure(e, node, `vm ${e.role.name} is no longer on ${node}`, { node_lost: false, vm_present: false })
  }

  /**
   * Syncing ends once every member's inventory is in and every node is known not to run
   * other VMs: it sent its inventory since the restore, or it is down (outside the view and
   * past roles_free_at, so it stopped its VMs). Until then a restored role no node reported
   * may be running on a node not heard yet — the last coordinator started it there just
   * before it lost quorum, and that record never reached the database — so it is neither
   * restarted nor placed.
   */
  private endSyncWhenSafe(): void {
    if (!this.syncing || !this.inventories_in) return
    for (const n of this.nodes.values()) if (n.status !== 'down' && !this.inventoried.has(n.name)) return
    this.syncing = false
    for (const e of this.sortedEntries()) {
      const owner = e.role.owner
      if (!e.needs_sync || owner === null || e.migrating !== null) continue
      const status = this.nodes.get(owner)?.status
      // Its owner is down, or said it lacks it and nobody else reported it: it runs nowhere.
      if (status === undefined || status === 'down') this.lostWithNode(e, owner)
      else if (this.missing_at_sync.get(e.role.name) === owner) this.missingOn(e, owner)
    }
    this.missing_at_sync.clear()
    this.inventoried.clear()
  }

  /** The VM runs on `node` (reported by its inventory): the role is running there, made by start `op`. */
  private adopt(e: RoleEntry, node: string, op: number): void {
    const was_syncing = e.needs_sync
    e.needs_sync = false
    e.start_op = e.current_op = op
    e.op_seq = Math.max(e.op_seq, op)
    if (e.role.state === 'stopping') {
      // A stop of a restored role may not have reached the host: send it again.
      return this.resendStop(e, node, 'stopping again after a coordinator change')
    }
    if (e.role.owner === null) this.setState(e, 'starting', node, `found running on ${node}`)
    if (e.role.state !== 'running') this.setState(e, 'running', node, was_syncing ? `found running on ${node}` : `running on ${node}`)
    else if (e.role.migration !== undefined) {
      // Restored mid-migration and found on its owner: the migration did not complete.
      e.role = withMigration(e.role, null, `found running on ${node}`)
      this.push({ kind: 'write-role-record', role: e.role })
    }
  }

  private onFailbackCheck(hour_of_day: number): void {
    const eligible = this.sortedEntries().filter(
      (e) => this.movable(e) && e.role.failback.enabled && inFailbackWindow(e.role.failback.window, hour_of_day),
    )
    this.carryOut(
      planFailback(
        eligible.map((e) => e.role),
        this.nodeViews(),
        this.load(),
      ),
      'failback to a preferred owner',
      'failback',
    )
  }

  // ── commands ──────────────────────────────────────────────────────────────────────

  private onCommand(command: RoleCommand): void {
    switch (command.op) {
      case 'create':
        return this.create(command.spec)
      case 'start':
        return this.start(command.name, command.force_storage === true)
      case 'stop':
        return this.stop(command.name)
      case 'set':
        return this.set(command.name, command.changes)
      case 'fail-back':
        return this.failBack(command.name, command.replication)
      case 'move':
        return this.move(command.name, command.to, null)
      case 'migrate':
        return this.move(command.name, command.to, command.options)
      case 'pause':
        return this.pause(command.node, command.drain)
      case 'resume':
        return this.resume(command.node, command.failback)
      case 'remove':
        return this.remove(command.name)
    }
  }

  private create(spec: VmRoleSpec): void {
    const role = createVmRole(spec)
    if (this.entries.has(role.name))
      throw new HvlabError('HVLAB_E_STATE', `cannot create vm ${role.name}: a vm with that name exists; pick another name`)
    if (this.entries.size >= this.config.roles_max) {
      throw new HvlabError(
        'HVLAB_E_STATE',
        `cannot create vm ${role.name}: the cluster already has ${this.entries.size} vms, its limit; remove one first`,
      )
    }
    const unknown = [...role.preferred_owners, ...(role.possible_owners ?? [])].filter((n) => !this.nodes.has(n))
    if (unknown.length > 0) {
      throw new HvlabError(
        'HVLAB_E_USAGE',
        `cannot create vm ${role.name}: ${unknown[0]} is not a node of this cluster (nodes: ${[...this.nodes.keys()].sort().join(', ') || 'none'})`,
      )
    }
    checkFitsAHost(role, this.nodes.values())
    const e: RoleEntry = {
      role,
      history: EMPTY_HISTORY,
      after_stop: null,
      drained_from: null,
      drain_stuck: null,
      op_seq: Math.max(this.epoch * OPS_PER_EPOCH, this.removed_ops_max),
      current_op: 0,
      start_op: 0,
      needs_sync: false,
      migrating: null,
      migrate_failed_ms: null,
    }
    this.entries.set(role.name, e)
    this.push({ kind: 'write-role-record', role })
    this.emit('role.created', { role: role.name, memory_mib: role.memory_mib, preferred_owners: role.preferred_owners.join(',') })
  }

  private start(name: string, force_storage: boolean): void {
    const e = this.entryFor(name)
    const { state, owner } = e.role
    if (state === 'stopping' && e.after_stop?.kind === 'stay-stopped') {
      throw new HvlabError('HVLAB_E_STATE', `cannot start vm ${name}: it is stopping on ${owner}; wait until it is stopped, then start it`)
    }
    if (state === 'stopping' && e.after_stop?.kind === 'fail') {
      e.after_stop = { kind: 'place', avoid: owner, reason: 'started by operator' }
      this.setHistory(e, EMPTY_HISTORY)
      this.push({ kind: 'write-role-record', role: e.role })
      return
    }
    if (state !== 'stopped' && state !== 'failed') return // already running, starting, pending or moving
    if (failedOverTo(e.role) !== null) throw failedOverRefusal(e.role, 'start')
    this.setHistory(e, EMPTY_HISTORY) // an operator start resets the failover counters, as in WSFC
    e.force_storage = force_storage
    this.place(e, null, force_storage ? 'started by operator (storage forced)' : 'started by operator')
  }

  /**
   * `vm set`: the new settings are checked as a create checks them and recorded at once;
   * placement, failover and failback use them from the next decision on (a running VM is
   * not moved for them). Memory only changes while the VM is on no node.
   */
  private set(name: string, changes: VmRoleChanges): void {
    const e = this.entryFor(name)
    const { state, owner } = e.role
    if (changes.memory_mib !== undefined && changes.memory_mib !== e.role.memory_mib && (isOnNode(state) || e.migrating !== null)) {
      throw new HvlabError(
        'HVLAB_E_STATE',
        `cannot change the memory of vm ${name} while it is ${state} on ${owner}: the emulated VM cannot change its memory live; stop it first (\`hvlab vm stop ${name}\`), set it, then start it`,
      )
    }
    if (changes.replication !== undefined) {
      const why = replicationChangeRefusal(e.role, changes.replication, state !== 'stopped' || e.migrating !== null)
      if (why !== null) throw why
    }
    const role = changeVmRole(e.role, changes)
    const unknown = role.preferred_owners.filter((n) => !this.nodes.has(n))
    if (unknown.length > 0) {
      throw new HvlabError(
        'HVLAB_E_USAGE',
        `cannot change vm ${name}: ${unknown[0]} is not a node of this cluster (nodes: ${[...this.nodes.keys()].sort().join(', ') || 'none'})`,
      )
    }
    checkFitsAHost(role, this.nodes.values(), 'change')
    const changed = changedSettings(e.role, role)
    if (changed === '') return
    e.role = role
    this.push({ kind: 'write-role-record', role })
    this.emit('role.settings-changed', { role: name, changes: changed })
  }

  /**
   * The VM runs on its replica server no more (`replica failover --planned` failed it back,
   * or its planned failover did not start it there): replication goes forward again as
   * `forward`, and the cluster may start it. `forward` null: the VM's replica here runs it
   * from now on (an unplanned failover from another cluster), replicating nowhere.
   */
  private failBack(name: string, forward: ReplicationSetting | null): void {
    const e = this.entryFor(name)
    const why = failBackRefusal(e.role, forward)
    if (why !== null) throw why
    const { replication: _failedOver, ...rest } = e.role
    e.role = forward === null ? rest : { ...rest, replication: forward }
    this.push({ kind: 'write-role-record', role: e.role })
    this.emit('role.settings-changed', {
      role: name,
      changes: forward === null ? 'replication=none (failed over here, unplanned)' : `replication=${JSON.stringify(forward)} (failed back)`,
    })
  }

  private stop(name: string): void {
    const e = this.entryFor(name)
    this.refuseWhileMigrating(e, 'stop')
    const { state, owner } = e.role
    if (owner !== null && (state === 'running' || state === 'starting'))
      return this.stopOn(e, owner, { kind: 'stay-stopped' }, 'stopped by operator', 'operator')
    if (state === 'stopping') {
      e.after_stop = { kind: 'stay-stopped' }
      return
    }
    if (state === 'pending' || state === 'failed') this.setState(e, 'stopped', null, 'stopped by operator')
  }

  /** Removes a role that runs nowhere (role-removal.ts says when); its record is deleted from the database. */
  private remove(name: string): void {
    const e = this.entryFor(name)
    const roles = [...this.entries.values()].map((x) => x.role)
    const why = removalRefusal(e.role, e.migrating?.to ?? null, this.syncing, roles)
    if (why !== null) throw why
    this.entries.delete(name)
    this.removed_ops_max = Math.max(this.removed_ops_max, e.op_seq)
    this.push({ kind: 'delete-role-record', role: name })
    this.emit('role.removed', { role: name, from: e.role.state })
  }

  /** `options` null: the cluster's default way (live migration when on, else stop-then-start). */
  private move(name: string, to: string, options: MigrationOptions | null): void {
    const e = this.entryFor(name)
    this.refuseWhileMigrating(e, 'move')
    const { state, owner } = e.role
    if (state !== 'running' || owner === null) {
      const hint = state === 'stopped' || state === 'failed' ? `start it with \`hvlab vm start ${name}\` first` : 'wait until it is running'
      throw new HvlabError('HVLAB_E_STATE', `cannot move vm ${name} to ${to}: it is ${state}${owner ? ` on ${owner}` : ''}; ${hint}`)
    }
    if (owner === to) throw new HvlabError('HVLAB_E_STATE', `cannot move vm ${name} to ${to}: it already runs there`)
    const node = this.nodes.get(to)
    const why = refusal(e.role, node && { ...node, status: this.statusOf(node) }, this.load(), to)
    if (why !== null)
      throw new HvlabError(node === undefined ? 'HVLAB_E_NOT_FOUND' : 'HVLAB_E_STATE', `cannot move vm ${name} to ${to}: ${why}`)
    this.emit('role.move-requested', { role: name, from: owner, to })
    if (options !== null || this.config.live_migration)
      return this.migrateTo(e, to, options ?? this.defaultMigration(e), 'moved by operator')
    this.stopOn(e, owner, { kind: 'start-on', node: to, reason: 'moved by operator' }, `moving to ${to}`, 'move')
  }

  private refuseWhileMigrating(e: RoleEntry, verb: string): void {
    if (e.migrating === null) return
    throw new HvlabError(
      'HVLAB_E_STATE',
      `cannot ${verb} vm ${e.role.name}: it is being migrated from ${e.role.owner} to ${e.migrating.to}; wait for it, or cancel with \`hvlab vm migrate-cancel ${e.role.name}\``,
    )
  }

  private defaultMigration(e: RoleEntry): MigrationOptions {
    return { mode: 'live', budget_ms: null, max_rounds: null, verify: false, ticket: `op${e.op_seq + 1}` }
  }

  /** Asks the owner to migrate the VM; the role stays running on the owner until it reports. */
  private migrateTo(e: RoleEntry, to: string, options: MigrationOptions, reason: string): void {
    const owner = e.role.owner
    if (owner === null || e.role.state !== 'running')
      throw new HvlabError('HVLAB_E_INTERNAL', `vm ${e.role.name}: migrated while ${e.role.state}`)
    const op = ++e.op_seq
    e.current_op = op
    e.migrating = { to, op }
    e.role = withMigration(e.role, e.migrating, `live-migrating to ${to} (${options.mode}, ${reason})`)
    this.push({ kind: 'write-role-record', role: e.role })
    this.emit('role.migrating', { role: e.role.name, from: owner, to, mode: options.mode, reason })
    this.push({ kind: 'migrate-vm', role: e.role.name, node: owner, to, op, epoch: this.epoch, options })
  }

  private onMigrated(name: string, node: string, to: string, op: number, ok: boolean, reason: string): void {
    const e = this.entries.get(name)
    if (e === undefined || e.migrating === null || e.migrating.op !== op || e.migrating.to !== to || e.role.owner !== node) return // stale
    e.migrating = null
    if (ok) {
      // The owner changes without a stop: the source released its VM only after `to` ran it.
      e.start_op = e.current_op = op
      e.drain_stuck = null
      e.role = { ...withMigration(e.role, null, `running on ${to}; migrated from ${node}`), owner: to, last_owner: to }
      this.push({ kind: 'write-role-record', role: e.role })
      this.emit('role.migrated', { role: name, from: node, to, reason })
      return
    }
    e.migrate_failed_ms = this.now_ms
    e.drained_from = null
    e.role = withMigration(e.role, null, `running on ${node}; migration to ${to} failed: ${reason}`)
    this.push({ kind: 'write-role-record', role: e.role })
    this.emit('role.migrate-failed', { role: name, node, to, reason })
  }

  private pause(node: string, drain: boolean): void {
    const view = this.nodeFor(node, 'pause')
    if (view.status === 'down') throw new HvlabError('HVLAB_E_STATE', `cannot pause ${node}: it is down; there is nothing to drain`)
    const newly = !this.paused.has(node)
    this.paused.add(node)
    if (drain) {
      this.draining.add(node)
      this.drain_status.set(node, 'InProgress')
    }
    this.recordPaused(node) // in the database before any move of the drain
    if (newly) this.emit('node.paused', { node, drain: drain ? 1 : 0 })
  }

  private resume(node: string, failback: boolean): void {
    const view = this.nodeFor(node, 'resume')
    this.paused_records.delete(node)
    if (this.paused.delete(node) || view.status === 'paused') {
      this.push({ kind: 'set-node-paused', node, paused: false })
      this.emit('node.resumed', { node, failback: failback ? 1 : 0 })
    }
    this.draining.delete(node)
    this.drain_status.delete(node)
    const drained = this.sortedEntries().filter((e) => e.drained_from === node)
    for (const e of drained) e.drained_from = null
    if (!failback) return
    const movable = drained.filter((e) => this.movable(e)).map((e) => e.role)
    this.carryOut(planReturn(node, movable, this.nodeViews(), this.load()), `failback to ${node} after resume`, 'failback')
  }

  /** Writes each paused node's record (paused, draining, drained, drain-failed) when it changed. */
  private recordPausedNodes(): void {
    for (const node of [...this.paused].sort()) this.recordPaused(node)
  }

  private recordPaused(node: string): void {
    const record = this.draining.has(node) ? 'draining' : RECORD_OF_DRAIN_STATUS[this.drain_status.get(node) ?? 'NotInitiated']
    if (this.paused_records.get(node) === record) return
    this.paused_records.set(node, record)
    this.push({ kind: 'set-node-paused', node, paused: true, record })
  }

  // ── decisions ─────────────────────────────────────────────────────────────────────

  /** Drains paused nodes and places pending roles; runs after every input. */
  private reconcile(): void {
    if (this.syncing) return
    for (const node of [...this.draining].sort()) this.drainStep(node)
    const due = (e: RoleEntry): boolean => e.hold === undefined || e.hold.at_ms <= this.now_ms
    const ready = (e: RoleEntry): boolean => due(e) && (e.role.state === 'pending' || (e.role.state === 'failed' && e.hold !== undefined))
    for (const e of this.sortedEntries()
      .filter(ready)
      .sort((a, b) => byPriority(a.role, b.role))) {
      if (!ready(e)) continue
      const plan = e.hold?.then ?? { kind: 'place', avoid: null, reason: 'placed after waiting', failover: false }
      delete e.hold
      this.carryOutStart(e, plan)
    }
  }

  private carryOutStart(e: RoleEntry, plan: StartPlan): void {
    if (plan.kind === 'start-on') return this.startOn(e, plan.node, plan.reason, plan.in_place)
    this.place(e, plan.avoid, plan.reason, plan.failover, plan.prefer ?? null)
  }

  /** Carries out `plan` now, or, if `at_ms` is later, leaves the role pending (on no node) until then. */
  private startAt(e: RoleEntry, plan: StartPlan, at_ms: number, why: string): void {
    if (at_ms <= this.now_ms) {
      this.leaveNode(e, why)
      return this.carryOutStart(e, plan)
    }
    const doing =
      plan.kind === 'start-on' ? (plan.in_place ? 'restarting' : `starting on ${plan.node}`) : plan.failover ? 'failing over' : 'placing'
    this.setState(e, 'pending', null, `${why}; ${doing} in ${policyInterval(at_ms - this.now_ms)}`)
    e.hold = { at_ms, then: plan }
  }

  private drainStep(node: string): void {
    const onNode = this.sortedEntries().filter((e) => e.role.owner === node)
    if (onNode.length === 0) {
      this.draining.delete(node)
      this.drain_status.set(node, 'Completed')
      this.emit('node.drained', { node })
      return
    }
    const movable = onNode.filter((e) => this.movable(e))
    const plan = planDrain(
      node,
      movable.map((e) => e.role),
      this.nodeViews(),
      this.load(),
      this.classes(),
    )
    // Failed while some role cannot go anywhere (it keeps being retried; InProgress again once it can).
    this.drain_status.set(node, plan.stuck.length > 0 ? 'Failed' : 'InProgress')
    for (const m of plan.moves) {
      const e = this.entries.get(m.role)
      if (e !== undefined) e.drained_from = node
    }
    this.carryOut(plan, `draining ${node}`, 'drain')
    for (const s of plan.stuck) {
      const e = this.entries.get(s.role)
      if (e === undefined || e.drain_stuck === s.reason) continue
      e.drain_stuck = s.reason
      this.emit('role.drain-stuck', {
        role: s.role,
        node,
        reason: `cannot drain vm ${s.role} off ${node}: ${s.reason}; it keeps running there`,
      })
    }
  }

  private carryOut(plan: MovePlan, reason: string, cause: 'drain' | 'failback'): void {
    for (const m of plan.moves) {
      const e = this.entries.get(m.role)
      if (e === undefined || e.role.owner !== m.from || e.role.state !== 'running' || e.migrating !== null) continue
      e.drain_stuck = null
      this.emit('role.move-planned', { role: m.role, from: m.from, to: m.to, reason })
      if (this.config.live_migration) this.migrateTo(e, m.to, this.defaultMigration(e), reason)
      else this.stopOn(e, m.from, { kind: 'start-on', node: m.to, reason }, `${reason}: moving to ${m.to}`, cause)
    }
  }

  /** Running, not being stopped or migrated, and no migration of it failed lately. */
  private movable(e: RoleEntry): boolean {
    if (e.role.state !== 'running' || e.after_stop !== null || e.migrating !== null) return false
    return e.migrate_failed_ms === null || this.now_ms - e.migrate_failed_ms >= MIGRATION_RETRY_AFTER_MS
  }

  /** The failover policy's answer to a failure of the role on `node`. */
  private onFailure(e: RoleEntry, node: string, why: string, how: { node_lost: boolean; vm_present: boolean; migrated_to?: string }): void {
    const node_count = this.nodes.size
    const policy = rolePolicy(this.config.policy, e.role, this.config.time_scale)
    const decision = decideOnFailure(e.history, policy, { node, node_count, node_lost: how.node_lost }, this.now_ms)
    this.setHistory(e, recordDecision(e.history, policy, decision, this.now_ms))
    this.emit('role.failure', { role: e.role.name, node, reason: why, action: decision.action, policy: decision.reason })
    const not_before_ms = how.node_lost ? this.now_ms : this.now_ms + policy.restart_delay_ms
    const plan: StartPlan | null =
      decision.action === 'restart'
        ? { kind: 'start-on', node, reason: `restarting: ${decision.reason}`, in_place: true }
        : decision.action === 'failover'
          ? { kind: 'place', avoid: node, reason: `failing over: ${decision.reason}`, failover: true, ...preferring(how.migrated_to) }
          : null
    if (how.vm_present) {
      const after: AfterStop = plan === null ? { kind: 'fail', reason: `${why}; ${decision.reason}` } : { ...plan, not_before_ms }
      return this.stopOn(e, node, after, `${why}; stopping it (${decision.action})`, 'policy')
    }
    if (plan !== null) return this.startAt(e, plan, not_before_ms, `${why}; ${decision.reason}`)
    this.leaveNode(e, `${why}; ${decision.reason}`)
    this.failRole(e, `${why}; ${decision.reason}`)
  }

  /** The policy gave up on the role: failed, and placed again after the policy's retry period (WSFC RetryPeriodOnFailure). */
  private failRole(e: RoleEntry, reason: string): void {
    const retry_ms = this.config.policy.retry_period_on_failure_ms
    this.setState(e, 'failed', null, `${reason}; tried again in ${policyInterval(retry_ms)}`)
    this.holdFailedRetry(e)
  }

  private holdFailedRetry(e: RoleEntry): void {
    const at_ms = this.now_ms + this.config.policy.retry_period_on_failure_ms
    e.hold = { at_ms, then: { kind: 'place', avoid: null, reason: 'tried again after its retry period on failure', failover: false } }
  }

  private finishStop(e: RoleEntry): void {
    const after = e.after_stop ?? { kind: 'stay-stopped' }
    const node = e.role.owner
    e.after_stop = null
    if (after.kind === 'stay-stopped') return this.setState(e, 'stopped', null, `stopped on ${node}`)
    if (after.kind === 'fail') return this.failRole(e, after.reason)
    const plan: StartPlan =
      after.kind === 'place'
        ? { kind: 'place', avoid: after.avoid, reason: after.reason, failover: after.failover === true }
        : { kind: 'start-on', node: after.node, reason: after.reason, in_place: after.node === node }
    this.startAt(e, plan, after.not_before_ms ?? this.now_ms, `stopped on ${node}`)
  }

  /** Starts the role on `node` if it may go there now, otherwise places it elsewhere. */
  /** Node `node` can take `e` now (memory, anti-affinity, …); paused too when it may run it already (in doubt). */
  private mayStartOn(e: RoleEntry, node: string): boolean {
    return this.startRefusal(e, node, e.in_doubt_on === node) === null
  }

  /** Why `e` cannot start on `node` now, or null; `vm_there`: the VM may be there already, so a paused node takes it. */
  private startRefusal(e: RoleEntry, node: string, vm_there: boolean): string | null {
    const view = this.nodes.get(node)
    const status = view === undefined ? undefined : this.statusOf(view)
    const effective = view && { ...view, status: vm_there && status === 'paused' ? 'up' : (status ?? 'down') }
    return refusal(e.role, effective as NodeView | undefined, this.load(), node)
  }

  private inCluster(node: string): boolean {
    const view = this.nodes.get(node)
    return view !== undefined && this.statusOf(view) !== 'down'
  }

  /** The destination that may run `e` cannot take it now but is still in the cluster: nothing starts it beside it; tried again shortly. */
  private awaitInDoubt(e: RoleEntry, node: string): void {
    const why = `${node} may run it (its migration was left in doubt) and cannot take it now; it is not started elsewhere while ${node} is in the cluster`
    if (e.role.state !== 'pending' || e.role.reason !== why) this.setState(e, 'pending', null, why)
    e.hold = { at_ms: this.now_ms + NO_LEASE_RETRY_MS, then: { kind: 'place', avoid: null, reason: why, failover: false, prefer: node } }
  }

  private startOn(e: RoleEntry, node: string, reason: string, restart_in_place: boolean): void {
    const why = this.startRefusal(e, node, restart_in_place) // a restart in place is allowed on a paused node (the VM was already there)
    if (why !== null) return this.place(e, null, `${reason}; cannot start on ${node} (${why})`)
    this.sendStart(e, node, reason)
  }

  /**
   * Places a role that is on no node: start it on the chosen node, or leave it pending.
   * `failover`: the failover policy moves it off `avoid` (role.failed-over).
   */
  private place(e: RoleEntry, avoid: string | null, reason: string, failover = false, prefer: string | null = null): void {
    if (e.role.owner !== null) throw new HvlabError('HVLAB_E_INTERNAL', `vm ${e.role.name}: placed while still on ${e.role.owner}`)
    if (failover && priorityOf(e.role) === 'none') return this.noAutoStart(e, avoid, reason)
    if (prefer !== null && this.mayStartOn(e, prefer)) {
      if (failover) this.emit('role.failed-over', { role: e.role.name, from: avoid, to: prefer, reason })
      return this.sendStart(e, prefer, reason)
    }
    if (prefer !== null && prefer === e.in_doubt_on && this.inCluster(prefer)) return this.awaitInDoubt(e, prefer)
    delete e.in_doubt_on // its destination left the cluster: a host out of it has stopped its VMs
    const home_site = avoid === null ? null : (this.nodes.get(avoid)?.site ?? null)
    const placement = chooseNode(e.role, this.nodeViews(), this.load(), avoid, { home_site, classes_on: this.classes() })
    if (placement.ok) {
      if (failover) this.emit('role.failed-over', { role: e.role.name, from: avoid, to: placement.node, reason })
      return this.sendStart(e, placement.node, reason)
    }
    const waiting = `waiting: ${placement.reason}`
    if (e.role.state !== 'pending') {
      this.setState(e, 'pending', null, `${reason}; ${waiting}`)
      e.waiting = placement.reason
      return
    }
    if (e.waiting === placement.reason) return // still waiting for the same thing
    e.waiting = placement.reason
    e.role = { ...e.role, reason: `${reason}; ${waiting}` }
    this.push({ kind: 'write-role-record', role: e.role })
    this.emit('role.pending', { role: e.role.name, node: null, from: 'pending', reason: e.role.reason })
  }

  /** Priority none (WSFC's No Auto Start): after a failure the role is not started elsewhere; it waits for the operator. */
  private noAutoStart(e: RoleEntry, from: string | null, reason: string): void {
    const why = `${reason}; not started elsewhere: its priority is none (no auto start); start it with \`hvlab vm start ${e.role.name}\``
    this.emit('role.no-auto-start', { role: e.role.name, node: from, reason: why })
    this.setState(e, 'stopped', null, why)
  }

  private sendStart(e: RoleEntry, node: string, reason: string): void {
    this.setState(e, 'starting', node, reason)
    e.current_op = e.start_op = ++e.op_seq
    e.start_sent_ms = this.now_ms
    const force_storage = e.force_storage === true
    e.force_storage = false
    this.push({
      kind: 'start-vm',
      role: e.role.name,
      node,
      op: e.current_op,
      epoch: this.epoch,
      memory_mib: e.role.memory_mib,
      storage: e.role.storage ?? null,
      force_storage,
      load: e.role.load ?? null,
    })
  }

  /**
   * The role's failure counters, kept in its record too (written with its next state
   * change), so a new coordinator continues them instead of starting from zero.
   */
  private setHistory(e: RoleEntry, history: FailureHistory): void {
    e.history = history
    const { failures: _was, ...rest } = e.role
    const empty = history.restarts.length === 0 && history.failovers_ms.length === 0
    e.role = empty
      ? rest
      : {
          ...rest,
          failures: {
            restarts: history.restarts.slice(-FAILURE_HISTORY_ENTRIES_MAX).map((r) => ({ node: r.node, at_ms: Math.round(r.at_ms) })),
            failovers_ms: history.failovers_ms.slice(-FAILURE_HISTORY_ENTRIES_MAX).map((at) => Math.round(at)),
          },
        }
  }

  /** Sends the stop of a stopping role again, as a new op (its state, owner and plan stay). */
  private resendStop(e: RoleEntry, node: string, reason: string): void {
    e.after_stop ??= { kind: 'stay-stopped' }
    e.current_op = ++e.op_seq
    this.push({ kind: 'stop-vm', role: e.role.name, node, op: e.current_op, epoch: this.epoch, reason })
  }

  private stopOn(e: RoleEntry, node: string, after: AfterStop, reason: string, cause: StopCause): void {
    e.after_stop = after
    this.setState(e, 'stopping', node, reason, cause)
    e.current_op = ++e.op_seq
    this.push({ kind: 'stop-vm', role: e.role.name, node, op: e.current_op, epoch: this.epoch, reason })
  }

  /** The owner is gone (stopped, failed to start, or down): the role is on no node now. */
  private leaveNode(e: RoleEntry, reason: string): void {
    if (e.role.owner === null) return
    e.role = transition(e.role, 'pending', null, reason)
    delete e.waiting
  }

  private setState(e: RoleEntry, to: RoleState, owner: string | null, reason: string, stop_cause?: StopCause): void {
    const from = e.role.state
    e.role = transition(e.role, to, owner, reason, stop_cause)
    delete e.waiting
    delete e.hold
    this.push({ kind: 'write-role-record', role: e.role })
    this.emit(`role.${to}`, { role: e.role.name, node: owner ?? e.role.last_owner, from, reason })
  }

  // ── views ─────────────────────────────────────────────────────────────────────────

  private statusOf(node: NodeView): NodeStatus {
    if (node.status === 'down') return 'down'
    return this.paused.has(node.name) ? 'paused' : node.status
  }

  /** Memory per node: roles on it, plus roles promised to it by a stop-then-start. */
  private load(): Map<string, number> {
    const uses: Array<{ memory_mib: number; node: string | null }> = []
    for (const e of this.entries.values()) {
      uses.push({ memory_mib: e.role.memory_mib, node: e.role.owner })
      const after = e.after_stop
      if (after?.kind === 'start-on' && after.node !== e.role.owner) uses.push({ memory_mib: e.role.memory_mib, node: after.node })
      if (e.migrating !== null) uses.push({ memory_mib: e.role.memory_mib, node: e.migrating.to })
    }
    return loadOf(uses)
  }

  /** Anti-affinity classes per node: of the roles on it, and of those promised to it (a move's or migration's target). */
  private classes(): Map<string, Set<string>> {
    const uses: Array<{ anti_affinity?: string | null; node: string | null }> = []
    for (const e of this.entries.values()) {
      if (e.role.anti_affinity == null) continue
      uses.push({ anti_affinity: e.role.anti_affinity, node: e.role.owner })
      if (e.after_stop?.kind === 'start-on') uses.push({ anti_affinity: e.role.anti_affinity, node: e.after_stop.node })
      if (e.migrating !== null) uses.push({ anti_affinity: e.role.anti_affinity, node: e.migrating.to })
    }
    return classesOn(uses)
  }

  private sortedEntries(): RoleEntry[] {
    return [...this.entries.values()].sort((a, b) => (a.role.name < b.role.name ? -1 : 1))
  }

  private entryFor(name: string): RoleEntry {
    const e = this.entries.get(name)
    if (e === undefined) throw new HvlabError('HVLAB_E_NOT_FOUND', `no vm named ${name}; see \`hvlab vm list\``)
    return e
  }

  private nodeFor(node: string, verb: string): NodeView {
    const view = this.nodes.get(node)
    if (view === undefined) {
      throw new HvlabError(
        'HVLAB_E_NOT_FOUND',
        `cannot ${verb} ${node}: it is not a node of this cluster (nodes: ${[...this.nodes.keys()].sort().join(', ') || 'none'})`,
      )
    }
    return { ...view, status: this.statusOf(view) }
  }

  private push(effect: RoleEffect): void {
    this.out.push(effect)
  }

  private emit<K extends RoleEventKind>(kind: K, details: DetailsOf<K>): void {
    this.push({ kind: 'emit', event: { at_ms: this.now_ms, kind, source: this.config.source, details } as RoleEvent })
  }
}

/**
 * What a new coordinator does once a restored stopping role's stop is confirmed: an
 * operator's stop stays stopped; a stop for a move or by the failover policy places the
 * role again. A record without a cause (written before causes were recorded) stays
 * stopped too: the safe reading, as the operator can start it and nothing runs twice.
 */
function afterRestoredStop(cause: StopCause | undefined): AfterStop {
  return cause === undefined || cause === 'operator'
    ? { kind: 'stay-stopped' }
    : { kind: 'place', avoid: null, reason: 'restored while stopping' }
}

/** The settings `vm set` changed, as `key=value` pairs for the timeline ('' when none did). */
function changedSettings(before: VmRole, after: VmRole): string {
  const show = (r: VmRole): Record<string, string> => ({
    memory_mib: String(r.memory_mib),
    preferred: r.preferred_owners.join(',') || '-',
    priority: priorityOf(r),
    failback: !r.failback.enabled
      ? 'off'
      : r.failback.window === null
        ? 'immediate'
        : `window:${r.failback.window.start_hour}-${r.failback.window.end_hour}`,
    anti_affinity: r.anti_affinity ?? '-',
    failover_threshold: r.failover_threshold == null ? 'cluster' : String(r.failover_threshold),
    failover_period_h: r.failover_period_h === undefined ? 'cluster' : String(r.failover_period_h),
    load: r.load === undefined ? '-' : JSON.stringify(r.load),
    replication: r.replication === undefined ? '-' : JSON.stringify(r.replication),
    replica_broker: r.replica_broker === undefined ? '-' : JSON.stringify(r.replica_broker),
  })
  const a = show(before)
  const b = show(after)
  return Object.keys(b)
    .filter((k) => a[k] !== b[k])
    .map((k) => `${k}=${b[k]}`)
    .join(' ')
}

/** A failover's preference for the destination of the migration its lost owner left in doubt. */
function preferring(migrated_to: string | undefined): { prefer?: string } {
  return migrated_to === undefined ? {} : { prefer: migrated_to }
}
