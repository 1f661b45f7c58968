/**
 * Runs the RoleController on the cluster's coordinator, and only while it holds the
 * quorum lease. It turns the controller's start-vm / stop-vm into requests to hosts, their
 * answers and the hosts' inventories back into inputs, and keeps the role records in the
 * replicated cluster database (one entry per role, written through the quorum).
 *
 * A coordinator that takes over (new coordinator, or an epoch it did not follow) restores
 * the roles from the database, asks every member for its VM inventory and reconciles (a VM
 * a host reports is owned by that host) before it places any role. A host that left the
 * view counts as Down for the roles only from the view's `roles_free_at_ms` on, when it
 * has surely stopped its VMs (it stops them after its no-quorum grace; see vm-agent.ts);
 * until then it is shown to the controller as paused (nothing new goes there). That time
 * is read from the membership with the view, never from its `cluster.view-changed` event:
 * the event waits for the record's fsync, and a tick in between would see the new view
 * without it (a host just removed, still running its VMs, taken for down at once).
 */
import type { Clock } from '../../shared/clock.js'
import { HvlabError, describeError } from '../../shared/errors.js'
import {
  ROLES_MAX,
  type GuestLoadSetting,
  type InventoryVmRecord,
  type VmStorageSpecRecord,
} from '../../shared/protocol/cluster-messages.js'
import type { MessageOf } from '../../shared/protocol/messages.js'
import type { EffectHandlers } from '../../shared/machine/driver.js'
import { MachineDriver } from '../../shared/machine/driver.js'
import { everyTick } from '../../shared/periodic-task.js'
import type { EmitEvent } from '../../shared/timeline/events.js'
import { pausedKey } from './cluster-status.js'
import { CommitWaits, type DatabaseWrites } from './commit-waits.js'
import { DEFAULT_FAILOVER_POLICY, scaledFailoverPolicy } from './failover-policy.js'
import type { NodeView } from './placement.js'
import { RoleController, type MigrationOptions, type RoleCommand, type RoleEffect, type RoleInput } from './role-controller.js'
import { decodeRoles, encodeRole, roleKey } from './role-record.js'
import type { VmAgent, VmOpResult } from './vm-agent.js'
import { changeVmRole, createVmRole, type VmRole } from './vm-role.js'

/** What the role service reads from the membership state machine. */
export interface MembershipView {
  isCoordinator(): boolean
  holdsLease(now_ms: number): boolean
  /** The coordinator, holding the lease, and past every earlier coordinator's lease (membership.ts). */
  runsRoles(now_ms: number): boolean
  view(): { readonly epoch: number; readonly members: readonly string[] }
  /** From when the hosts outside the current view have surely stopped their VMs (membership.ts). */
  rolesFreeAtMs(): number
  database(): { readonly config: Readonly<Record<string, string>> }
}

/** Requests to a host (a local call when it is this host). */
export interface HostRequests {
  /** Resolves `storage_refused` true when the host's CLX refused to make the VM's disk writable there. */
  start(
    node: string,
    m: {
      role: string
      op: number
      epoch: number
      memory_mib: number
      storage: VmStorageSpecRecord | null
      force_storage: boolean
      load?: GuestLoadSetting
    },
  ): Promise<VmOpResult & { storage_refused?: boolean }>
  stop(node: string, m: { role: string; op: number; epoch: number; reason: string }): Promise<VmOpResult>
  inventory(node: string): Promise<InventoryVmRecord[]>
  /** Ask the owner to migrate; resolves when it accepted (the outcome comes through vmMigrated). */
  migrate?(node: string, m: { role: string; to: string; op: number; epoch: number; options: MigrationOptions }): Promise<VmOpResult>
}

