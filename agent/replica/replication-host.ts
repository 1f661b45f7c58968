/**
 * Hyper-V Replica on a cluster host (the primary server): every VM running here whose
 * role says it is replicated (`hvlab replica enable`, kept in the cluster database, so it
 * follows the VM through moves and failovers) gets a replication shell
 * (replication-shell.ts); a VM that stops, leaves, or is no longer replicated loses it. A
 * periodic check makes it so, from what runs here and what the committed database says.
 *
 * The host's VMs' disk writes come in as a write sink (vm-disk.ts DiskWriteSink): each
 * write that completed acknowledged, or in doubt (it may be on the disk), goes to its
 * VM's log; a refused one wrote nothing. A replicated VM running here without a shell yet
 * (it just resumed here after a move) gets it at its first write, not at the next check,
 * so its log misses none of its writes here (the shell's replication may go on from it).
 * A shell whose stopped VM's last changes were all applied tells the replica server so
 * before it goes (ReplicationShell.end).
 *
 * What a shell sends to its replica server is paced at the VM's bandwidth cap
 * (`--max-mbit`, paced-requester.ts), read from the role at each send.
 */
import { isDeepStrictEqual } from 'node:util'
import type { Clock } from '../../shared/clock.js'
import { everyTick } from '../../shared/periodic-task.js'
import type { PrimarySideStatus, ReplicationSetting } from '../../shared/protocol/replica-messages.js'
import type { ReplicaEvent } from '../../shared/timeline/replica-events.js'
import { encodeDiskWrite, type DiskWriteRecord } from '../vm/disk-write-record.js'
import type { HvlabCode } from '../../shared/errors.js'
import type { DiskWriteOutcome, DiskWritePlace, DiskWriteSink } from '../vm/vm-disk.js'
import type { GuestQuiescer } from '../vm/guest-quiesce.js'
import type { PrimaryDisk } from './primary-resync.js'
import { pacedRequester } from './paced-requester.js'
import { ReplicationShell } from './replication-shell.js'
import { SendPacer } from './send-pacer.js'
import type { PartRequester } from './shipment-sender.js'

/** How often the host matches its shells to the VMs it runs and their roles. */
export const REPLICATION_CHECK_MS = 1000
/** Ended shells whose last status is kept. */
const ENDED_KEPT_MAX = 256

export interface ReplicationHostDeps {
  /** This host: the primary server. */
  readonly host: string
  readonly clock: Clock
  readonly time_scale: number
  /** The VMs running here now. */
  running(): readonly string[]
  /** Role `vm`'s replication as this host's committed cluster database has it; undefined: not replicated. */
  settingOf(vm: string): ReplicationSetting | undefined
  /** The memory of VM `vm` running here. */
  memoryOf(vm: string): number
  /** The VM's disk where it is writable from here now; undefined: none attached. */
  diskOf(vm: string): PrimaryDisk | undefined
  /** The connection to replica server `name` for `vm` now (`name` a cluster: the member its broker placed `vm`'s replica on). */
  server(name: string, vm: string): PartRequester | undefined
  /** How often replica server `name` takes a recovery point; absent: hourly, scaled. */
  pointEveryMs?(name: string): number
  /** How many times VM `vm` running here had moved by migration (its device state counts them); absent: 0, it started here. */
  movesOf?(vm: string): number
  /** The integration service of the guest of VM `vm` running here (application-consistent points). */
  guestOf?(vm: string): GuestQuiescer | undefined
  /** `vm`'s replica server `server` runs it from its replica (an unplanned failover): the copy here is the older one. */
  runsElsewhere?(vm: string, server: string): void
  emit(event: ReplicaEvent): void
}

export class ReplicationHost implements DiskWriteSink {
  private readonly shells = new Map<string, ReplicationShell>()
  /** Each VM's disk writes sent and not yet completed (from the write sink). */
  private readonly in_flight = new Map<string, number>()
  /** Replicated VMs here that cannot replicate yet, with why. */
  private readonly waiting = new Map<string, { setting: ReplicationSetting; why: string }>()
  private cancel: (() => void) | undefined
  /** VMs running here at the last check that are not replicated: their writes look for no shell until the next. */
  private readonly unreplicated = new Set<string>()
  /** The last status of each shell that ended after its VM stopped here. */
  private readonly ended = new Map<string, PrimarySideStatus>()

  constructor(private readonly d: ReplicationHostDeps) {}

  start(): void {
    this.cancel = everyTick(this.d.clock, REPLICATION_CHECK_MS, () => this.check())
  }

  /** The VMs with a shell here: running and replicated, or stopped with their last changes still going. */
  get replicating(): string[] {
    return [...this.shells.keys()]
  }

  stop(): void {
    this.cancel?.()
    for (const s of this.shells.values()) s.stop()
    this.shells.clear()
  }

  issued(r: DiskWriteRecord): void {
    this.in_flight.set(r.vm, (this.in_flight.get(r.vm) ?? 0) + 1)
  }

