/**
 * The primary's side of one VM's replication, as the host running the VM carries it out:
 * it begins with the replica server (which says what the replica has applied), runs the
 * sender machine (replica-sender.ts) with a resync first — the initial replication, or a
 * new primary after a move or a failover, which has no log for the replica — and carries
 * out its effects: shipments over the connection to the server (shipment-sender.ts), the
 * resync (primary-resync.ts), the cycle timer, the timeline. Every guest write the VM's
 * disk completes comes in through `write`.
 *
 * With `--app-consistent-every-h` the machine asks the guest's integration service
 * (agent/vm/guest-quiesce.ts) to quiesce before some cycles; the shell passes the answer
 * back and lets the guest resume when the machine says so.
 *
 * One shipment goes at a time: a cycle that comes while one is still on the wire sends
 * nothing more (the machine counts it missed and sends the same shipment again later).
 */
import type { Clock } from '../../shared/clock.js'
import { HvlabError, describeError, type HvlabCode } from '../../shared/errors.js'
import { REPLICA_RETRY_MS, type PrimarySideStatus, type ReplicationSetting } from '../../shared/protocol/replica-messages.js'
import type { ReplicaEvent } from '../../shared/timeline/replica-events.js'
import type { GuestQuiescer } from '../vm/guest-quiesce.js'
import { appConsistentOptions } from './app-consistent-cycles.js'
import { healthThresholds } from './replica-health.js'
import { recoveryPointEveryMs } from './recovery-points.js'
import { ReplicaSender, type ReplicaSenderEffect, type ReplicaSenderInput } from './replica-sender.js'
import { resyncReplica, type PrimaryDisk } from './primary-resync.js'
import { exportDisk, exportFileName } from './replica-export.js'
import { sendShipment, type PartRequester } from './shipment-sender.js'

/** How long one request to the replica server may take (a 4 MiB part over a slow WAN link). */
export const REPLICA_REQUEST_TIMEOUT_MS = 30_000
export { REPLICA_RETRY_MS }

export interface ReplicationShellDeps {
  readonly vm: string
  /** This host (the primary server), named in an export. */
  readonly host: string
  readonly setting: ReplicationSetting
  readonly clock: Clock
  readonly time_scale: number
  /** The connection to the replica server now; undefined while there is none. */
  server(): PartRequester | undefined
  readonly disk: PrimaryDisk
  /** The VM's memory (the replica VM starts with it at a failover). */
  readonly memory_mib: number
  /** Its disk writes sent and not yet completed: a stopped VM's last changes are not all in the log while any are. */
  writesInFlight(): number
  /** How often the replica server takes a recovery point (`--app-consistent-every-h` counts in those); default hourly, scaled. */
  readonly point_every_ms?: number
  /** The guest's integration service now (undefined, or absent: none, and a quiesce times out). */
  guest?(): GuestQuiescer | undefined
  emit(event: ReplicaEvent): void
}

/** A stopped VM's last changes are sent within this long, or given up (its replica then resyncs when it replicates again). */
export const FINISH_MS_MAX = 120_000

export class ReplicationShell {
  private sender: ReplicaSender | null = null
  private cancelTimer: (() => void) | null = null
  private sending = false
  private stopped = false
  private cycles_applied = 0
  private shipped_bytes = new Map<number, number>()
  private last_cycle_bytes: number | null = null
  private last_error: string | null = null
  private last_error_code: HvlabCode | null = null
  /** Since when the VM no longer runs here: the shell sends what is left, then ends (null: it runs). */
  private finishing_since_ms: number | null = null
  /** What the initial replication waits for (null: nothing, or it is done). */
  private waiting_for: PrimarySideStatus['waiting_for'] = null
  /** `export`: the file this host exported the disk to. */
  private export_file: string | null = null

  constructor(private readonly d: ReplicationShellDeps) {}

  get setting(): ReplicationSetting {
    return this.d.setting
  }

  get blockSizeBytes(): number {
    return this.d.disk.block_size_bytes
  }

  /** Begins with the replica server, again and again until it answers (or the shell is stopped). */
  start(): void {
    void this.begin()
  }

  /**
   * The VM stopped here (shut down for a planned failover, or moved): its last writes are
   * logged as they complete; the log is sent now and again after each answer until nothing
   * is left (`done`). A refusal or a resync ends it: another host replicates the VM now.
   */
  finish(): void {
    if (this.finishing_since_ms !== null) return
    this.finishing_since_ms = this.d.clock.now()
    this.step({ kind: 'flush' })
  }

  /**
   * How the stopped VM's last changes ended: `sent` (every one applied on the replica),
   * `abandoned` (refused, a resync was needed, or not within FINISH_MS_MAX), or null
   * while they are still going (or the VM runs).
   */
  get finished(): 'sent' | 'abandoned' | null {
    if (this.finishing_since_ms === null) return this.stopped ? 'abandoned' : null
    const s = this.sender?.status(this.d.clock.now())
    const idle = s !== undefined && s.in_flight === null && s.pending_bytes === 0 && !s.resyncing && !this.sending
    if (idle && this.d.writesInFlight() === 0) return 'sent'
    if (this.stopped || this.d.clock.now() - this.finishing_since_ms > FINISH_MS_MAX) return 'abandoned'
    return null
  }

