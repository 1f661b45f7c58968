/**
 * Live and quick migration in a host process: the host's MigrationService attached to
 * every host↔host mesh connection, the cluster's `vm-migrate-request` (the coordinator
 * asks the VM's owner to migrate it), arrivals admitted against the host's memory, lease
 * and the coordinator's epoch, the outcome reported to the coordinator, operator requests
 * (progress and result, cancel, guest load, inspect) and the timeline.
 *
 * In doubt (the link dropped while the destination was resuming): the source guest stays
 * paused and the host asks the destination over the mesh whether it runs the VM (its VM
 * inventory, with the migration's op). It runs there → release here, report success; it
 * answers it does not → the old link is closed, so no resume can still reach it: resume
 * here, report failure. No answer → keep asking; once the destination has been out of the
 * cluster view for `roles_free_after_ms` (within one view epoch, this host holding a
 * quorum lease) it has stopped its VMs, and the VM resumes here. That rule is a pure
 * machine (in-doubt-settlement.ts) driven by in-doubt-shell.ts; the operator's requests
 * are in migration-operator.ts and the statuses in migration-status.ts.
 */
import { HvlabError, describeError } from '../../shared/errors.js'
import type { LabProcess } from '../../shared/lab-process.js'
import type { MigrationOptionsMessage } from '../../shared/protocol/cluster-messages.js'
import type { VmOpResult } from '../cluster/vm-agent.js'
import { PAGE_SIZE_BYTES } from '../../shared/protocol/page-size.js'
import { VmInstance } from '../vm/vm-instance.js'
import { startGuestService } from '../vm/guest-service.js'
import { settleInDoubt, type InDoubtShellDeps } from './in-doubt-shell.js'
import { serveMigrationOperator } from './migration-operator.js'
import { MigrationService, type Arrival, type MigrationResult } from './migration-service.js'
import { MigrationStatusBook, refusedResult, resultMessage, runningStatus, type MigrationStatus } from './migration-status.js'
import { PageApplyPool } from './page-apply-pool.js'
import { PageDiffPool } from './page-diff-pool.js'
import type { StorageHandOver } from './storage-hand-over.js'
import type { StorageMode } from '../../shared/protocol/migration-messages.js'
import type { VmDiskTarget } from '../clx/disk-target.js'

const PAGES_PER_MIB = (1024 * 1024) / PAGE_SIZE_BYTES
export { IN_DOUBT_ASK_INTERVAL_MS } from './in-doubt-shell.js'

/** What the in-doubt settlement needs (the agent, the view, the lease), and more. */
export interface MigrationHostDeps extends InDoubtShellDeps {
  /** Tell the coordinator how migration `op` ended. */
  reportMigrated(r: { role: string; to: string; op: number; ok: boolean; reason: string }): void
  /** The storage step inside the blackout (CLX switchover across sites); default: CSV only. */
  storage?: StorageHandOver
  /** Before a migration starts: a promise that rejects to cancel it (CLX: group not Synced), or null when there is nothing to check. */
  checkStorage?(vm: string, source: string, to: string, mode: MigrationOptionsMessage['mode']): Promise<void> | null
  /** How the VM's disk moves with it (its role's storage: clx, csv or owned); default the VM's own. */
  storageModeOf?(vm: string): StorageMode
  /** Where an arriving VM's disks' I/O goes here, disk 0 first (none: no disk to write). */
  disksForArrival?(vm: string): VmDiskTarget[]
}

export interface MigrationHost {
  readonly service: MigrationService
  migrate(m: { role: string; to: string; op: number; epoch: number; options: MigrationOptionsMessage }): VmOpResult
  close(): Promise<void>
}

type MigrateRequest = Parameters<MigrationHost['migrate']>[0]

export function startMigrationHost(p: LabProcess, deps: MigrationHostDeps): MigrationHost {
  const hosts = new Set(p.topology.hosts.map((h) => h.name))
  const limits = p.topology.limits
  const pool = new PageDiffPool({ threads: limits.page_diff_threads })
  // Each arrival applies its batches one at a time: more threads than arrivals would idle.
  const apply_pool = new PageApplyPool({ threads: Math.min(limits.page_diff_threads, limits.incoming_migrations_per_host) })
  const book = new MigrationStatusBook()
  const arrivals = new Arrivals(p, deps)
  const service = createService(p, deps, { pool, apply_pool }, book, arrivals)
  p.onPeer((conn) => {
    if (conn.remoteRole === 'host' && hosts.has(conn.remoteName)) service.attach(conn)
  })
  // The guest service answers the lab's virtual switch (pings from `hvlab vm ping`) for every VM here.
  const guests = startGuestService(p, (name) => deps.agent.vms.instance(name))
  const outgoing = new OutgoingMigrations(p, deps, service, book)
  serveMigrationOperator(p, deps.agent, service, book)
  p.addStatus(() => ({ migrations: { ...service.outgoing, arriving: arrivals.count } }))
  return {
    service,
    migrate: (m) => outgoing.migrate(m),
    close: () => {
      guests.close()
      return Promise.all([pool.close(), apply_pool.close()]).then(() => undefined)
    },
  }
}

