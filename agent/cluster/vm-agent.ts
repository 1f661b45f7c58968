/**
 * The host side of VM roles: runs the VMs the coordinator starts here (in a VmHost),
 * answers starts, stops and inventory questions, watches each VM's guest heartbeat
 * (LooksAlive / IsAlive) and reports a failed VM to the coordinator, and stops every VM
 * once this host has been without a quorum lease for `no_quorum_grace_ms`.
 *
 * Why a grace and not "no lease → stop at once": a coordinator whose renewals are late
 * (a busy machine) leaves its members without a lease for a moment, and stopping then
 * would restart every VM of the cluster. View changes leave no such gap (the lease is
 * carried over, shared/consensus/acceptor.ts), so the grace is short: it is
 * `roles_stop_bound_ms` minus two checks and some event-loop lag, and the majority waits
 * `roles_free_at_ms` (lease end + skew + roles_stop_bound_ms) before it restarts a
 * removed host's VMs elsewhere, so a VM is still never on two hosts.
 *
 * Unless `unsafe_ignore_quorum_loss` (HVLAB_UNSAFE_TEST_ONLY=ignore-quorum-loss, for tests
 * only): then a host without a lease keeps its VMs running — the broken behaviour a test
 * uses to prove the soak's ownership checker catches a VM on two hosts.
 */
import type { Clock } from '../../shared/clock.js'
import { HvlabError, describeError } from '../../shared/errors.js'
import { everyTick } from '../../shared/periodic-task.js'
import { ROLE_REASON_CHARS_MAX, type GuestLoadSetting, type InventoryVmRecord } from '../../shared/protocol/cluster-messages.js'
import type { EmitEvent } from '../../shared/timeline/events.js'
import { gatedClock } from '../vm/guest-clock.js'
import { VmHost, type VmInstance } from '../vm/vm-instance.js'
import type { VmDiskTarget } from '../clx/disk-target.js'
import type { BlockIoPort, DiskWriteSink } from '../vm/vm-disk.js'
import { nextCheckAt, runHealthCheck, startHealthCheck, type HealthCheckConfig, type HealthCheckState } from './health-check.js'
import { storageHealth, type StorageHealth } from './vm-storage-health.js'

export interface VmAgentDeps {
  host: string
  memory_mib: number
  clock: Clock
  /** Does this host hold a quorum lease now? */
  holdsLease(now_ms: number): boolean
  /**
   * When the host's last lease runs or ran out (0: never had one). The grace counts from
   * there, not from when a check noticed: a host frozen past its lease (SIGSTOP, a long
   * GC pause) stops its VMs at its first check after waking, not a grace later.
   */
  leaseUntil?(): number
  no_quorum_grace_ms: number
  /** How often the lease and the guests are checked. */
  check_interval_ms: number
  /** Where in each interval the checks fall, a fraction in [0, 1): the membership's tick phase (periodic-task.ts). */
  check_phase?: number
  health: HealthCheckConfig
  /** Tell the coordinator a VM failed (`op` = the start that made it). */
  reportFailure(failure: { role: string; op: number; gone: boolean; reason: string }): void
  emitEvent: EmitEvent
  /**
   * Tell the lab's virtual switch where a VM is: `here` once it runs on this host (started,
   * or arrived by migration), `gone` once it stopped here; `op`/`epoch`: that incarnation's.
   */
  announce?(location: { vm: string; at: 'here' | 'gone'; op: number; epoch: number }): void
  /** Block I/O for a VM's disk writer to its target (an array, or a CSV region); without it VMs run without disk I/O. */
  blockIoFor?(target: VmDiskTarget): BlockIoPort
  /** The cluster epoch this host's disk writes carry (its current view's): the arrays fence older ones. */
  writerEpoch?(): number
  /** This host is connected to `array` now (absent: assumed so). */
  arrayReachable?(array: string): boolean
  /** Hears of every disk write of every VM here (the host's disk write journal); absent: nobody does. */
  disk_write_journal?: DiskWriteSink
  /** UNSAFE, tests only: keep the VMs running after the lease lapsed (a VM may then run on two hosts). */
  unsafe_ignore_quorum_loss?: boolean
}

export interface VmOpResult {
  ok: boolean
  reason: string
  /** A start refused because this host holds no quorum lease now: not the role's failure. */
  no_lease?: boolean
}

interface Watch {
  health: HealthCheckState
  beats: number
  last_beat_ms: number | null
  suspect_reported: boolean
}