export interface RoleServiceDeps {
  name: string
  clock: Clock
  /** The cluster's hosts; `site` lets placement prefer the site a role leaves. */
  hosts: readonly { name: string; memory_mib: number; site?: string }[]
  membership: MembershipView
  /** Write (or with null delete) one cluster database entry through the quorum. */
  writeConfig(key: string, value: string | null): void
  requests: HostRequests
  emitEvent: EmitEvent
  log: { info(o: object, msg: string): void; warn(o: object, msg: string): void }
  tick_ms: number
  /** Where in each tick interval the ticks fall, a fraction in [0, 1): the membership's, so both tick in one wake-up (periodic-task.ts). */
  tick_phase?: number
  inventory_interval_ms: number
  /** Moves, drains and failbacks live-migrate (needs requests.migrate). */
  live_migration?: boolean
  /** The lab's timeScale: the failover policy's periods shrink with it (default 1). */
  time_scale?: number
}

type RoleListExtras = Required<Pick<MessageOf<'role-list-reply'>, 'failover_policy' | 'drains'>>

/** Database writes started per tick (the rest wait; each write is one lease round). */
export const WRITES_PER_TICK_MAX = 4
/** A write not yet visible in the database is repeated after this long. */
export const WRITE_RETRY_MS = 1500
export const QUEUED_INPUTS_MAX = 1024
const FAILBACK_CHECK_INTERVAL_MS = 60_000

export class RoleService {
  private ctl: RoleController | null = null
  /** Feeds `ctl` and carries out its effects (synchronously: every handler only starts a request or queues a write). */
  private driver: MachineDriver<RoleInput, RoleEffect> | null = null
  private gen = 0
  private ctl_epoch = 0
  private sync: Promise<void> = Promise.resolve()
  private readonly desired = new Map<string, string | null>()
  private readonly written = new Map<string, { value: string | null; at_ms: number }>()
  /** Operator commands waiting for their writes to reach the quorum (commit-waits.ts). */
  private readonly commits = new CommitWaits()
  /** While a command steps: the writes it causes. */
  private recording: Map<string, string | null> | null = null
  private queued: RoleInput[] = []
  private fed_nodes = ''
  private next_inventory_ms = 0
  private next_failback_ms = 0
  private cancel: (() => void) | undefined

  constructor(private readonly deps: RoleServiceDeps) {}

  start(): void {
    this.cancel = everyTick(this.deps.clock, this.deps.tick_ms, () => this.tick(), this.deps.tick_phase)
  }

  stop(): void {
    this.cancel?.()
    this.drop()
  }

  /** Is this host the coordinator holding the lease, running the roles now? */
  isLeader(now_ms = this.deps.clock.now()): boolean {
    return this.deps.membership.runsRoles(now_ms)
  }

  get running(): boolean {
    return this.ctl !== null
  }

  /** Every role as the controller has it; null when this host does not run the roles. */
  list(): VmRole[] | null {
    return this.ctl?.list() ?? null
  }

  /** What `vm list` and `cluster status` show beside the roles: the failover limits and each node's drain; null when this host does not run the roles. */
  listExtras(): Pick<RoleListExtras, 'failover_policy' | 'drains'> | null {
    const ctl = this.ctl
    return ctl === null ? null : { failover_policy: ctl.failoverLimits(), drains: ctl.drainStatuses() }
  }

  /** An operator command; waits for the takeover sync; a refusal throws HvlabError. */
  async command(command: RoleCommand): Promise<void> {
    const ctl = this.ctl
    if (ctl === null || !this.isLeader()) throw notLeader(this.deps.name)
    await this.sync
    if (this.ctl !== ctl || !this.isLeader()) throw notLeader(this.deps.name)
    // A record that would not fit the database is refused here, before the controller takes it.
    const current = command.op === 'set' ? ctl.role(command.name) : undefined
    try {
      if (command.op === 'create') encodeRole(createVmRole(command.spec))
      if (current !== undefined && command.op === 'set') encodeRole(changeVmRole(current, command.changes))
    } catch (e) {
      throw e instanceof HvlabError ? e : new HvlabError('HVLAB_E_USAGE', describeError(e))
    }
    const writes = this.writesOf(command)
    if (writes.size === 0) return
    const now = this.deps.clock.now()
    this.flushWrites(now)
    if (!this.committed(writes)) await this.commits.wait(writes, describeCommand(command), now)
  }