/** The host's MigrationService: events to the timeline and the status book, arrivals admitted and adopted, departures released. */
function createService(
  p: LabProcess,
  deps: MigrationHostDeps,
  pools: { pool: PageDiffPool; apply_pool: PageApplyPool },
  book: MigrationStatusBook,
  arrivals: Arrivals,
): MigrationService {
  const { agent } = deps
  const limits = p.topology.limits
  return new MigrationService({
    host: p.name,
    log: p.log,
    ...pools,
    clock: p.clock,
    outgoing_max: limits.migrations_per_host,
    queue_max: limits.migrations_queued_per_host,
    incoming_max: limits.incoming_migrations_per_host,
    ...(deps.storage ? { storage: deps.storage } : {}),
    onEvent: (e) => {
      p.emitEvent(e.kind, e.details)
      book.onEvent(e)
    },
    onRoundProgress: (r) => book.onRoundProgress(r),
    admit: (a) => arrivals.admit(a),
    onArrivalEnded: (a) => arrivals.ended(a.migration_id),
    onArrived: (vm, a) => {
      const disks = arrivals.ended(a.migration_id)
      const inst = VmInstance.arrived(vm.name, vm.memory, vm.deviceState(), agent.guestClock)
      agent.adoptVm(inst, a.placement?.op ?? 0, a.placement?.epoch ?? 0, a.source)
      agent.setDisks(vm.name, disks)
    },
    onDeparted: (vm, destination) => agent.releaseVm(vm.name, destination),
    // The VM's address now leads to this host (a gratuitous ARP), on the timeline; the virtual
    // switch learns it from the agent's vm-location, sent when it adopted the VM (onArrived, just before).
    onAnnounce: (vm, host) => p.emitEvent('vm.location', { vm, host, how: 'gratuitous-arp' }),
  })
}

/**
 * VMs arriving here: admitted against the host's memory, lease and the coordinator's epoch;
 * the MiB promised to each, and its disks staged in the setup (as Hyper-V stages the VM on
 * the destination before the memory copy, seed 000): reading them from the VM's role record
 * took 1.5–11 ms inside the blackout, in the destination's last step before the switch's
 * held pings can be answered. A VM's storage does not change while it migrates.
 */
class Arrivals {
  /** MiB promised to VMs arriving now, by migration id. */
  private readonly mib = new Map<string, number>()
  /** Where each arriving VM's disks' I/O will go here, disk 0 first. */
  private readonly disks = new Map<string, VmDiskTarget[]>()

  constructor(
    private readonly p: LabProcess,
    private readonly deps: MigrationHostDeps,
  ) {}

  get count(): number {
    return this.mib.size
  }

  admit(a: Arrival): void {
    const { p, deps } = this
    if (a.placement === null)
      throw new HvlabError('HVLAB_E_REFUSED', `${p.name} takes only vms the cluster migrates (with a start op and epoch)`)
    if (!deps.holdsLease(p.clock.now()))
      throw new HvlabError('HVLAB_E_REFUSED', `${p.name} holds no quorum lease, so it may not take vm ${a.vm} now`)
    const mib = Math.ceil(a.page_count / PAGES_PER_MIB)
    let reserved = 0
    for (const v of this.mib.values()) reserved += v
    deps.agent.vms.checkArrival(a.vm, mib, a.placement.epoch, reserved)
    this.mib.set(a.migration_id, mib)
    this.disks.set(a.migration_id, deps.disksForArrival?.(a.vm) ?? [])
  }

  /** The arrival ended (it runs here, or it was discarded); returns the disks staged for it. */
  ended(migration_id: string): VmDiskTarget[] {
    const disks = this.disks.get(migration_id) ?? []
    this.mib.delete(migration_id)
    this.disks.delete(migration_id)
    return disks
  }
}

/** The cluster's migrations of VMs away from this host: storage check, start, the in-doubt settlement, the outcome reported. */
class OutgoingMigrations {
  constructor(
    private readonly p: LabProcess,
    private readonly deps: MigrationHostDeps,
    private readonly service: MigrationService,
    private readonly book: MigrationStatusBook,
  ) {}

