/**
 * The primary's side of one VM's replication, as the host running the VM carries it out:
 * it begins with the replica server (which says what the replica has applied), runs the
 * sender machine (replica-sender.ts) with a resync first — the initial replication, or a
 * new primary after a failover, which has no log for the replica — and carries out its
 * effects: shipments over the connection to the server (shipment-sender.ts), the resync
 * (primary-resync.ts), the cycle timer, the timeline. Every guest write the VM's disk
 * completes comes in through `write`.
 *
 * A VM that moved here by a live or quick migration (`moves` > 0) is logged from the shell's
 * creation, before the server answers: if its previous primary ended cleanly (its last
 * changes applied, replica-primary-end) the server says `continue`, and that log goes on as
 * the next cycle with no resync (primary-handover.ts). While the previous primary has not
 * ended, the shell asks again for up to PREVIOUS_PRIMARY_WAIT_MS, then takes the replica
 * over and resyncs. When its own VM leaves and its last changes are all applied, the shell
 * says so to the server (`end`), so that the VM's next host goes on from here.
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
import {
  REPLICA_RETRY_MS,
  type PrimaryHandover,
  type PrimarySideStatus,
  type ReplicationSetting,
} from '../../shared/protocol/replica-messages.js'
import type { ReplicaEvent } from '../../shared/timeline/replica-events.js'
import type { GuestQuiescer } from '../vm/guest-quiesce.js'
import { appConsistentOptions } from './app-consistent-cycles.js'
import { healthThresholds } from './replica-health.js'
import { recoveryPointEveryMs } from './recovery-points.js'
import { ReplicaSender, type ReplicaSenderEffect, type ReplicaSenderInput } from './replica-sender.js'
import { resyncReplica, type PrimaryDisk } from './primary-resync.js'
import { diskSet, isIncluded, readSet, setBlockOf, type DiskSet } from './disk-set.js'
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
  /** How many times the VM had moved (live or quick migration) when it began running here; 0 or absent: it started here. */
  readonly moves?: number
  /** How often the replica server takes a recovery point (`--app-consistent-every-h` counts in those); default hourly, scaled. */
  readonly point_every_ms?: number
  /** The guest's integration service now (undefined, or absent: none, and a quiesce times out). */
  guest?(): GuestQuiescer | undefined
  /** The replica server runs the VM from its replica (an unplanned failover there, HVLAB_E_REPLICA_RUNS_ELSEWHERE): the copy here is the older one. */
  runsElsewhere?(): void
  emit(event: ReplicaEvent): void
}

/** A stopped VM's last changes are sent within this long, or given up (its replica then resyncs when it replicates again). */
export const FINISH_MS_MAX = 120_000
/** A VM that moved here waits this long at most for its previous primary's clean end before it takes the replica over with a resync. */
export const PREVIOUS_PRIMARY_WAIT_MS = 15_000
/** How often it asks the replica server again meanwhile. */
export const PREVIOUS_PRIMARY_POLL_MS = 250

export class ReplicationShell {
  /** The sender machine, from the shell's creation: a VM that moved here is logged before the server answers. */
  private readonly machine: ReplicaSender
  private readonly created_ms: number
  /** Replication went on here from the previous primary's clean end (null: it began with a resync, or has not begun). */
  private continued_from: PrimarySideStatus['continued_from'] = null
  /** This primary told the server it ended cleanly. */
  private end_told = false
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
  /** The VM's disks and which of them replicate (disk-set.ts). */
  private readonly set: DiskSet
  /** The VM's disks as the replica gets them: a disk left out reads as blank, and a resync does not compare it. */
  private readonly disk: PrimaryDisk

  constructor(private readonly d: ReplicationShellDeps) {
    this.created_ms = d.clock.now()
    const disks = d.disk.disks ?? 1
    this.set = diskSet(disks, d.disk.blocks / disks, d.setting.disks)
    const per_disk = this.set.blocks_per_disk
    this.disk = {
      block_size_bytes: d.disk.block_size_bytes,
      blocks: d.disk.blocks,
      disks,
      ranges: this.set.included.map((k) => ({ first: k * per_disk, blocks: per_disk })),
      read: (first, blocks) =>
        readSet(this.set, d.disk.block_size_bytes, first, blocks, (disk, at, n) => d.disk.read(setBlockOf(this.set, disk, at), n)),
    }
    const app_consistent = this.appConsistent()
    const geometry = { vm: d.vm, block_size_bytes: d.disk.block_size_bytes, disk_blocks: d.disk.blocks }
    this.machine = new ReplicaSender(
      { ...geometry, thresholds: this.thresholds(), ...(app_consistent ? { app_consistent } : {}), begins_later: true },
      this.created_ms,
    )
  }

  /** The machine once it knows where the replica stands (null before: it only logs). */
  private get sender(): ReplicaSender | null {
    return this.machine.begun ? this.machine : null
  }

  private get moves(): number {
    return this.d.moves ?? 0
  }

  get setting(): ReplicationSetting {
    return this.d.setting
  }

  get blockSizeBytes(): number {
    return this.disk.block_size_bytes
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
    if (this.sender === null) return this.stop() // it left before replication began here: nothing of it goes, its next host resyncs
    this.step({ kind: 'flush' })
  }