  /** Steps the controller with an operator command (a refusal throws); the database writes it caused. */
  private writesOf(command: RoleCommand): DatabaseWrites {
    const writes = new Map<string, string | null>()
    this.recording = writes
    try {
      this.driver?.feed({ kind: 'command', command })
    } finally {
      this.recording = null
    }
    return writes
  }

  /** Has the quorum committed these writes, or the newest value this service wants for their entries? */
  private committed(writes: DatabaseWrites): boolean {
    const config = this.deps.membership.database().config
    for (const [key, value] of writes) {
      const now_in = config[key] ?? null
      if (now_in !== value && this.desired.has(key) && now_in !== this.desired.get(key)) return false
    }
    return true
  }

  /** The service wants entry `key` to hold `value` (null: deleted); flushWrites writes it through the quorum. */
  private want(key: string, value: string | null): void {
    this.desired.set(key, value)
    this.recording?.set(key, value)
  }

  /** Is role `name`'s record absent from the committed cluster database (a removal has reached the quorum)? */
  roleRecordGone(name: string): boolean {
    return !Object.hasOwn(this.deps.membership.database().config, roleKey(name))
  }

  /** The owner reports how a migration ended. */
  vmMigrated(node: string, role: string, to: string, op: number, ok: boolean, reason: string): void {
    this.input({ kind: 'vm-migrated', role, node, to, op, ok, reason })
  }

  /** A host reports a VM failed. */
  vmFailed(node: string, role: string, op: number, gone: boolean, reason: string): void {
    this.input({ kind: 'vm-failed', role, node, op, gone, reason })
  }

  /** One periodic step (public for tests). */
  tick(): void {
    const now = this.deps.clock.now()
    this.commits.settle((writes) => this.committed(writes), now)
    const m = this.deps.membership
    const epoch = m.view().epoch
    if (!this.isLeader(now)) {
      if (this.ctl !== null && (!m.isCoordinator() || epoch > this.ctl_epoch + 1)) this.drop()
      return
    }
    if (this.ctl === null || epoch > this.ctl_epoch + 1) this.takeOver(epoch, now)
    this.ctl_epoch = epoch
    this.feedMembership(now, false)
    this.replayQueued()
    const held_until = this.ctl?.nextHeldStartMs() ?? null
    if (held_until !== null && held_until <= now) this.input({ kind: 'timer' })
    this.flushWrites(now)
    if (now >= this.next_inventory_ms) {
      this.next_inventory_ms = now + this.deps.inventory_interval_ms
      void this.askInventories()
    }
    if (now >= this.next_failback_ms) {
      this.next_failback_ms = now + FAILBACK_CHECK_INTERVAL_MS
      this.input({ kind: 'failback-check', hour_of_day: utcHourOf(now) })
    }
  }

  // ── takeover ──────────────────────────────────────────────────────────────────────

  private takeOver(epoch: number, now: number): void {
    this.drop()
    const time_scale = this.deps.time_scale ?? 1
    const ctl = new RoleController({
      policy: scaledFailoverPolicy(DEFAULT_FAILOVER_POLICY, time_scale),
      time_scale,
      source: this.deps.name,
      roles_max: ROLES_MAX,
      live_migration: this.deps.live_migration === true && this.deps.requests.migrate !== undefined,
    })
    const db = decodeRoles(this.deps.membership.database().config)
    for (const d of db.damaged)
      this.deps.log.warn({ key: d.key, reason: d.reason }, 'skipped a damaged role record in the cluster database')
    ctl.restore(db.roles, db.paused, epoch, db.paused_records, now)
    this.ctl = ctl
    this.gen++
    this.driver = this.driverFor(ctl, this.gen)
    this.ctl_epoch = epoch
    this.deps.emitEvent('role.coordinator-started', { node: this.deps.name, epoch, roles: db.roles.length, paused: db.paused })
    this.feedMembership(now, true)
    this.next_inventory_ms = now + this.deps.inventory_interval_ms
    const gen = this.gen
    this.sync = this.askInventories().then(() => {
      if (this.gen !== gen || this.ctl === null) return
      this.input({ kind: 'sync-done' })
      this.deps.emitEvent('role.coordinator-synced', { node: this.deps.name, epoch, roles: this.ctl.list().length })
    })
  }