  /**
   * Checks the VM's storage first when a check applies (CLX across sites): the request is
   * taken at once and a refusal ends the migration as failed, the VM running here.
   */
  migrate(m: MigrateRequest): VmOpResult {
    const { p, deps } = this
    const { role, to, op, options } = m
    const check = deps.checkStorage?.(role, p.name, to, options.mode) ?? null
    if (check === null) return this.begin(m)
    const vm = deps.agent.vms.instance(role)
    if (vm === undefined || vm.state !== 'running') return { ok: false, reason: `${p.name} does not run vm ${role}` }
    const st = runningStatus(options, to, vm.memory.page_count, 'storage-check')
    this.book.remember(role, st)
    const refuse = (reason: string): void => {
      st.result = refusedResult(role, options.mode, p.name, to, vm.memory.byte_length, reason)
      st.state = 'done'
      st.stage = 'failed'
      p.emitEvent('vm.migration-ended', { vm: role, to, mode: options.mode, outcome: 'failed', reason: reason.slice(0, 300) })
      deps.reportMigrated({ role, to, op, ok: false, reason: reason.slice(0, 500) })
    }
    check.then(
      () => {
        const r = this.begin(m)
        if (!r.ok) refuse(r.reason)
      },
      (e: unknown) => refuse(describeError(e)),
    )
    return { ok: true, reason: `checking the storage of vm ${role} before migrating it to ${to}` }
  }

  private begin(m: MigrateRequest): VmOpResult {
    const { p, deps } = this
    const { role, to, op, epoch, options } = m
    const vm = deps.agent.vms.instance(role)
    if (vm === undefined || vm.state !== 'running') return { ok: false, reason: `${p.name} does not run vm ${role}` }
    if (to === p.name) return { ok: false, reason: `vm ${role} already runs on ${to}` }
    const conn = p.mesh.connection(to)
    if (!conn?.isOpen) return { ok: false, reason: `${p.name} has no connection to ${to} now` }
    const st = runningStatus(options, to, vm.memory.page_count, 'queued')
    let handle
    try {
      handle = this.service.migrate(vm, conn, {
        placement: { op, epoch },
        verify: options.verify,
        ...(options.budget_ms !== null ? { downtime_budget_ms: options.budget_ms } : {}),
        ...(options.max_rounds !== null ? { round_cap: options.max_rounds } : {}),
        ...(deps.storageModeOf ? { storage: deps.storageModeOf(role) } : {}),
      })
    } catch (e) {
      return { ok: false, reason: describeError(e) }
    }
    deps.agent.setMigrating(role, true)
    // Quick migration: the guest stops now and stays down for the whole copy.
    const paused_ms = options.mode === 'quick' ? p.clock.now() : null
    if (paused_ms !== null) vm.pause()
    this.book.follow(handle.migration_id, st)
    this.book.remember(role, st)
    p.emitEvent('vm.migration-started', { vm: role, to, mode: options.mode, op, migration_id: handle.migration_id })
    void handle.result.then(async (r) => {
      const ok = r.outcome === 'in_doubt' ? await settleInDoubt(p, deps, { vm, role, to, op }) : r.outcome === 'completed'
      this.finish(m, st, r, ok, paused_ms)
    })
    return { ok: true, reason: `migrating vm ${role} to ${to}` }
  }

  /** The migration ended (`ok`: the VM runs on `to`): its status, the timeline and the coordinator. */
  private finish(m: MigrateRequest, st: MigrationStatus, r: MigrationResult, ok: boolean, paused_ms: number | null): void {
    const { p, deps } = this
    const { role, to, op, options } = m
    let outcome = r
    if (!ok && r.outcome === 'in_doubt') outcome = { ...r, reason: `${r.reason}; ${to} does not run it, so it resumed on ${p.name}` }
    if (ok && r.outcome === 'in_doubt') outcome = { ...r, outcome: 'completed', reason: `${to} runs it (asked after the link dropped)` }
    deps.agent.setMigrating(role, false)
    const downtime_ms = paused_ms === null ? null : Math.round(p.clock.now() - paused_ms)
    st.result = resultMessage(outcome, options.mode, downtime_ms)
    st.state = 'done'
    st.stage = outcome.outcome
    if (st.migration_id !== null) this.book.unfollow(st.migration_id)
    p.emitEvent('vm.migration-ended', {
      vm: role,
      to,
      mode: options.mode,
      outcome: outcome.outcome,
      total_ms: Math.round(r.total_ms),
      blackout_ms: r.blackout_ms,
      guest_paused_ms: r.guest_paused_ms,
      downtime_ms,
    })
    const reason = ok ? `${options.mode} migration completed` : outcome.reason || outcome.outcome
    deps.reportMigrated({ role, to, op, ok, reason: reason.slice(0, 500) })
  }
}