  stop(): void {
    this.stopped = true
    this.cancelTimer?.()
    this.cancelTimer = null
  }

  /** A guest write the VM's disk completed (acknowledged, or in doubt: it may be on the disk). */
  write(block: number, data: Uint8Array): void {
    this.step({ kind: 'write', block, data })
    if (this.finishing_since_ms !== null) this.step({ kind: 'flush' }) // a stopped VM's late write goes now, not a cycle later
  }

  status(): PrimarySideStatus {
    const now = this.d.clock.now()
    const s = this.sender?.status(now)
    return {
      vm: this.d.vm,
      to: this.d.setting.to,
      frequency_ms: this.d.setting.frequency_ms,
      health: s?.health ?? 'Critical',
      lag_ms: s?.lag_ms ?? 0,
      pending_bytes: s?.pending_bytes ?? 0,
      in_flight: s?.in_flight ?? null,
      resyncing: s?.resyncing ?? true,
      ...(s !== undefined && this.d.setting.app_consistent_every_h !== undefined ? { quiesce_timeouts: s.quiesce_timeouts } : {}),
      cycles_applied: this.cycles_applied,
      last_cycle_bytes: this.last_cycle_bytes,
      last_error: this.last_error,
      last_error_code: this.last_error_code,
      stopped: this.finishing_since_ms !== null,
      finished: this.finished,
      waiting_for: this.waiting_for,
      export_file: this.export_file,
    }
  }

  private thresholds() {
    return healthThresholds(this.d.setting.frequency_ms, this.d.time_scale)
  }

  private async begin(): Promise<void> {
    if (this.stopped) return
    const start_at_ms = this.d.setting.start_at_ms ?? 0
    if (start_at_ms > this.d.clock.now()) {
      this.waiting_for = 'start-time' // a scheduled initial replication: nothing travels before its time
      this.d.clock.setTimer(start_at_ms - this.d.clock.now(), () => void this.begin())
      return
    }
    try {
      const { applied, has_copy } = await this.beginRequest()
      if (this.stopped) return
      if (!has_copy && (this.d.setting.initial === 'export' || this.d.setting.initial === 'seed')) return await this.awaitCopy()
      this.waiting_for = null
      const o = { vm: this.d.vm, block_size_bytes: this.d.disk.block_size_bytes, disk_blocks: this.d.disk.blocks }
      const app_consistent = this.appConsistent()
      const config = { ...o, thresholds: this.thresholds(), first_cycle: applied + 1, ...(app_consistent ? { app_consistent } : {}) }
      this.sender = new ReplicaSender(config, this.d.clock.now())
      this.run(this.sender.start(true))
    } catch (e) {
      this.failed(e)
      this.retryLater(() => void this.begin())
    }
  }

  /**
   * The initial copy comes by media (`export`: this host writes it first) or is to be on the
   * replica server already (`seed`): nothing goes over the network until the server has it.
   */
  private async awaitCopy(): Promise<void> {
    this.waiting_for = 'initial-copy'
    const dir = this.d.setting.export_dir
    if (this.d.setting.initial === 'export' && this.export_file === null && dir !== undefined) {
      const file = exportFileName(dir, this.d.vm)
      const header = { vm: this.d.vm, from: this.d.host, memory_mib: this.d.memory_mib, exported_at_ms: this.d.clock.now() }
      const geometry = { block_size_bytes: this.d.disk.block_size_bytes, disk_blocks: this.d.disk.blocks }
      const blocks = await exportDisk(file, this.d.disk, { ...header, ...geometry })
      this.export_file = file
      this.d.emit({ kind: 'replica.exported', details: { vm: this.d.vm, file, blocks } })
    }
    this.retryLater(() => void this.begin())
  }

  private async beginRequest(): Promise<{ applied: number; has_copy: boolean }> {
    const reply = await this.connection().request(
      {
        t: 'replica-begin-request',
        vm: this.d.vm,
        block_size_bytes: this.d.disk.block_size_bytes,
        disk_blocks: this.d.disk.blocks,
        recovery_points: this.d.setting.recovery_points,
        memory_mib: this.d.memory_mib,
      },
      { timeout_ms: REPLICA_REQUEST_TIMEOUT_MS },
    )
    const m = reply.message
    if (m.t !== 'replica-begin-reply' || m.vm !== this.d.vm)
      throw new HvlabError('HVLAB_E_PROTOCOL', `the replica server answered replica-begin with ${m.t}`)
    this.clearError()
    return { applied: m.applied_cycle, has_copy: m.has_copy }
  }

  private connection(): PartRequester {
    const c = this.d.server()
    if (c === undefined) throw new HvlabError('HVLAB_E_CLOSED', `no connection to replica server ${this.d.setting.to}`)
    return c
  }