  private drop(): void {
    if (this.ctl === null) return
    this.deps.log.info({ epoch: this.ctl_epoch }, 'no longer running the vm roles (not the coordinator with quorum)')
    this.commits.failAll(`${this.deps.name} stopped coordinating before they reached the quorum`)
    this.ctl = null
    this.driver = null
    this.gen++
    this.queued = []
    this.desired.clear()
    this.written.clear()
    this.fed_nodes = ''
    this.sync = Promise.resolve()
  }

  /** Members are up; a host outside the view is paused until its roles are free, then down. */
  private feedMembership(now: number, initial: boolean): void {
    const view = this.deps.membership.view()
    const free_at = this.deps.membership.rolesFreeAtMs()
    const nodes: NodeView[] = this.deps.hosts.map((h) => ({
      name: h.name,
      memory_mib: h.memory_mib,
      ...(h.site === undefined ? {} : { site: h.site }),
      status: view.members.includes(h.name) ? 'up' : initial || now < free_at ? 'paused' : 'down',
    }))
    // The epoch is part of it: a new view with the same members must reach the controller,
    // or its starts keep the old epoch and every host refuses them as stale.
    const key = JSON.stringify([view.epoch, nodes])
    if (key === this.fed_nodes) return
    this.fed_nodes = key
    this.input({ kind: 'membership', epoch: view.epoch, nodes })
  }

  /** Asks every member for its VMs and feeds the answers; resolves when all answered or failed. */
  private async askInventories(): Promise<void> {
    const ctl = this.ctl
    if (ctl === null) return
    const gen = this.gen
    const members = [...this.deps.membership.view().members]
    await Promise.allSettled(
      members.map(async (node) => {
        const ops_at_request = ctl.opSnapshot()
        const vms = await this.deps.requests.inventory(node)
        if (this.gen !== gen) return
        this.input({ kind: 'inventory', node, vms: vms.map((v) => ({ role: v.role, op: v.op })), ops_at_request })
      }),
    )
  }

  // ── inputs and effects ──────────────────────────────────────────────────────────────

  private input(input: RoleInput): void {
    if (this.ctl === null) return
    if (!this.isLeader()) {
      if (this.queued.length < QUEUED_INPUTS_MAX) this.queued.push(input)
      return
    }
    try {
      this.driver?.feed(input)
    } catch (e) {
      this.refused(input, e)
    }
  }

  private refused(input: RoleInput | undefined, e: unknown): void {
    this.deps.log.warn({ err: describeError(e), input: input?.kind }, 'the role controller refused an input')
  }

  private replayQueued(): void {
    const q = this.queued
    this.queued = []
    for (const input of q) this.input(input)
  }

  /** The controller steps as soon as an input comes (a refused command throws to the operator at once). */
  private driverFor(ctl: RoleController, gen: number): MachineDriver<RoleInput, RoleEffect> {
    return new MachineDriver<RoleInput, RoleEffect>({
      step: (input) => ctl.step(input, this.deps.clock.now()),
      step_at: 'admission',
      handlers: this.handlers((input) => {
        if (this.gen === gen) this.input(input)
      }),
      onFailed: (e, input) => this.refused(input, e),
    })
  }

  /** `back`: an answer for the controller that started the request (dropped once another took over). */
  private handlers(back: (input: RoleInput) => void): EffectHandlers<RoleEffect> {
    return {
      'start-vm': (fx) => this.startVm(fx, back),
      'stop-vm': (fx) => this.stopVm(fx, back),
      'migrate-vm': (fx) => this.migrateVm(fx, back),
      'write-role-record': (fx) => this.want(roleKey(fx.role.name), encodeRole(fx.role)),
      'set-node-paused': (fx) => this.want(pausedKey(fx.node), fx.paused ? (fx.record ?? 'paused') : null),
      'delete-role-record': (fx) => this.want(roleKey(fx.role), null),
      emit: (fx) => this.deps.emitEvent(fx.event.kind, fx.event.details),
    }
  }

