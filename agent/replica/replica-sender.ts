/**
 * The primary side of one VM's replication (Hyper-V Replica, seed 002), a pure state
 * machine: `step(input, now_ms) → effects`. Every guest write goes to the VM's replica
 * log (replica-log.ts). Every cycle (the frequency) the log is closed and its shipment sent
 * to the replica server; the next cycle's log fills meanwhile. One shipment is in flight at
 * a time, and it is sent again, unchanged, until the replica answers for it, so the replica
 * applies cycles in order and stays crash-consistent. A cycle that comes while one is still
 * in flight is missed (the health goes to Warning, then Critical; replica-health.ts).
 *
 * A resync (`resync` effect) is asked for when the log cannot be trusted any more: it grew
 * past half of the disk, or the replica refused a shipment because cycles are missing. The
 * log is emptied and goes on taking writes; the shell compares every block and sends only
 * the differences, then tells the machine (`resynced`) and the replica which cycle comes
 * next (`nextCycle`). A write that lands after its block was compared is in the log, so the
 * first cycle after the resync brings the replica level.
 * `flush` closes and sends the log at once (a planned failover's last changes).
 *
 * A sender may log before it knows where the replica stands (the VM resumed on this host,
 * and the replica server has not answered yet): it takes writes only, until `begun` says
 * which cycle comes next and whether the VM moved here from a primary that ended cleanly
 * (primary-handover.ts). Then that log, every write since the VM resumed here, ships as
 * that cycle, one frequency after it opened, with no resync; otherwise a resync comes first.
 *
 * With `app_consistent`, some cycles are application-consistent (app-consistent-cycles.ts):
 * the machine asks the guest to quiesce (`quiesce`), closes the log when it answers
 * (`quiesced`) or crash-consistent at the timeout, and lets it resume (`thaw`) either way.
 *
 * Inputs and effects are plain data; nothing here reads a clock, a socket or a disk.
 */
import type { EmitEffect, SetTimerEffect } from '../../shared/machine/effect.js'
import type { DetailsOf } from '../../shared/timeline/events.js'
import type { ReplicaEvent, ReplicaEventKind } from '../../shared/timeline/replica-events.js'
import { AppConsistentCycles, type AppConsistentOptions } from './app-consistent-cycles.js'
import { replicationHealth, type HealthThresholds, type ReplicationHealth } from './replica-health.js'
import { ReplicaLog, type LogShipment } from './replica-log.js'
import type { ShipmentRefusal } from './shipment-check.js'

export interface ReplicaSenderConfig {
  readonly vm: string
  readonly block_size_bytes: number
  readonly disk_blocks: number
  readonly thresholds: HealthThresholds
  /** The first log's cycle: one past what the replica has applied (default 1). */
  readonly first_cycle?: number
  /** Application-consistent cycles every so often (`--app-consistent-every-h`); absent: every cycle crash-consistent. */
  readonly app_consistent?: AppConsistentOptions
  /** Created before the replica server said where the replica stands: it only logs until `begun` (default: `first_cycle` is known). */
  readonly begins_later?: boolean
}

/** Why the sender asks for a resync: its log cannot be trusted, or (initial) this primary has no log for the replica yet. */
export type ResyncCause = 'log-over-half-disk' | 'cycles-missing' | 'initial'

export type ReplicaSenderInput =
  | { readonly kind: 'write'; readonly block: number; readonly data: Uint8Array }
  | { readonly kind: 'timer' }
  /** The replica's answer for shipment `cycle`: applied, ignored as already applied, or refused. */
  | {
      readonly kind: 'answer'
      readonly cycle: number
      readonly outcome: 'applied' | 'ignored' | 'refused'
      readonly refusal?: ShipmentRefusal
      readonly resync?: boolean
    }
  /** Sending shipment `cycle` failed (no connection, a timeout): it goes again at the next cycle. */
  | { readonly kind: 'send-failed'; readonly cycle: number }
  /** Close and send the log now (a planned failover). */
  | { readonly kind: 'flush' }
  /** The resync the machine asked for is done (the replica expects `nextCycle` next). */
  | { readonly kind: 'resynced' }
  /** The guest quiesced as `quiesce` asked for `cycle`: its application holds its writes until `thaw`. */
  | { readonly kind: 'quiesced'; readonly cycle: number }
  /**
   * The replica server answered the begin of a sender not `start`ed: `first_cycle` comes next.
   * `moved`: the VM moved here (`to`) and its previous primary `from` ended cleanly at the
   * cycle before, so the log kept so far goes on as `first_cycle`; absent: a resync first.
   */
  | { readonly kind: 'begun'; readonly first_cycle: number; readonly moved?: { readonly from: string; readonly to: string } }

/** What the sender puts on the timeline (shared/timeline/replica-events.ts). */
export type ReplicaSenderEvent = ReplicaEvent