/** Event-loop lag and check jitter the grace leaves room for. */
export const NO_QUORUM_LAG_ALLOWANCE_MS = 250

/** The longest grace that still stops VMs within `roles_stop_bound_ms` of the lease's end. */
export function noQuorumGraceMs(roles_stop_bound_ms: number, check_interval_ms: number): number {
  const grace = roles_stop_bound_ms - 2 * check_interval_ms - NO_QUORUM_LAG_ALLOWANCE_MS
  if (grace <= 0) {
    throw new HvlabError(
      'HVLAB_E_TOPOLOGY',
      `roles_stop_bound_ms ${roles_stop_bound_ms} is too short for a check every ${check_interval_ms} ms plus ${NO_QUORUM_LAG_ALLOWANCE_MS} ms of lag; slow the heartbeat profile down`,
    )
  }
  return grace
}

export class VmAgent {
  readonly vms: VmHost
  private readonly watches = new Map<string, Watch>()
  private without_lease_since_ms: number | null = null
  private cancel: (() => void) | undefined
  private stopped_for_quorum = false
  /** VMs being migrated away: their guest may pause (blackout), so no health verdicts on them. */
  private readonly migrating = new Set<string>()
  /** Where each VM's disks are writable now, disk 0 first (CLX made them so before the start / in the migration). */
  private readonly disks = new Map<string, readonly VmDiskTarget[]>()

  /** The clock this host's guests run on: each guest timer checks the lease first (guest-clock.ts). */
  readonly guestClock: Clock

  constructor(private readonly deps: VmAgentDeps) {
    this.guestClock = gatedClock(deps.clock, () => this.checkLease(deps.clock.now()))
    this.vms = new VmHost(deps.host, deps.memory_mib, this.guestClock)
  }

  /** Arms the periodic lease and health check. */
  start(): void {
    this.cancel = everyTick(this.deps.clock, this.deps.check_interval_ms, () => this.check(), this.deps.check_phase)
  }

  stop(): void {
    this.cancel?.()
    this.vms.stopAll()
    this.watches.clear()
  }

  /**
   * `disks`: the VM's disk targets, disk 0 first (from diskTargetsFor after CLX prepared them); none: no disk.
   * `load`: the guest load the role keeps, applied as it starts (a restarted guest runs its
   * applications again); null: idle.
   */
  startVm(
    role: string,
    memory_mib: number,
    op: number,
    epoch: number,
    from: string,
    disks: readonly VmDiskTarget[] = [],
    load: GuestLoadSetting | null = null,
  ): VmOpResult {
    const now = this.deps.clock.now()
    if (!this.deps.holdsLease(now))
      return { ok: false, reason: `${this.deps.host} holds no quorum lease, so it may not run vms now`, no_lease: true }
    try {
      const already = this.vms.list().some((v) => v.name === role)
      this.vms.start(role, memory_mib, op, epoch)
      this.setDisks(role, disks)
      if (load !== null) this.vms.instance(role)?.setLoad(load)
      if (!already)
        this.watches.set(role, { health: startHealthCheck(this.deps.health, now), beats: 0, last_beat_ms: null, suspect_reported: false })
      this.stopped_for_quorum = false
      this.deps.announce?.({ vm: role, at: 'here', op, epoch }) // before the event: whoever sees it can reach the VM
      this.deps.emitEvent('vm.started', { vm: role, op, epoch, by: from })
      return { ok: true, reason: `running on ${this.deps.host}` }
    } catch (e) {
      return { ok: false, reason: describeError(e) }
    }
  }

  stopVm(role: string, op: number, reason: string): VmOpResult {
    const ran = this.vms.list().find((v) => v.name === role)
    const had = ran !== undefined
    this.vms.stop(role)
    this.watches.delete(role)
    this.disks.delete(role)
    if (had) {
      this.deps.announce?.({ vm: role, at: 'gone', op: ran.op, epoch: ran.epoch })
      this.deps.emitEvent('vm.stopped', { vm: role, op, reason })
    }
    return { ok: true, reason: had ? `stopped on ${this.deps.host}` : `not on ${this.deps.host}` }
  }