  private startVm(fx: Extract<RoleEffect, { kind: 'start-vm' }>, back: (input: RoleInput) => void): void {
    this.deps.requests
      .start(fx.node, {
        role: fx.role,
        op: fx.op,
        epoch: fx.epoch,
        memory_mib: fx.memory_mib,
        storage: fx.storage,
        force_storage: fx.force_storage,
        ...(fx.load === null ? {} : { load: fx.load }),
      })
      .then((r) =>
        back(
          r.ok
            ? { kind: 'vm-started', role: fx.role, node: fx.node, op: fx.op }
            : {
                kind: 'vm-start-failed',
                role: fx.role,
                node: fx.node,
                op: fx.op,
                reason: r.reason,
                storage_refused: r.storage_refused === true,
                no_lease: r.no_lease === true,
              },
        ),
      )
      .catch((e: unknown) =>
        this.deps.log.warn(
          { err: describeError(e), node: fx.node, role: fx.role },
          'start request got no answer; the next inventory settles it',
        ),
      )
  }

  private stopVm(fx: Extract<RoleEffect, { kind: 'stop-vm' }>, back: (input: RoleInput) => void): void {
    this.deps.requests
      .stop(fx.node, { role: fx.role, op: fx.op, epoch: fx.epoch, reason: fx.reason })
      .then(() => back({ kind: 'vm-stopped', role: fx.role, node: fx.node, op: fx.op }))
      .catch((e: unknown) =>
        this.deps.log.warn(
          { err: describeError(e), node: fx.node, role: fx.role },
          'stop request got no answer; the next inventory settles it',
        ),
      )
  }

  private migrateVm(fx: Extract<RoleEffect, { kind: 'migrate-vm' }>, back: (input: RoleInput) => void): void {
    const migrate = this.deps.requests.migrate
    const failed = (reason: string): void =>
      back({ kind: 'vm-migrated', role: fx.role, node: fx.node, to: fx.to, op: fx.op, ok: false, reason })
    if (migrate === undefined) return failed('this cluster cannot migrate vms')
    migrate(fx.node, { role: fx.role, to: fx.to, op: fx.op, epoch: fx.epoch, options: fx.options })
      .then((r) => {
        if (!r.ok) failed(r.reason)
      })
      .catch((e: unknown) => failed(`${fx.node} did not take the migration request: ${describeError(e)}`))
  }

  /** Writes role records that differ from the database, a few per tick; repeats writes that got lost. */
  private flushWrites(now: number): void {
    const config = this.deps.membership.database().config
    let started = 0
    for (const [key, value] of this.desired) {
      if ((config[key] ?? null) === value) {
        this.desired.delete(key)
        this.written.delete(key)
        continue
      }
      const w = this.written.get(key)
      if (w !== undefined && w.value === value && now - w.at_ms < WRITE_RETRY_MS) continue
      if (started >= WRITES_PER_TICK_MAX) break
      started++
      this.written.set(key, { value, at_ms: now })
      this.deps.writeConfig(key, value)
    }
  }
}

/** What an operator command changes, for its error: "the change to vm web1", "the pause of host-b1". */
function describeCommand(c: RoleCommand): string {
  switch (c.op) {
    case 'create':
      return `the creation of vm ${c.spec.name}`
    case 'pause':
    case 'resume':
      return `the ${c.op} of ${c.node}`
    default:
      return `the ${c.op} of vm ${c.name}`
  }
}

function notLeader(name: string): HvlabError {
  return new HvlabError('HVLAB_E_NO_QUORUM', `${name} is not the cluster coordinator with quorum right now; retry in a moment`)
}

/** The hour of the day (0–23) of `now_ms` in UTC: failback windows mean the same hours on every host, whatever its time zone. */
export function utcHourOf(now_ms: number): number {
  return new Date(now_ms).getUTCHours()
}