export type ReplicaSenderEffect =
  | { readonly kind: 'ship'; readonly shipment: LogShipment }
  | { readonly kind: 'resync' }
  /** Ask the guest to quiesce before the log of `cycle` closes (answered with `quiesced`); `thaw` lets it resume. */
  | { readonly kind: 'quiesce'; readonly cycle: number }
  | { readonly kind: 'thaw'; readonly cycle: number }
  | SetTimerEffect<undefined>
  | EmitEffect<ReplicaSenderEvent>

export class ReplicaSender {
  private readonly log: ReplicaLog
  private in_flight: LogShipment | null = null
  private next_cycle_ms: number
  private last_applied_ms: number
  private resyncing = false
  private health: ReplicationHealth = 'Normal'
  private out: ReplicaSenderEffect[] = []
  private readonly app: AppConsistentCycles | null
  private quiesce_timeouts = 0
  /** It knows where the replica stands (from its creation, or once `begun`); before, it only logs. */
  private began: boolean

  /** Starts after the initial replication, finished at `now_ms`; the first cycle is one frequency later. */
  constructor(
    private readonly config: ReplicaSenderConfig,
    now_ms: number,
  ) {
    this.log = new ReplicaLog({
      vm: config.vm,
      block_size_bytes: config.block_size_bytes,
      disk_blocks: config.disk_blocks,
      ...(config.first_cycle === undefined ? {} : { first_cycle: config.first_cycle }),
    })
    this.next_cycle_ms = now_ms + config.thresholds.frequency_ms
    this.last_applied_ms = now_ms
    this.app = config.app_consistent === undefined ? null : new AppConsistentCycles(config.app_consistent, now_ms)
    this.began = config.begins_later !== true
  }

  /**
   * The first effects: the cycle timer, and with `initial_resync` a resync first (the
   * initial replication, or a primary that took the VM over without its log): the writes
   * from here on are logged meanwhile, and the first cycle after it carries them.
   */
  start(initial_resync = false): ReplicaSenderEffect[] {
    this.out = [{ kind: 'set-timer', at_ms: this.next_cycle_ms }]
    if (initial_resync) this.askResync('initial', null)
    return this.out
  }

  step(input: ReplicaSenderInput, now_ms: number): ReplicaSenderEffect[] {
    this.out = []
    if (!this.began && input.kind !== 'write' && input.kind !== 'begun') return this.out // nothing to do but log until it knows
    switch (input.kind) {
      case 'write':
        this.onWrite(input.block, input.data, now_ms)
        break
      case 'timer':
        this.onTimer(now_ms)
        break
      case 'answer':
        this.onAnswer(input, now_ms)
        break
      case 'send-failed':
        break // the shipment stays in flight and goes again at the next cycle
      case 'flush':
        this.stopQuiesce()
        if (this.in_flight === null && !this.resyncing) this.closeAndShip(now_ms)
        break
      case 'quiesced':
        this.onQuiesced(input.cycle, now_ms)
        break
      case 'begun':
        this.onBegun(input, now_ms)
        break
      case 'resynced':
        this.resyncing = false
        this.last_applied_ms = now_ms
        if (this.log.needsResync) this.askResync('log-over-half-disk', now_ms)
        break
    }
    this.updateHealth(now_ms)
    return this.out
  }

  /** Replication's state for `replica status`. */
  status(now_ms: number): {
    health: ReplicationHealth
    lag_ms: number
    pending_bytes: number
    in_flight: number | null
    resyncing: boolean
    quiesce_timeouts: number
  } {
    return {
      health: replicationHealth({ last_applied_ms: this.last_applied_ms, resyncing: this.resyncing }, this.config.thresholds, now_ms),
      lag_ms: now_ms - this.last_applied_ms,
      pending_bytes: this.log.pendingBytes + (this.in_flight?.blocks.length ?? 0) * this.config.block_size_bytes,
      in_flight: this.in_flight?.cycle ?? null,
      resyncing: this.resyncing,
      quiesce_timeouts: this.quiesce_timeouts,
    }
  }

  /** It knows where the replica stands: it ships and resyncs (before, it only logs). */
  get begun(): boolean {
    return this.began
  }

  /** The cycle the replica applies next (after a resync: the first one after it). */
  get nextCycle(): number {
    return this.in_flight?.cycle ?? this.log.openCycle
  }

  private onWrite(block: number, data: Uint8Array, now_ms: number): void {
    this.log.append(block, data)
    if (this.began && this.log.needsResync && !this.resyncing) this.askResync('log-over-half-disk', now_ms)
  }

  /** Once: the log numbered from `first_cycle`; it goes on after a clean move, or is dropped for a resync. */
  private onBegun(b: Extract<ReplicaSenderInput, { kind: 'begun' }>, now_ms: number): void {
    if (this.began) return
    this.began = true
    this.log.numberFrom(b.first_cycle)
    this.last_applied_ms = now_ms
    if (b.moved !== undefined && !this.log.needsResync) {
      this.emit('replica.primary-moved', { vm: this.config.vm, ...b.moved, cycle: b.first_cycle - 1 })
      this.out.push({ kind: 'set-timer', at_ms: Math.max(now_ms, this.next_cycle_ms) }) // one frequency after the log opened
      return
    }
    this.next_cycle_ms = now_ms + this.config.thresholds.frequency_ms
    this.out.push(this.nextTimer())
    // Not moved: what it logged is on the disk, and the resync reads every block after this. Moved, its log past half of the disk: dropped.
    if (b.moved === undefined) this.askResync('initial', null)
    else this.askResync('log-over-half-disk', now_ms)
  }