  private step(input: ReplicaSenderInput): void {
    if (this.stopped || this.sender === null) return
    this.run(this.sender.step(input, this.d.clock.now()))
  }

  private run(effects: readonly ReplicaSenderEffect[]): void {
    for (const fx of effects) {
      switch (fx.kind) {
        case 'ship':
          this.ship(fx.shipment)
          break
        case 'resync':
          void this.resync()
          break
        case 'set-timer':
          this.setTimer(fx.at_ms)
          break
        case 'quiesce':
          this.quiesce(fx.cycle)
          break
        case 'thaw':
          this.d.guest?.()?.thaw()
          break
        case 'emit':
          this.d.emit(fx.event)
          break
      }
    }
  }

  private ship(shipment: Extract<ReplicaSenderEffect, { kind: 'ship' }>['shipment']): void {
    if (this.sending) return
    this.sending = true
    this.shipped_bytes.set(shipment.cycle, shipment.blocks.length * this.d.disk.block_size_bytes)
    const o = {
      block_size_bytes: this.d.disk.block_size_bytes,
      compression: this.d.setting.compress ? ('deflate' as const) : ('none' as const),
      timeout_ms: REPLICA_REQUEST_TIMEOUT_MS,
    }
    const c = this.d.server()
    const sent = c === undefined ? Promise.resolve({ kind: 'send-failed' as const, cycle: shipment.cycle }) : sendShipment(c, shipment, o)
    sent
      .then((outcome) => {
        this.sending = false
        if (outcome.kind === 'answer' && outcome.outcome !== 'refused') this.applied(outcome.cycle)
        if (outcome.kind === 'answer' && outcome.outcome === 'refused' && this.finishing_since_ms !== null) return this.stop()
        if (outcome.kind === 'send-failed')
          this.failed(new HvlabError('HVLAB_E_CLOSED', `shipment ${shipment.cycle} did not reach ${this.d.setting.to}`))
        this.step(outcome)
        if (this.finishing_since_ms !== null && this.sender !== null && this.sender.status(this.d.clock.now()).pending_bytes > 0)
          this.step({ kind: 'flush' }) // what the stopped VM left, at once
      })
      .catch((e: unknown) => {
        this.sending = false
        this.failed(e)
        this.step({ kind: 'send-failed', cycle: shipment.cycle })
      })
  }

  /** `--app-consistent-every-h` as the lab runs it (undefined: not set). */
  private appConsistent() {
    const point_every_ms = this.d.point_every_ms ?? recoveryPointEveryMs(this.d.time_scale)
    return appConsistentOptions(this.d.setting.app_consistent_every_h, point_every_ms, this.thresholds().frequency_ms)
  }

  /** Asks the guest to quiesce for `cycle`, holding at most the machine's timeout; its answer goes to the machine. */
  private quiesce(cycle: number): void {
    const guest = this.d.guest?.()
    const hold_ms = this.appConsistent()?.timeout_ms
    if (guest === undefined || hold_ms === undefined) return // the machine's timeout closes the cycle crash-consistent
    guest.quiesce(hold_ms).then(
      (answered) => {
        if (answered) this.step({ kind: 'quiesced', cycle })
      },
      (e: unknown) => this.failed(e),
    )
  }

  private applied(cycle: number): void {
    this.cycles_applied++
    this.last_cycle_bytes = this.shipped_bytes.get(cycle) ?? null
    this.shipped_bytes.clear()
    this.clearError()
  }

  private async resync(): Promise<void> {
    if (this.finishing_since_ms !== null) return this.stop() // the VM runs elsewhere now, or will resync where it runs next
    if (this.stopped || this.sender === null) return
    try {
      await this.beginRequest() // the server may have restarted since: it opens the replica again
      const r = await resyncReplica(this.connection(), this.d.disk, {
        vm: this.d.vm,
        next_cycle: this.sender.nextCycle,
        timeout_ms: REPLICA_REQUEST_TIMEOUT_MS,
      })
      this.d.emit({ kind: 'replica.resynced', details: { vm: this.d.vm, ...r } })
      this.step({ kind: 'resynced' })
    } catch (e) {
      this.failed(e)
      this.retryLater(() => void this.resync())
    }
  }

  private setTimer(at_ms: number): void {
    this.cancelTimer?.()
    this.cancelTimer = this.d.clock.setTimer(Math.max(0, at_ms - this.d.clock.now()), () => {
      this.cancelTimer = null
      this.step({ kind: 'timer' })
    })
  }

  private retryLater(again: () => void): void {
    if (this.stopped) return
    this.d.clock.setTimer(Math.min(REPLICA_RETRY_MS, this.thresholds().frequency_ms), () => {
      if (!this.stopped) again()
    })
  }

  private failed(e: unknown): void {
    this.last_error = describeError(e).slice(0, 300)
    this.last_error_code = e instanceof HvlabError ? e.wireCode : null
  }

  private clearError(): void {
    this.last_error = null
    this.last_error_code = null
  }
}