  /** A VM arrived by live or quick migration and runs here now, as start `op` of `epoch`. */
  adoptVm(vm: VmInstance, op: number, epoch: number, from: string): void {
    this.vms.adopt(vm, op, epoch)
    this.stopped_for_quorum = false // as for a start: a later lapse must stop it
    this.watches.set(vm.name, {
      health: startHealthCheck(this.deps.health, this.deps.clock.now()),
      beats: vm.guestHeartbeats,
      last_beat_ms: null,
      suspect_reported: false,
    })
    this.deps.announce?.({ vm: vm.name, at: 'here', op, epoch }) // before the event, as for a start
    this.deps.emitEvent('vm.arrived', { vm: vm.name, op, epoch, from })
  }

  /** The VM left: it runs on `to` now; free it here without a stop. */
  releaseVm(role: string, to: string): void {
    this.vms.release(role)
    this.watches.delete(role)
    this.migrating.delete(role)
    this.disks.delete(role)
    this.deps.emitEvent('vm.departed', { vm: role, to })
  }

  /** Marks a VM as being migrated away (true) or not any more (false). */
  setMigrating(role: string, on: boolean): void {
    if (on) this.migrating.add(role)
    else this.migrating.delete(role)
  }

  /** Where the VM's disks' I/O goes, disk 0 first (the VM's disk writers attach to them); none: no disk, or not here. */
  disksOf(role: string): readonly VmDiskTarget[] {
    return this.disks.get(role) ?? []
  }

  /** The VM's disk targets here, disk 0 first, and the block I/O that reaches each (Replica reads them to resync); none: no disk, or not running here. */
  disksIo(role: string): { target: VmDiskTarget; io: BlockIoPort }[] {
    const targets = this.disks.get(role) ?? []
    if (this.deps.blockIoFor === undefined || this.vms.instance(role)?.state !== 'running') return []
    return targets.map((target) => ({ target, io: this.deps.blockIoFor!(target) }))
  }

  /**
   * Records (or with none forgets) the VM's disk targets, e.g. after a migration switched
   * its group over, and points the VM's disk writers at them: the writers are (re)attached
   * when the VM runs here and the targets changed.
   */
  setDisks(role: string, disks: readonly VmDiskTarget[]): void {
    if (disks.length === 0) this.disks.delete(role)
    else this.disks.set(role, disks)
    this.connectDisks(role)
  }

  private connectDisks(role: string): void {
    const vm = this.vms.instance(role)
    if (this.deps.blockIoFor === undefined || vm === undefined || vm.state !== 'running') return
    const targets = this.disks.get(role)
    const current = vm.disks
    if (
      current.length > 0 &&
      targets &&
      sameDisks(
        current.map((d) => d.target),
        targets,
      )
    )
      return
    const attach = (): void => {
      if (
        targets === undefined ||
        vm.disks.length > 0 ||
        vm.state !== 'running' ||
        this.vms.instance(role) !== vm ||
        this.disks.get(role) !== targets
      )
        return
      const epoch = this.deps.writerEpoch ?? (() => this.vms.list().find((v) => v.name === role)?.epoch ?? 0)
      vm.attachDisks(
        targets.map((t) => ({
          target: { host: this.deps.host, array: t.array, volume: t.volume, size_bytes: t.size_bytes, epoch },
          io: this.deps.blockIoFor!(t),
        })),
        (kind, details) => this.deps.emitEvent(kind, details),
        this.deps.disk_write_journal,
      )
    }
    if (current.length > 0) void vm.detachDisks().then(attach, attach)
    else attach()
  }

  inventory(): InventoryVmRecord[] {
    return this.vms.list().map((v) => ({
      role: v.name,
      op: v.op,
      epoch: v.epoch,
      memory_mib: v.memory_mib,
      state: v.state,
      guest_heartbeats: v.guest_heartbeats,
      storage: this.storageOf(v.name),
    }))
  }

  /** What this host knows of the VM's disks (`vm list`'s STORAGE column): the first disk not ok, else disk 0's. */
  private storageOf(role: string): StorageHealth {
    const writers = this.vms.instance(role)?.disks ?? []
    const targets = this.disks.get(role) ?? []
    const each = (targets.length === 0 ? [undefined] : targets).map((target, k) => {
      const disk = writers[k]
      const writer = disk && { state: disk.state, last_write_failed: disk.lastWriteFailed, last_error: disk.counters().last_error }
      return storageHealth(target, writer ?? null, (array) => this.deps.arrayReachable?.(array) ?? true)
    })
    const health = each.find((h) => h.state !== 'ok') ?? each[0]!
    return { state: health.state, reason: health.reason.slice(0, ROLE_REASON_CHARS_MAX) }
  }