  private onTimer(now_ms: number): void {
    const late = this.app?.timedOut(now_ms) ?? null
    if (late !== null) {
      this.quiesce_timeouts += 1
      this.emit('replica.quiesce-timeout', { vm: this.config.vm, ...late })
      this.out.push({ kind: 'thaw', cycle: late.cycle })
      if (this.in_flight === null && !this.resyncing) this.closeAndShip(now_ms) // crash-consistent: nothing waits for the guest
    }
    // A timer may fire a moment early (a fractional delay rounded down): it is set again, or no cycle would ever come.
    if (now_ms >= this.next_cycle_ms) this.onCycle(now_ms)
    else this.out.push(this.nextTimer())
  }

  /** The cycle timer, or the quiesce's timeout when that comes first. */
  private nextTimer(): SetTimerEffect<undefined> {
    return { kind: 'set-timer', at_ms: Math.min(this.next_cycle_ms, this.app?.deadlineMs ?? Infinity) }
  }

  private onCycle(now_ms: number): void {
    this.next_cycle_ms = now_ms + this.config.thresholds.frequency_ms
    this.out.push({ kind: 'set-timer', at_ms: this.next_cycle_ms })
    if (this.resyncing) return
    if (this.in_flight !== null) {
      this.emit('replica.cycle-missed', { vm: this.config.vm, in_flight: this.in_flight.cycle })
      return this.ship(this.in_flight, true)
    }
    if (this.app?.atCycle(this.log.openCycle, now_ms).action === 'quiesce') {
      this.out.push({ kind: 'quiesce', cycle: this.log.openCycle }, this.nextTimer())
      return // the log closes when the guest answers, or at the timeout
    }
    this.closeAndShip(now_ms)
  }

  /** The guest quiesced: the log closes application-consistent now, if it was asked for this cycle and in time. */
  private onQuiesced(cycle: number, now_ms: number): void {
    const in_time = this.app?.answered(cycle, now_ms) ?? null
    if (in_time !== null && this.in_flight === null && !this.resyncing) {
      this.emit('replica.guest-quiesced', { vm: this.config.vm, cycle, waited_ms: in_time.waited_ms })
      this.closeAndShip(now_ms, 'application')
    }
    this.out.push({ kind: 'thaw', cycle }) // the guest resumes whatever became of the ask
  }

  /** Drops an ask under way (a resync or a flush closes the log otherwise) and lets the guest resume. */
  private stopQuiesce(): void {
    const cycle = this.app?.cancel() ?? null
    if (cycle !== null) this.out.push({ kind: 'thaw', cycle })
  }

  private closeAndShip(now_ms: number, point_kind: 'crash' | 'application' = 'crash'): void {
    const shipment = this.log.close(now_ms, point_kind)
    this.in_flight = shipment
    this.ship(shipment, false)
  }

  private ship(shipment: LogShipment, again: boolean): void {
    this.out.push({ kind: 'ship', shipment })
    const bytes = shipment.blocks.length * this.config.block_size_bytes
    this.emit('replica.cycle-sent', { vm: this.config.vm, cycle: shipment.cycle, blocks: shipment.blocks.length, bytes, again })
  }

  private onAnswer(a: Extract<ReplicaSenderInput, { kind: 'answer' }>, now_ms: number): void {
    if (this.in_flight === null || a.cycle !== this.in_flight.cycle) return // a late answer to an earlier send
    if (a.outcome === 'refused') {
      if (a.resync === true) this.askResync('cycles-missing', now_ms)
      return // otherwise sent again at the next cycle
    }
    this.in_flight = null
    this.last_applied_ms = now_ms
    this.emit('replica.cycle-applied', { vm: this.config.vm, cycle: a.cycle })
  }

  /** `now_ms` null: nothing logged yet to drop (the initial resync). */
  private askResync(why: ResyncCause, now_ms: number | null): void {
    this.stopQuiesce()
    this.resyncing = true
    this.in_flight = null
    if (now_ms !== null) this.log.close(now_ms) // dropped: the resync compares every block; the log starts again from here
    this.out.push({ kind: 'resync' })
    this.emit('replica.resync-needed', { vm: this.config.vm, why })
  }

  private updateHealth(now_ms: number): void {
    const h = replicationHealth({ last_applied_ms: this.last_applied_ms, resyncing: this.resyncing }, this.config.thresholds, now_ms)
    if (h === this.health) return
    this.health = h
    this.emit('replica.health', { vm: this.config.vm, health: h })
  }

  private emit<K extends ReplicaEventKind>(kind: K, details: DetailsOf<K>): void {
    this.out.push({ kind: 'emit', event: { kind, details } as ReplicaEvent })
  }
}