  /**
   * Once the stopped VM's last changes are all applied (`finished` sent), tells the replica
   * server this primary ended cleanly at its last cycle, with the VM's moves: the VM's next
   * host goes on from there without a resync. Once, and the shell stops: a cycle after its
   * end would leave the replica past it. A refusal only means that host resyncs.
   */
  end(): void {
    if (this.end_told || this.finished !== 'sent' || this.sender === null) return
    this.end_told = true
    this.stop() // no cycle after the end, not even an empty one the timer was due to send: the replica must stand where it ended
    const c = this.d.server()
    if (c === undefined) return
    const end = { t: 'replica-primary-end', vm: this.d.vm, cycle: this.sender.nextCycle - 1, moves: this.moves } as const
    c.request(end, { timeout_ms: REPLICA_REQUEST_TIMEOUT_MS }).then(
      (reply) => {
        if (reply.message.t !== 'ok')
          this.failed(new HvlabError('HVLAB_E_PROTOCOL', `the replica server answered replica-primary-end with ${reply.message.t}`))
      },
      (e: unknown) => this.failed(e),
    )
  }

  /** Its VM stopped here (`finish`): it sends what is left, and logs nothing of a later run of the VM here. */
  get leaving(): boolean {
    return this.finishing_since_ms !== null
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

  /**
   * A guest write of block `block` of the VM's disk `disk` completed (acknowledged, or in
   * doubt: it may be on the disk); a disk left out of replication is not logged.
   */
  write(block: number, data: Uint8Array, disk = 0): void {
    if (!isIncluded(this.set, disk)) return
    this.step({ kind: 'write', block: setBlockOf(this.set, disk, block), data })
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
      pending_bytes: this.machine.status(now).pending_bytes, // also what a moved VM logged before its shell began
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
      continued_from: this.continued_from,
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
      const { applied, has_copy, handover, previous } = await this.beginRequest(this.arrived())
      if (this.stopped) return
      if (handover === 'wait') return this.again(PREVIOUS_PRIMARY_POLL_MS, () => void this.begin()) // its last changes may still come
      if (!has_copy && (this.d.setting.initial === 'export' || this.d.setting.initial === 'seed')) return await this.awaitCopy()
      this.waiting_for = null
      const moved = handover === 'continue' && previous !== null ? { from: previous, to: this.d.host } : undefined
      this.step({ kind: 'begun', first_cycle: applied + 1, ...(moved === undefined ? {} : { moved }) })
      if (moved !== undefined && this.sender?.status(this.d.clock.now()).resyncing === false)
        this.continued_from = { host: moved.from, cycle: applied }
    } catch (e) {
      this.failed(e)
      if (HvlabError.has(e, 'HVLAB_E_REPLICA_RUNS_ELSEWHERE')) this.d.runsElsewhere?.()
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
      const geometry = { block_size_bytes: this.disk.block_size_bytes, disk_blocks: this.disk.blocks }
      const blocks = await exportDisk(file, this.disk, { ...header, ...geometry })
      this.export_file = file
      this.d.emit({ kind: 'replica.exported', details: { vm: this.d.vm, file, blocks } })
    }
    this.retryLater(() => void this.begin())
  }

  /** A VM that moved here asks to go on from its previous primary, waiting for its end while PREVIOUS_PRIMARY_WAIT_MS lasts. */
  private arrived(): { moves: number; wait: boolean } | undefined {
    if (this.moves === 0) return undefined
    return { moves: this.moves, wait: this.d.clock.now() - this.created_ms < PREVIOUS_PRIMARY_WAIT_MS }
  }

  /** Begins with the replica server (`arrived`: the VM moved here; absent: this primary takes the replica over). */
  private async beginRequest(arrived?: {
    moves: number
    wait: boolean
  }): Promise<{ applied: number; has_copy: boolean; handover: PrimaryHandover; previous: string | null }> {
    const reply = await this.connection().request(
      {
        t: 'replica-begin-request',
        vm: this.d.vm,
        block_size_bytes: this.disk.block_size_bytes,
        disk_blocks: this.disk.blocks,
        ...(this.set.disks > 1 ? { disks: this.set.disks } : {}),
        ...(this.set.included.length < this.set.disks ? { included_disks: [...this.set.included] } : {}),
        recovery_points: this.d.setting.recovery_points,
        memory_mib: this.d.memory_mib,
        ...(arrived === undefined ? {} : { arrived }),
      },
      { timeout_ms: REPLICA_REQUEST_TIMEOUT_MS },
    )
    const m = reply.message
    if (m.t !== 'replica-begin-reply' || m.vm !== this.d.vm)
      throw new HvlabError('HVLAB_E_PROTOCOL', `the replica server answered replica-begin with ${m.t}`)
    this.clearError()
    return { applied: m.applied_cycle, has_copy: m.has_copy, handover: m.handover, previous: m.previous }
  }

  private connection(): PartRequester {
    const c = this.d.server()
    if (c === undefined) throw new HvlabError('HVLAB_E_CLOSED', `no connection to replica server ${this.d.setting.to}`)
    return c
  }

  private step(input: ReplicaSenderInput): void {
    if (this.stopped) return
    if (this.sender === null && input.kind === 'write' && this.moves === 0) return // a resync comes first: it reads what the log would hold
    this.run(this.machine.step(input, this.d.clock.now()))
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
    this.shipped_bytes.set(shipment.cycle, shipment.blocks.length * this.disk.block_size_bytes)
    const o = {
      block_size_bytes: this.disk.block_size_bytes,
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
        this.end() // all of it applied: the VM's next host goes on from here
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
      const r = await resyncReplica(this.connection(), this.disk, {
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
    this.again(Math.min(REPLICA_RETRY_MS, this.thresholds().frequency_ms), again)
  }

  private again(after_ms: number, again: () => void): void {
    if (this.stopped) return
    this.d.clock.setTimer(after_ms, () => {
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