  /**
   * Fault injection (`hvlab vm hang`): the guest of `role` hangs — its heartbeat stops, the
   * VM stays running — for `for_ms` or (null) until released or restarted; the health
   * checks then restart it, and fail it over after the policy's restart limit.
   */
  hang(role: string, for_ms: number | null = null): void {
    const vm = this.vms.instance(role)
    if (vm === undefined) throw new HvlabError('HVLAB_E_NOT_FOUND', `${this.deps.host} does not run vm ${role}`)
    vm.hang(for_ms)
    this.deps.emitEvent('vm.guest-hung', {
      vm: role,
      node: this.deps.host,
      for_ms,
      reason: 'operator fault injection: the guest stops answering its heartbeat',
    })
  }

  /** Ends a hang injected by `hang`; returns whether the guest was hung. */
  releaseHang(role: string): boolean {
    const vm = this.vms.instance(role)
    if (vm === undefined) throw new HvlabError('HVLAB_E_NOT_FOUND', `${this.deps.host} does not run vm ${role}`)
    const was = vm.releaseHang()
    if (was) this.deps.emitEvent('vm.guest-released', { vm: role, node: this.deps.host })
    return was
  }

  /** One periodic check (public for tests). */
  check(): void {
    const now = this.deps.clock.now()
    this.checkLease(now)
    this.checkGuests(now)
  }

  private checkLease(now: number): void {
    if (this.deps.holdsLease(now)) {
      // A new lease: the next lapse stops whatever runs here then (VMs started or migrated in since).
      this.without_lease_since_ms = null
      this.stopped_for_quorum = false
      return
    }
    if (this.without_lease_since_ms === null) {
      const until = this.deps.leaseUntil?.() ?? 0
      this.without_lease_since_ms = until > 0 && until <= now ? until : now
    }
    const without_ms = Math.round(now - this.without_lease_since_ms)
    if (without_ms < this.deps.no_quorum_grace_ms || this.stopped_for_quorum) return
    if (this.deps.unsafe_ignore_quorum_loss === true) return // deliberately broken (tests only): the VMs run on
    this.stopped_for_quorum = true
    const ran = this.vms.list()
    const names = this.vms.stopAll()
    this.watches.clear()
    for (const v of ran) this.deps.announce?.({ vm: v.name, at: 'gone', op: v.op, epoch: v.epoch })
    if (names.length > 0) {
      this.deps.emitEvent('role.stopped-no-quorum', {
        node: this.deps.host,
        vms: names,
        without_lease_ms: without_ms,
        reason: `${this.deps.host} has had no quorum lease for ${without_ms} ms; it stops its vms so the majority may restart them`,
      })
    }
  }

  private checkGuests(now: number): void {
    const running = new Map(this.vms.list().map((v) => [v.name, v]))
    for (const [role, w] of this.watches) {
      const vm = running.get(role)
      if (vm === undefined) {
        this.watches.delete(role)
        continue
      }
      if (vm.guest_heartbeats !== w.beats) {
        w.beats = vm.guest_heartbeats
        w.last_beat_ms = now
      }
      if (this.migrating.has(role)) {
        w.last_beat_ms = now // a blackout or a pause in doubt is not a hung guest
        continue
      }
      if (now < nextCheckAt(w.health)) continue
      const r = runHealthCheck(w.health, this.deps.health, w.last_beat_ms, now)
      w.health = r.state
      if (r.verdict === 'suspect' && !w.suspect_reported) {
        w.suspect_reported = true
        this.deps.emitEvent('role.health-suspect', {
          role,
          node: this.deps.host,
          check: r.check,
          reason: 'LooksAlive: no guest heartbeat lately; IsAlive follows',
        })
      } else if (r.verdict === 'healthy') {
        w.suspect_reported = false
      } else if (r.verdict === 'unresponsive') {
        const silent_ms = Math.round(now - (w.last_beat_ms ?? w.health.started_at_ms))
        const reason = `IsAlive failed on ${this.deps.host}: the guest of vm ${role} has been silent for ${silent_ms} ms`
        this.deps.emitEvent('role.health-failed', { role, node: this.deps.host, reason })
        this.deps.reportFailure({ role, op: vm.op, gone: false, reason })
      }
    }
  }
}

/** Do the writers' targets name the same array and volume as the disk targets, disk by disk? */
function sameDisks(writing: readonly { array: string; volume: string }[], targets: readonly VmDiskTarget[]): boolean {
  return writing.length === targets.length && targets.every((t, k) => writing[k]!.array === t.array && writing[k]!.volume === t.volume)
}