  completed(r: DiskWriteRecord, outcome: DiskWriteOutcome, _code?: HvlabCode | null, to?: DiskWritePlace): void {
    const n = (this.in_flight.get(r.vm) ?? 1) - 1
    if (n > 0) this.in_flight.set(r.vm, n)
    else this.in_flight.delete(r.vm)
    if (outcome === 'refused') return
    // The VM runs here again while the shell of its last run here still sends what that left: this write is the new run's.
    if (this.shells.get(r.vm)?.leaving === true && this.d.running().includes(r.vm)) this.drop(r.vm)
    const shell = this.shells.get(r.vm) ?? this.shellNow(r.vm)
    if (shell !== undefined) shell.write(r.block, encodeDiskWrite(r, shell.blockSizeBytes), to?.disk ?? 0)
  }

  /** A new shell for `vm` if it runs here, replicated, with its disk attached; undefined otherwise. */
  private shellNow(vm: string): ReplicationShell | undefined {
    if (this.unreplicated.has(vm)) return undefined
    const setting = this.d.settingOf(vm)
    if (setting === undefined || !this.d.running().includes(vm)) return undefined
    return this.newShell(vm, setting)
  }

  /** Makes the shells match the VMs here and their settings (public for tests). */
  check(): void {
    const running = new Set(this.d.running())
    for (const [vm, shell] of this.shells) {
      if (!sameSetting(this.d.settingOf(vm), shell.setting)) this.drop(vm)
      else if (!running.has(vm)) shell.finish() // its last changes go first (a planned failover waits for them)
      if (shell.finished !== null) this.drop(vm)
    }
    this.waiting.clear()
    this.unreplicated.clear()
    for (const vm of running) {
      this.ended.delete(vm)
      const setting = this.d.settingOf(vm)
      if (setting === undefined) this.unreplicated.add(vm)
      if (setting === undefined || this.shells.has(vm)) continue
      if (this.newShell(vm, setting) === undefined) this.waiting.set(vm, { setting, why: `vm ${vm} has no disk attached on this host` })
    }
  }

  /** Starts replicating `vm` from here (undefined: it has no disk attached here). */
  private newShell(vm: string, setting: ReplicationSetting): ReplicationShell | undefined {
    const disk = this.d.diskOf(vm)
    if (disk === undefined) return undefined
    const pacer = new SendPacer()
    const shell = new ReplicationShell({
      vm,
      host: this.d.host,
      setting,
      disk,
      memory_mib: this.d.memoryOf(vm),
      writesInFlight: () => this.in_flight.get(vm) ?? 0,
      moves: this.d.movesOf?.(vm) ?? 0,
      clock: this.d.clock,
      time_scale: this.d.time_scale,
      server: () => this.paced(vm, setting.to, pacer),
      emit: this.d.emit,
      ...(this.d.pointEveryMs ? { point_every_ms: this.d.pointEveryMs(setting.to) } : {}),
      guest: () => this.d.guestOf?.(vm),
      runsElsewhere: () => this.d.runsElsewhere?.(vm, setting.to),
    })
    this.shells.set(vm, shell)
    shell.start()
    return shell
  }

  status(vm: string | null): PrimarySideStatus[] {
    const shells = [...this.shells.entries()].filter(([name]) => vm === null || name === vm).map(([, s]) => s.status())
    const waiting = [...this.waiting.entries()]
      .filter(([name]) => vm === null || name === vm)
      .map(([name, w]) => waitingStatus(name, w.setting, w.why))
    const running = new Set(this.d.running()) // a VM running here again shows no more how it ended, even before its new shell
    const ended = [...this.ended.entries()]
      .filter(([name]) => (vm === null || name === vm) && !this.shells.has(name) && !running.has(name))
      .map(([, e]) => e)
    return [...shells, ...waiting, ...ended]
  }

  /** The connection to replica server `to`, its sends paced at the VM's cap as its role has it now. */
  private paced(vm: string, to: string, pacer: SendPacer): PartRequester | undefined {
    const conn = this.d.server(to, vm)
    if (conn === undefined) return undefined
    return pacedRequester(conn, { pacer, clock: this.d.clock, maxMbit: () => this.d.settingOf(vm)?.max_mbit ?? null })
  }

  private drop(vm: string): void {
    const shell = this.shells.get(vm)
    if (shell === undefined) return
    const last = shell.status()
    shell.end() // its last changes all applied: the VM's next host goes on from here
    shell.stop()
    this.shells.delete(vm)
    // How a stopped VM's last changes ended stays shown (a planned failover reads it), until it runs here again.
    if (last.stopped) this.ended.set(vm, { ...last, finished: last.finished ?? 'abandoned' })
    if (this.ended.size > ENDED_KEPT_MAX) this.ended.delete(this.ended.keys().next().value as string)
  }
}

/** The same replication but for its bandwidth cap (any other field changed gets a new shell, which begins again); a cap changed applies to the next send (paced), with no new shell and so no resync. */
function sameSetting(a: ReplicationSetting | undefined, b: ReplicationSetting): boolean {
  return a !== undefined && isDeepStrictEqual({ ...a, max_mbit: 0 }, { ...b, max_mbit: 0 })
}

function waitingStatus(vm: string, setting: ReplicationSetting, why: string): PrimarySideStatus {
  return {
    vm,
    to: setting.to,
    frequency_ms: setting.frequency_ms,
    health: 'Critical',
    lag_ms: 0,
    pending_bytes: 0,
    in_flight: null,
    resyncing: false,
    cycles_applied: 0,
    last_cycle_bytes: null,
    last_error: why,
    last_error_code: 'HVLAB_E_STATE',
    stopped: false,
    finished: null,
    waiting_for: null,
    export_file: null,
    continued_from: null,
  }
}
