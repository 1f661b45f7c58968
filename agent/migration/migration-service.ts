/**
 * The live-migration shell of one host. Outgoing: runs MigrationSource state machines
 * over PeerConnections (at most `outgoing_max` at once, default 2, a bounded queue
 * beyond), diffs pages in the PageDiffPool, measures bandwidth, dirty rate and blackout
 * (guest paused → destination running) and resolves a MigrationResult. Incoming:
 * `attach(conn)` answers a source's requests through MigrationDestination machines and
 * applies page batches to the arriving VM's memory in the PageApplyPool's workers, in the
 * order they came (page-apply-queue.ts); a round is acknowledged, and the blackout
 * stepped, only once every batch before it is applied.
 *
 * Every effect of a machine is carried out in order; long ones (a round on the wire, the
 * storage hook, a request) run in the background and report back as the next input,
 * and inputs are fed one at a time.
 */
import { RealClock, type Clock } from '../../shared/clock.js'
import { HvlabError, describeError } from '../../shared/errors.js'
import { largeBuffersReleased } from '../../shared/large-buffer-release.js'
import { notePrefaulted } from '../vm/guest-memory-prefault.js'
import { MachineDriver, type EffectHandlers } from '../../shared/machine/driver.js'
import { newId } from '../../shared/ids.js'
import type { Logger } from '../../shared/log.js'
import type { MessageOf } from '../../shared/protocol/messages.js'
import type { StorageMode } from '../../shared/protocol/migration-messages.js'
import { PAGE_SIZE_BYTES } from '../../shared/protocol/page-size.js'
import type { Incoming, PeerConnection, Reply } from '../../shared/transport/peer-connection.js'
import { GuestMemory } from '../vm/guest-memory.js'
import { LabVm, checkDeviceState, type MigratableVm } from './migratable-vm.js'
import { MigrationDestination, type DestinationEffect, type DestinationInput } from './migration-destination.js'
import type { MigrationEvent } from './migration-events.js'
import { MigrationSource, type SourceEffect, type SourceInput, type SourceOutcome } from './migration-source.js'
import { SendWindow } from './send-window.js'
import { PageApplyPool } from './page-apply-pool.js'
import { PageApplyQueue } from './page-apply-queue.js'
import { applyBatch } from './page-batch.js'
import { warmPageKernel } from './page-kernel.js'
import type { PageDiffPool } from './page-diff-pool.js'
import { addPageDiffStats, emptyPageDiffStats, unkeptBitmapBytes, type PageDiffStats } from './page-diff.js'
import { batchEntryCount, streamRound, streamSpares } from './page-stream.js'
import { csvOnlyStorage, type StorageHandOver } from './storage-hand-over.js'
import { stageTimes } from '../../shared/stage-times.js'

export const OUTGOING_MAX_DEFAULT = 2
export const QUEUE_MAX_DEFAULT = 16
export const INCOMING_MAX_DEFAULT = 4
export const MIGRATION_REQUEST_TIMEOUT_MS_DEFAULT = 30_000
export const INCOMING_BYTES_MAX_DEFAULT = 4 * 1024 * 1024 * 1024
/** Bytes of page batches one incoming migration may have waiting to be applied. */
export const APPLY_QUEUE_BYTES_MAX_DEFAULT = 128 * 1024 * 1024
/**
 * What the begin request may take beyond the request timeout, per MiB of the VM: the
 * destination commits the VM's memory before it answers (about 3 ms per MiB measured on the
 * project's 2-core machine, 4.5 in a running lab); a 4 GiB VM on a busy host must not time out.
 */
export const SETUP_COMMIT_MS_PER_MIB_MAX = 20

export interface MigrationServiceOptions {
  /** This host's name. */
  host: string
  log: Logger
  /** Shared by every migration of the host; the caller creates and closes it. */
  pool: PageDiffPool
  /** Applies incoming page batches; shared by every arrival; the caller creates and closes it. Default: one of 1 thread, never closed (its idle workers do not hold the process). */
  apply_pool?: PageApplyPool
  /** Bytes of page batches one incoming migration may have waiting to be applied; default 128 MiB. */
  apply_queue_bytes_max?: number
  clock?: Clock
  /** Outgoing migrations at once (1–16); default 2. */
  outgoing_max?: number
  /** Outgoing migrations waiting beyond those (0–1024); default 16. */
  queue_max?: number
  /** Incoming migrations at once (1–16); default 4. */
  incoming_max?: number
  request_timeout_ms?: number
  /** Guest memory all incoming migrations may allocate together; default 4 GiB. */
  incoming_bytes_max?: number
  storage?: StorageHandOver
  /** Timeline events (stage changes with progress). */
  onEvent?: (event: MigrationEvent) => void
  /** Progress within a round, after each slice of pages sent (not on the timeline: `vm migrate` polls it). */
  onRoundProgress?: (progress: RoundProgress) => void
  /**
   * Asked before a VM may arrive (migration-begin): throw an HvlabError to refuse (no
   * memory, a stale coordinator epoch, no quorum lease …). The source gets the reason.
   */
  admit?: (arrival: Arrival) => void
  /** A VM arrived and runs here now: the host takes it over. */
  onArrived?: (vm: LabVm, arrival: Arrival) => void
  /** An arrival ended without the VM running here (aborted, link lost, refused later). */
  onArrivalEnded?: (arrival: Arrival) => void
  /** A VM left: it runs on `destination`; the host drops it. */
  onDeparted?: (vm: MigratableVm, destination: string) => void
  /** The destination's announcement of the VM's new location (the virtual switch). */
  onAnnounce?: (vm: string, host: string) => void
}

/** What the destination knows of an arriving VM. */
export interface Arrival {
  readonly migration_id: string
  readonly vm: string
  readonly source: string
  readonly page_count: number
  readonly placement: { readonly op: number; readonly epoch: number } | null
}

export interface MigrateOptions {
  /** The cluster's start op and epoch for the VM on the destination. */
  placement?: { op: number; epoch: number }
  downtime_budget_ms?: number
  round_cap?: number
  /** Hash memory on both sides (adds the destination's hashing to the blackout). */
  verify?: boolean
  /** How the VM's disk moves, as the cluster knows it (default: the VM's own, CSV). */
  storage?: StorageMode
}

/** How far the round being sent is: pages sent of the round's, and the memory copied per second so far. */
export interface RoundProgress {
  readonly migration_id: string
  readonly round: number
  readonly pages_done: number
  readonly pages_total: number
  readonly copy_rate_bytes_per_s: number
}

export interface MigrationRoundResult {
  readonly round: number
  readonly dirty_pages: number
  readonly bytes_sent: number
  readonly duration_ms: number
  readonly throttle_pct: number
}

export interface MigrationResult {
  readonly migration_id: string
  readonly vm: string
  readonly source: string
  readonly destination: string
  readonly outcome: SourceOutcome
  /** Why it did not complete ('' when it did). */
  readonly reason: string
  readonly total_ms: number
  /** Start → the destination was ready (its skeleton VM made, its memory committed); null if it never was. */
  readonly setup_ms: number | null
  /** Guest paused → the source heard the destination runs it (completed migrations only; the source's clock). */
  readonly blackout_ms: number | null
  /** Wall-clock ms (`wallNow`) when the guest paused on the source; null if it never paused. */
  readonly paused_at_ms: number | null
  /**
   * The guest's last instruction on the source (its pause) → its first on the destination
   * (its resume), from both hosts' wall clocks (comparable on one machine); completed only.
   */
  readonly guest_paused_ms: number | null
  readonly expected_blackout_ms: number | null
  readonly switch_reason: 'fits_budget' | 'round_cap' | null
  readonly memory_bytes: number
  /** Page batches and device state on the wire. */
  readonly bytes_sent: number
  /** What the same pages would have taken whole (pages looked at × 4096). */
  readonly bytes_raw: number
  readonly rounds: readonly MigrationRoundResult[]
  readonly final_pages: number
  readonly pages: {
    readonly scanned: number
    readonly skipped: number
    readonly zero: number
    readonly delta: number
    readonly full: number
  }
  readonly bandwidth_bytes_per_s: number
  readonly dirty_rate_bytes_per_s: number
  readonly throttle_pct_max: number
  /** sha256 of source memory at pause / destination memory at resume (verify only). */
  readonly source_sha256: string | null
  readonly destination_sha256: string | null
}

export interface MigrationHandle {
  readonly migration_id: string
  readonly result: Promise<MigrationResult>
}

/**
 * Wall-clock ms, unskewed: what two processes on one machine can compare (the lab's clock
 * may be skewed on purpose). The system clock read now, as every process reads it: not
 * `performance.timeOrigin + performance.now()`, which is fixed at each process's start and
 * then drifts from the system clock, measured here at up to 25 ms between lab processes.
 */
export const wallNow = (): number => Date.now()

function checkInt(name: string, value: number, min: number, max: number): number {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new HvlabError('HVLAB_E_USAGE', `migration service: ${name} must be an integer ${min}–${max}, got ${value}`)
  }
  return value
}

/** One outgoing migration: its machine, its connection, what it measured. */
class OutgoingRun {
  readonly machine: MigrationSource
  readonly stats: PageDiffStats = emptyPageDiffStats()
  bytes_sent = 0
  source_sha256: string | null = null
  destination_sha256: string | null = null
  /** Wall-clock ms of the guest's pause here and of its resume on the destination (as the destination said). */
  paused_at_ms: number | null = null
  resumed_at_ms: number | null = null
  private readonly last_sent: SharedArrayBuffer
  /** The pages whose last-sent copy is not kept (page-diff.ts: the bulk round keeps none). */
  private readonly unkept: SharedArrayBuffer
  /** The window the destination granted in its ready answer (null: it grants none; not paced). */
  private window: SendWindow | null = null
  /**
   * Feeds the machine one input at a time, each step's effects in order. Bounded by
   * construction (DESIGN principle 9): only the run itself feeds it (each launched effect
   * gives back one input, and the machine launches a bounded few at a time), plus the
   * connection's close and the operator's cancel; no peer's frame is queued here (the
   * destination's side steps its machine synchronously, with no queue).
   */
  private readonly driver: MachineDriver<SourceInput, SourceEffect>
  private finished = false
  private readonly onClose: (code: number, reason: string) => void
  private resolve!: (r: MigrationResult) => void
  readonly result: Promise<MigrationResult>

  constructor(
    private readonly service: MigrationService,
    private readonly ctx: ServiceContext,
    readonly vm: MigratableVm,
    readonly conn: PeerConnection,
    readonly options: MigrateOptions,
    readonly migration_id: string,
  ) {
    this.machine = new MigrationSource({
      migration_id,
      vm: vm.name,
      destination: conn.remoteName,
      page_count: vm.memory.page_count,
      storage: options.storage ?? vm.storage,
      verify: options.verify ?? false,
      ...(options.downtime_budget_ms !== undefined ? { downtime_budget_ms: options.downtime_budget_ms } : {}),
      ...(options.round_cap !== undefined ? { round_cap: options.round_cap } : {}),
    })
    this.last_sent = new SharedArrayBuffer(vm.memory.byte_length)
    this.unkept = new SharedArrayBuffer(unkeptBitmapBytes(vm.memory.page_count))
    this.result = new Promise((resolve) => (this.resolve = resolve))
    this.driver = new MachineDriver<SourceInput, SourceEffect>({
      step: (input) => (this.machine.done ? [] : this.machine.step(input, this.ctx.clock.now())),
      handlers: this.handlers(),
      onFailed: (e) => {
        ctx.log.error({ err: describeError(e), migration_id }, 'migration source step failed')
        // A bug in the shell or machine must still leave the VM on the source.
        if (!this.machine.done) this.feed({ kind: 'failed', reason: `internal error: ${describeError(e)}` })
      },
    })
    // The close code says who ended it: 1006 cut (a liveness probe, a crash), 1008 refused by a side (the code in `why`).
    this.onClose = (code, why) =>
      this.feed({
        kind: 'failed',
        reason: `the connection to ${conn.remoteName} was lost (WebSocket close ${code}${why ? `: ${why}` : ''})`,
      })
  }

  start(): void {
    if (!this.conn.isOpen) {
      this.feed({ kind: 'start' })
      this.feed({ kind: 'failed', reason: `the connection to ${this.conn.remoteName} is closed` })
      return
    }
    this.conn.once('close', this.onClose)
    this.feed({ kind: 'start' })
    // this thread diffs the blackout's round with the pool's kernel (PageDiffPool.diffHere); a kernel
    // that cannot load fails that round, which says why
    this.ctx.pool.warmHere().catch(() => undefined)
    // while the destination commits memory, the batches' buffers are faulted in; without them the first round writes fresh pages
    this.ctx.pool.warmSpares(streamSpares(this.ctx.pool.chunk_pages)).catch(() => undefined)
  }

  /** Feeds one input; once its effects are done and the machine has ended, the run finishes. */
  feed(input: SourceInput): void {
    void this.driver.feedSettled(input).then(() => {
      if (this.machine.done) this.finish()
    })
  }

  /** Runs a long effect in the background; its outcome comes back as an input. */
  private launch(what: string, work: () => Promise<SourceInput>): void {
    work().then(
      (input) => this.feed(input),
      (e) => this.feed({ kind: 'failed', reason: `${what}: ${describeError(e)}` }),
    )
  }

  /** Long effects run in the background (`launch`); only release-vm and hand-back-storage make the next effect wait. */
  private handlers(): EffectHandlers<SourceEffect> {
    const { vm, conn, migration_id } = this
    return {
      'send-begin': () => this.launch('setup', () => this.sendBegin()),
      'copy-round': (e) => this.launch(`pre-copy round ${e.round}`, () => this.copyRound(e.round, e.pages)),
      'copy-final': (e) => this.launch('blackout', () => this.copyFinal(e.round, e.then)),
      'throttle-guest': (e) => vm.throttle(e.pct),
      'pause-guest': () => {
        this.paused_at_ms = wallNow()
        vm.pause()
      },
      'resume-guest': () => vm.resume(),
      'hand-over-storage': (e) => this.launch('storage hand-over', () => this.handOverStorage(e.mode)),
      'hand-back-storage': (e) => this.handBackStorage(e.mode),
      'resume-destination': (e) =>
        this.launch('resume on the destination', async () => {
          const reply = e.blackout
            ? await this.requestBlackout(e.blackout.round, e.blackout.batches, true)
            : await conn.request({ t: 'migration-resume', migration_id }, { timeout_ms: this.ctx.request_timeout_ms })
          if (reply.message.t !== 'migration-running')
            throw new HvlabError('HVLAB_E_PROTOCOL', `${conn.remoteName} answered ${reply.message.t} to the resume of vm ${vm.name}`)
          this.resumed_at_ms = reply.message.resumed_at_ms ?? null
          return { kind: 'destination-running', host: reply.message.host, guest_paused_ms: this.guestPausedMs() }
        }),
      'abort-destination': (e) => {
        if (conn.isOpen) conn.send({ t: 'migration-abort', migration_id, reason: e.reason.slice(0, 1024) }).catch(() => undefined)
      },
      'release-vm': () => this.releaseVm(),
      emit: (e) => this.ctx.emit(e.event),
    }
  }

  private async sendBegin(): Promise<SourceInput> {
    const { vm, options } = this
    const reply = await this.conn.request(
      {
        t: 'migration-begin',
        migration_id: this.migration_id,
        vm: vm.name,
        page_count: vm.memory.page_count,
        storage: options.storage ?? vm.storage,
        verify: options.verify ?? false,
        ...(options.placement ? { placement: options.placement } : {}),
        paced: true,
      },
      { timeout_ms: this.ctx.request_timeout_ms + (vm.memory.byte_length / (1024 * 1024)) * SETUP_COMMIT_MS_PER_MIB_MAX },
    )
    const window_bytes = reply.message.t === 'migration-ready' ? reply.message.window_bytes : undefined
    if (window_bytes !== undefined) this.window = new SendWindow(window_bytes)
    return { kind: 'destination-ready' }
  }

  /** The destination's migration-applied report (on this run's connection only). */
  applied(from: PeerConnection, bytes: number): void {
    if (from === this.conn) this.window?.applied(bytes)
  }

  private async handOverStorage(mode: StorageMode): Promise<SourceInput> {
    try {
      await this.ctx.storage.handOver(this.storageRequest(mode))
      return { kind: 'storage-handed-over' }
    } catch (e) {
      return { kind: 'storage-refused', reason: describeError(e) }
    }
  }

  private async handBackStorage(mode: StorageMode): Promise<void> {
    try {
      await this.ctx.storage.handBack(this.storageRequest(mode))
    } catch (e) {
      this.ctx.log.error({ err: describeError(e), vm: this.vm.name }, 'storage hand-back failed; the array fencing protects the volume')
    }
  }

  private async releaseVm(): Promise<void> {
    if (this.options.verify) this.source_sha256 = await this.vm.memory.sha256Async() // paused since the blackout: memory at pause
    this.ctx.onDeparted?.(this.vm, this.conn.remoteName)
  }

  private storageRequest(mode: StorageMode) {
    return { vm: this.vm.name, mode, source: this.ctx.host, destination: this.conn.remoteName }
  }

  private stopped = (): boolean => this.machine.done

  /** `kind`: round 0 (bulk), a pre-copy round after it, or the blackout's final round (page-diff.ts). */
  private async sendPages(round: number, pages: Uint32Array, kind: 'bulk' | 'precopy' | 'final'): Promise<number> {
    const started_ms = this.ctx.clock.now()
    const onSlice = (pages_done: number): void => {
      const elapsed_ms = Math.max(1, this.ctx.clock.now() - started_ms)
      const copy_rate_bytes_per_s = ((pages_done * PAGE_SIZE_BYTES) / elapsed_ms) * 1000
      const { migration_id } = this
      this.ctx.onRoundProgress?.({ migration_id, round, pages_done, pages_total: pages.length, copy_rate_bytes_per_s })
    }
    const r = await streamRound({
      onSlice,
      conn: this.conn,
      pool: this.ctx.pool,
      memory: this.vm.memory,
      last_sent: this.last_sent,
      unkept: this.unkept,
      bulk: kind === 'bulk',
      final: kind === 'final',
      pages,
      migration_id: this.migration_id,
      round,
      stopped: this.stopped,
      window: this.window,
    })
    addPageDiffStats(this.stats, r.stats)
    this.bytes_sent += r.bytes_sent
    return r.batches
  }

  private async copyRound(round: number, which: 'all' | 'dirty'): Promise<SourceInput> {
    const memory = this.vm.memory
    const taken = memory.takeDirty() // reset tracking first: what is written from now on is in the next round
    const pages = which === 'all' ? Uint32Array.from({ length: memory.page_count }, (_, i) => i) : taken
    const bytes_before = this.bytes_sent
    const batches = await this.sendPages(round, pages, which === 'all' ? 'bulk' : 'precopy')
    // The round counts once applied there: the switch-over decision takes its time and the pages dirtied meanwhile
    // (with the next round sent before this answer, the decision saw too little: README, fifth round).
    const acking = stageTimes.start()
    await this.conn.request(
      { t: 'migration-round-end', migration_id: this.migration_id, round, batches },
      { timeout_ms: this.ctx.request_timeout_ms },
    )
    stageTimes.end('ack_wait', acking)
    return {
      kind: 'round-sent',
      round,
      pages: pages.length,
      bytes_sent: this.bytes_sent - bytes_before,
      dirty_pages_now: memory.dirtyCount(),
    }
  }

  /** The paused guest's last pages; then ('prepare') its device state, the destination answering that it is prepared. */
  private async copyFinal(round: number, then: 'prepare' | 'resume'): Promise<SourceInput> {
    const pages = this.vm.memory.takeDirty()
    const bytes_before = this.bytes_sent
    const batches = await this.sendPages(round, pages, 'final')
    if (then === 'prepare') {
      const reply = await this.requestBlackout(round, batches, false)
      if (reply.message.t === 'migration-prepared') this.destination_sha256 = reply.message.memory_sha256
    }
    return { kind: 'final-sent', round, pages: pages.length, bytes_sent: this.bytes_sent - bytes_before, batches }
  }

  /** Ends the final round with the device state; `resume`: the destination resumes the VM at once (its storage needs no hand-over). */
  private async requestBlackout(round: number, batches: number, resume: boolean): Promise<Incoming> {
    const state = checkDeviceState(this.vm.name, this.vm.deviceState())
    const reply = await this.conn.request(
      { t: 'migration-blackout', migration_id: this.migration_id, round, batches, ...(resume ? { resume: true as const } : {}) },
      { attachment: state, timeout_ms: this.ctx.request_timeout_ms },
    )
    this.bytes_sent += state.length
    return reply
  }

  /** The guest's pause here → its resume on the destination, wall clocks (null until both are known). */
  private guestPausedMs(): number | null {
    return this.paused_at_ms !== null && this.resumed_at_ms !== null ? Math.max(0, this.resumed_at_ms - this.paused_at_ms) : null
  }

  private finish(): void {
    if (this.finished) return
    this.finished = true
    this.window?.close()
    this.conn.off('close', this.onClose)
    this.resolve(this.buildResult())
    this.service.runEnded(this)
  }

  buildResult(): MigrationResult {
    const r = this.machine.report()
    const now = this.ctx.clock.now()
    const blackout_ms = r.paused_ms !== null && r.running_ms !== null ? r.running_ms - r.paused_ms : null
    return {
      migration_id: this.migration_id,
      vm: this.vm.name,
      source: this.ctx.host,
      destination: this.conn.remoteName,
      outcome: this.machine.outcome ?? 'failed',
      reason: r.reason,
      total_ms: (r.ended_ms ?? now) - (r.started_ms ?? now),
      setup_ms: r.ready_ms !== null && r.started_ms !== null ? r.ready_ms - r.started_ms : null,
      blackout_ms,
      paused_at_ms: this.paused_at_ms,
      guest_paused_ms: this.machine.outcome === 'completed' ? this.guestPausedMs() : null,
      expected_blackout_ms: r.expected_blackout_ms,
      switch_reason: r.switch_reason,
      memory_bytes: this.vm.memory.byte_length,
      bytes_sent: this.bytes_sent,
      bytes_raw: this.stats.scanned * PAGE_SIZE_BYTES,
      rounds: r.rounds.map((x) => ({
        round: x.round,
        dirty_pages: x.pages,
        bytes_sent: x.bytes_sent,
        duration_ms: x.duration_ms,
        throttle_pct: x.throttle_pct,
      })),
      final_pages: r.final_pages,
      pages: {
        scanned: this.stats.scanned,
        skipped: this.stats.skipped,
        zero: this.stats.zero,
        delta: this.stats.delta,
        full: this.stats.full,
      },
      bandwidth_bytes_per_s: r.bandwidth_bytes_per_s,
      dirty_rate_bytes_per_s: r.dirty_rate_bytes_per_s,
      throttle_pct_max: r.throttle_pct_max,
      source_sha256: this.source_sha256,
      destination_sha256: this.destination_sha256,
    }
  }
}

/** One incoming migration: its machine and the arriving VM's memory. */
interface IncomingRun {
  readonly machine: MigrationDestination
  readonly conn: PeerConnection
  readonly migration_id: string
  readonly vm: string
  readonly storage: StorageMode
  readonly page_count: number
  readonly arrival: Arrival
  /** The source paces its batches by this host's migration-applied reports (its begin said so). */
  readonly paced: boolean
  /** Batch bytes applied so far, every round together: what migration-applied reports. */
  applied_bytes: number
  memory: GuestMemory | null
  /** The batches on their way into `memory`, in order (null before allocation and after discard). */
  applies: PageApplyQueue | null
  /** The apply worker committing `memory` (PageApplyPool.commit); the ready reply waits for it. */
  committing: Promise<number> | null
  device_state: Uint8Array | null
  /** Wall-clock ms (`wallNow`) when the guest resumed here. */
  resumed_at_ms: number | null
  /** Steps the machine and carries out its effects, synchronously (every handler is). */
  readonly driver: MachineDriver<DestinationInput, DestinationEffect>
  /** The input being carried out: what it came with, what its effects answered. */
  call: IncomingCall
}

interface IncomingCall {
  readonly attachment: Buffer | undefined
  /** The transport handed the attachment's buffer over (PeerConnection's Incoming.attachment_owned). */
  readonly attachment_owned: boolean
  /** A batch of the blackout's round: applied on this thread (PageApplyQueue), not handed to a worker. */
  readonly final: boolean
  reply: Reply | null
  refusal: HvlabError | null
}

/** The destination machine's step threw: that goes to the caller as it is, no `failed` input. */
class IncomingStepFailed {
  constructor(readonly error: unknown) {}
}

interface ServiceContext {
  readonly host: string
  readonly log: Logger
  readonly pool: PageDiffPool
  readonly clock: Clock
  readonly request_timeout_ms: number
  readonly storage: StorageHandOver
  readonly onDeparted: MigrationServiceOptions['onDeparted']
  readonly onRoundProgress: MigrationServiceOptions['onRoundProgress']
  emit(event: MigrationEvent): void
}

interface Waiting {
  readonly run: OutgoingRun
}

export class MigrationService {
  readonly host: string
  readonly outgoing_max: number
  readonly queue_max: number
  readonly incoming_max: number
  readonly incoming_bytes_max: number
  readonly apply_queue_bytes_max: number
  private readonly options: MigrationServiceOptions
  private readonly apply_pool: PageApplyPool
  private readonly ctx: ServiceContext
  private readonly running = new Map<string, OutgoingRun>()
  private readonly waiting: Waiting[] = []
  private readonly incoming = new Map<string, IncomingRun>()
  private readonly attached = new WeakSet<PeerConnection>()

  constructor(options: MigrationServiceOptions) {
    this.options = options
    this.host = options.host
    this.outgoing_max = checkInt('outgoing_max', options.outgoing_max ?? OUTGOING_MAX_DEFAULT, 1, 16)
    this.queue_max = checkInt('queue_max', options.queue_max ?? QUEUE_MAX_DEFAULT, 0, 1024)
    this.incoming_max = checkInt('incoming_max', options.incoming_max ?? INCOMING_MAX_DEFAULT, 1, 16)
    this.incoming_bytes_max = checkInt(
      'incoming_bytes_max',
      options.incoming_bytes_max ?? INCOMING_BYTES_MAX_DEFAULT,
      PAGE_SIZE_BYTES,
      Number.MAX_SAFE_INTEGER,
    )
    this.apply_queue_bytes_max = checkInt(
      'apply_queue_bytes_max',
      options.apply_queue_bytes_max ?? APPLY_QUEUE_BYTES_MAX_DEFAULT,
      PAGE_SIZE_BYTES,
      Number.MAX_SAFE_INTEGER,
    )
    this.apply_pool = options.apply_pool ?? new PageApplyPool({ threads: 1 })
    const log = options.log.child({ component: 'migration' })
    this.ctx = {
      host: options.host,
      log,
      pool: options.pool,
      clock: options.clock ?? new RealClock(),
      request_timeout_ms: checkInt('request_timeout_ms', options.request_timeout_ms ?? MIGRATION_REQUEST_TIMEOUT_MS_DEFAULT, 1, 3_600_000),
      storage: options.storage ?? csvOnlyStorage,
      onDeparted: options.onDeparted,
      onRoundProgress: options.onRoundProgress,
      emit: (event) => {
        log.info({ event: event.kind, ...event.details }, 'migration event')
        options.onEvent?.(event)
      },
    }
  }

  /** Outgoing migrations running now, and waiting for a slot. */
  get outgoing(): { running: number; queued: number } {
    return { running: this.running.size, queued: this.waiting.length }
  }

  /**
   * Live-migrates `vm` to the peer at the other end of `conn`. Starts at once when
   * fewer than outgoing_max run, else queues (refused beyond queue_max). The result
   * always resolves: outcome completed, failed, cancelled or in_doubt.
   */
  migrate(vm: MigratableVm, conn: PeerConnection, options: MigrateOptions = {}): MigrationHandle {
    if (this.findOutgoing(vm.name)) {
      throw new HvlabError('HVLAB_E_STATE', `vm ${vm.name} is already being migrated from ${this.host}; wait for it or cancel it`)
    }
    if (vm.paused) throw new HvlabError('HVLAB_E_STATE', `vm ${vm.name} is paused; resume it before a live migration`)
    if (this.running.size >= this.outgoing_max && this.waiting.length >= this.queue_max) {
      throw new HvlabError(
        'HVLAB_E_BACKPRESSURE',
        `${this.host} already runs ${this.running.size} migrations and has ${this.waiting.length} queued (the limit); try again when some finish`,
      )
    }
    this.hearApplied(conn)
    const run = new OutgoingRun(this, this.ctx, vm, conn, options, `m-${newId(16)}`)
    if (this.running.size < this.outgoing_max) this.startRun(run)
    else this.waiting.push({ run })
    return { migration_id: run.migration_id, result: run.result }
  }

  /** Cancels the VM's outgoing migration (queued or running); false when there is none. */
  cancel(vmName: string, reason = 'cancelled by the operator'): boolean {
    const queued = this.waiting.findIndex((w) => w.run.vm.name === vmName)
    if (queued >= 0) {
      const [w] = this.waiting.splice(queued, 1)
      // Never started: nothing was sent; the machine ends cancelled in setup.
      w?.run.feed({ kind: 'cancel', reason })
      return true
    }
    const run = this.findOutgoing(vmName)
    if (!run) return false
    run.feed({ kind: 'cancel', reason })
    return true
  }

  /** Answers incoming migrations from this peer. Call once per connection. */
  attach(conn: PeerConnection): void {
    if (this.attached.has(conn)) return
    this.attached.add(conn)
    this.hearApplied(conn)
    conn.onRequest('migration-begin', async ({ message }) => {
      const { run, reply } = this.onBegin(conn, message)
      await this.memoryCommitted(run)
      return reply
    })
    conn.onMessage('migration-pages', ({ message, attachment, attachment_owned }) =>
      this.onPages(conn, message, attachment, attachment_owned === true),
    )
    conn.onRequest('migration-round-end', async ({ message }) => {
      // Stepped as it arrives, in order with the batches (a source could send the next round's at once; ours
      // waits for this answer: copyRound); answered once the batches before it are applied.
      const run = this.arriving(conn, message.migration_id)
      const reply = this.stepIncoming(conn, message.migration_id, { kind: 'round-end', round: message.round, batches: message.batches })
      await this.appliedSoFar(conn, message.migration_id)
      if (run.machine.stage === 'aborted') throw this.notArriving(conn, message.migration_id) // a batch of the round failed to apply
      return reply
    })
    conn.onRequest('migration-blackout', async ({ message, attachment }) => {
      await this.appliedSoFar(conn, message.migration_id)
      const run = this.incoming.get(message.migration_id)
      const reply = this.stepIncoming(
        conn,
        message.migration_id,
        {
          kind: 'blackout',
          round: message.round,
          batches: message.batches,
          device_state_bytes: attachment.length,
          ...(message.resume === true ? { resume: true } : {}),
        },
        attachment,
      )
      // --verify: the hash of memory as it is now (the guest is paused on both sides), sliced so this host keeps serving its heartbeats
      const memory = run?.memory
      if (reply.message.t !== 'migration-prepared' || !run?.machine.verify || !memory) return reply
      return { ...reply, message: { ...reply.message, memory_sha256: await memory.sha256Async() } }
    })
    conn.onRequest('migration-resume', ({ message }) => this.stepIncoming(conn, message.migration_id, { kind: 'resume' }))
    conn.onMessage('migration-abort', ({ message }) => {
      const run = this.incoming.get(message.migration_id)
      if (run && run.conn === conn) this.runOneWay(run, { kind: 'abort', reason: message.reason })
    })
    conn.once('close', () => {
      for (const run of [...this.incoming.values()])
        if (run.conn === conn) this.runOneWay(run, { kind: 'link-lost', reason: 'connection closed' })
    })
  }

  /** A destination's migration-applied reports on this connection move the window of the migration they name. */
  private hearApplied(conn: PeerConnection): void {
    conn.onMessage('migration-applied', ({ message }) => this.running.get(message.migration_id)?.applied(conn, message.bytes))
  }

  /**
   * Resolves once every batch of the migration that arrived so far is applied (or the
   * migration ended: a failed batch aborts it before this resolves), whatever arrives
   * meanwhile. A round's end is answered after this; the blackout waits for it, then steps the machine.
   */
  private async appliedSoFar(conn: PeerConnection, migration_id: string): Promise<void> {
    const run = this.incoming.get(migration_id)
    const waiting = stageTimes.start()
    if (run && run.conn === conn) await run.applies?.appliedSoFar()
    stageTimes.end('round_end_wait', waiting)
  }

  /** The migration arriving from this peer; throws when there is none (it was aborted: a batch failed to apply, the source aborted). */
  private arriving(conn: PeerConnection, migration_id: string): IncomingRun {
    const run = this.incoming.get(migration_id)
    if (run && run.conn === conn) return run
    throw this.notArriving(conn, migration_id)
  }

  private notArriving(conn: PeerConnection, migration_id: string): HvlabError {
    return new HvlabError(
      'HVLAB_E_NOT_FOUND',
      `no migration ${migration_id} from ${conn.remoteName} is arriving on ${this.host}; it was aborted or never began`,
    )
  }

  /** A batch could not be applied (malformed, or the pool failed): the migration cannot go on here. */
  private applyFailed(run: IncomingRun, e: unknown): void {
    if (this.incoming.get(run.migration_id) !== run) return
    this.runOneWay(run, { kind: 'failed', reason: describeError(e) })
  }

  /** Called by a run when its machine has ended. */
  runEnded(run: OutgoingRun): void {
    if (this.running.get(run.migration_id) !== run) return // a queued run that was cancelled
    this.running.delete(run.migration_id)
    // its copy of the pages it sent; with no run left, the diff pool's spare batch buffers too (up to 16 of 4 MiB)
    if (this.running.size === 0) this.ctx.pool.releaseSpares()
    largeBuffersReleased()
    const next = this.waiting.shift()
    if (next) this.startRun(next.run)
  }

  private startRun(run: OutgoingRun): void {
    this.running.set(run.migration_id, run)
    run.start()
  }

  private findOutgoing(vmName: string): OutgoingRun | undefined {
    for (const run of this.running.values()) if (run.vm.name === vmName) return run
    return this.waiting.find((w) => w.run.vm.name === vmName)?.run
  }

  /**
   * The setup ends once the arriving VM's memory is committed (as Hyper-V allocates it
   * before the copy): the pre-copy then writes into memory that is there. Throws when the
   * commit failed (the migration is aborted here) or the migration ended meanwhile.
   */
  private async memoryCommitted(run: IncomingRun): Promise<void> {
    try {
      await run.committing
      if (run.memory) notePrefaulted(run.memory)
    } catch (e) {
      this.applyFailed(run, e)
      throw new HvlabError('HVLAB_E_REFUSED', `${this.host} could not commit the memory of vm ${run.vm}: ${describeError(e)}`)
    }
    if (this.incoming.get(run.migration_id) !== run)
      throw new HvlabError('HVLAB_E_STATE', `migration ${run.migration_id} ended on ${this.host} during its setup`)
  }

  private onBegin(conn: PeerConnection, m: MessageOf<'migration-begin'>): { run: IncomingRun; reply: Reply } {
    if (this.incoming.has(m.migration_id))
      throw new HvlabError('HVLAB_E_STATE', `migration ${m.migration_id} already began on ${this.host}`)
    for (const run of this.incoming.values()) {
      if (run.vm === m.vm)
        throw new HvlabError('HVLAB_E_STATE', `vm ${m.vm} is already arriving on ${this.host} (migration ${run.migration_id})`)
    }
    if (this.incoming.size >= this.incoming_max) {
      throw new HvlabError(
        'HVLAB_E_BACKPRESSURE',
        `${this.host} already receives ${this.incoming.size} migrations (the limit); try again when one finishes`,
      )
    }
    let arriving_bytes = 0
    for (const r of this.incoming.values()) arriving_bytes += r.page_count * PAGE_SIZE_BYTES
    const bytes = m.page_count * PAGE_SIZE_BYTES
    if (arriving_bytes + bytes > this.incoming_bytes_max) {
      throw new HvlabError(
        'HVLAB_E_REFUSED',
        `${this.host} cannot take vm ${m.vm}: its ${bytes / 1048576} MiB of memory would bring arriving VMs to ${(arriving_bytes + bytes) / 1048576} MiB, over the ${this.incoming_bytes_max / 1048576} MiB allowed; pick another host or wait`,
      )
    }
    const arrival: Arrival = {
      migration_id: m.migration_id,
      vm: m.vm,
      source: conn.remoteName,
      page_count: m.page_count,
      placement: m.placement ?? null,
    }
    this.options.admit?.(arrival)
    const run: IncomingRun = {
      arrival,
      machine: new MigrationDestination({ host: this.host, source: conn.remoteName }),
      conn,
      migration_id: m.migration_id,
      vm: m.vm,
      storage: m.storage,
      page_count: m.page_count,
      paced: m.paced === true,
      applied_bytes: 0,
      memory: null,
      applies: null,
      committing: null,
      device_state: null,
      resumed_at_ms: null,
      driver: this.incomingDriver(() => run),
      call: { attachment: undefined, attachment_owned: false, final: false, reply: null, refusal: null },
    }
    this.incoming.set(m.migration_id, run)
    const input: DestinationInput = {
      kind: 'begin',
      migration_id: m.migration_id,
      vm: m.vm,
      page_count: m.page_count,
      storage: m.storage,
      verify: m.verify,
    }
    return { run, reply: this.replied(run, input, this.runIncoming(run, input)) }
  }

  /** `owned`: the transport handed the batch's buffer over (it holds this frame alone): it is queued without a copy. */
  private onPages(conn: PeerConnection, m: MessageOf<'migration-pages'>, batch: Buffer, owned: boolean): void {
    const run = this.incoming.get(m.migration_id)
    if (!run || run.conn !== conn) return // after an abort, the source's last frames may still come
    if (batch.length < 12) {
      this.runOneWay(run, { kind: 'failed', reason: `batch ${m.round}/${m.seq} is ${batch.length} bytes, shorter than a batch header` })
      return
    }
    this.runOneWay(run, { kind: 'pages', round: m.round, seq: m.seq, entries: batchEntryCount(batch) }, batch, owned, m.final === true)
  }

  /** A one-way input: a refusal has nobody to go to; the machine already aborted. */
  private runOneWay(run: IncomingRun, input: DestinationInput, attachment?: Buffer, attachment_owned = false, final = false): void {
    try {
      this.runIncoming(run, input, attachment, attachment_owned, final)
    } catch (e) {
      this.ctx.log.warn({ err: describeError(e), migration_id: run.migration_id }, 'incoming migration aborted')
    }
  }

  private stepIncoming(conn: PeerConnection, migration_id: string, input: DestinationInput, attachment?: Buffer): Reply {
    const run = this.arriving(conn, migration_id)
    return this.replied(run, input, this.runIncoming(run, input, attachment))
  }

  private replied(run: IncomingRun, input: DestinationInput, reply: Reply | null): Reply {
    if (!reply) throw new HvlabError('HVLAB_E_INTERNAL', `migration ${run.migration_id}: ${input.kind} produced no reply`)
    return reply
  }

  /**
   * Steps an incoming migration and carries out its effects (all synchronous here).
   * Returns the reply for a request, throws its refusal.
   */
  private runIncoming(
    run: IncomingRun,
    input: DestinationInput,
    attachment?: Buffer,
    attachment_owned = false,
    final = false,
  ): Reply | null {
    run.call = { attachment, attachment_owned, final, reply: null, refusal: null }
    run.driver.feed(input)
    const { reply, refusal } = run.call
    if (run.machine.stage === 'aborted' || run.machine.stage === 'running') {
      if (this.incoming.delete(run.migration_id) && run.machine.stage === 'aborted') {
        this.options.onArrivalEnded?.(run.arrival)
        largeBuffersReleased() // the guest memory that was arriving
      }
    }
    if (refusal) throw refusal
    return reply
  }

  /**
   * The driver of one incoming machine: a reply or refusal is recorded for the caller; an
   * effect that fails (could not allocate, apply or load) skips the rest of its step, and
   * the machine is stepped with `failed`: the migration cannot go on here.
   */
  private incomingDriver(run: () => IncomingRun): MachineDriver<DestinationInput, DestinationEffect> {
    const driver = new MachineDriver<DestinationInput, DestinationEffect>({
      step: (input) => {
        try {
          return run().machine.step(input, this.ctx.clock.now())
        } catch (e) {
          throw new IncomingStepFailed(e)
        }
      },
      handlers: this.incomingHandlers(run),
      onFailed: (e) => {
        if (e instanceof IncomingStepFailed) throw e.error
        const call = run().call
        call.refusal = new HvlabError('HVLAB_E_REFUSED', `${this.host} could not take vm ${run().vm}: ${describeError(e)}`)
        call.reply = null
        driver.feed({ kind: 'failed', reason: describeError(e) })
      },
    })
    return driver
  }

  private incomingHandlers(get: () => IncomingRun): EffectHandlers<DestinationEffect> {
    return {
      'allocate-memory': (e) => this.allocate(get(), e.page_count),
      'apply-batch': () => {
        const { applies, call } = get()
        if (!applies || !call.attachment) throw new HvlabError('HVLAB_E_INTERNAL', 'a batch arrived before memory was allocated')
        applies.push(call.attachment, call.attachment_owned, call.final)
      },
      'load-device-state': () => {
        const run = get()
        if (!run.call.attachment) throw new HvlabError('HVLAB_E_INTERNAL', 'the blackout carried no device state')
        run.device_state = checkDeviceState(run.vm, Uint8Array.from(run.call.attachment))
      },
      'resume-guest': () => {
        const run = get()
        if (!run.memory || !run.device_state)
          throw new HvlabError('HVLAB_E_INTERNAL', `vm ${run.vm} cannot resume: memory or device state is missing`)
        const vm = new LabVm({ name: run.vm, memory: run.memory, storage: run.storage, device_state: run.device_state })
        this.options.onArrived?.(vm, run.arrival) // adopts it, and announces its new location to the virtual switch first
        run.resumed_at_ms = wallNow()
      },
      'announce-location': (e) => this.options.onAnnounce?.(get().vm, e.host),
      'discard-vm': () => {
        const run = get()
        run.applies?.stop()
        run.applies = null
        run.memory = null
        run.device_state = null
      },
      reply: (e) => void (get().call.reply = this.replyFor(get(), e.reply)),
      refuse: (e) => void (get().call.refusal = new HvlabError(e.code, e.reason)),
      emit: (e) => this.ctx.emit(e.event),
    }
  }

  /** The arriving VM's memory, and the queue that applies its batches in the pool's workers. */
  private allocate(run: IncomingRun, page_count: number): void {
    const memory = GuestMemory.create(page_count)
    run.memory = memory
    warmPageKernel().catch(() => undefined) // this thread applies the blackout's round (PageApplyQueue); a kernel that cannot load fails it
    run.committing = this.apply_pool.commit(memory.buffers)
    run.committing.catch(() => undefined) // awaited by the begin request's handler
    run.applies = new PageApplyQueue({
      apply: (batches) => this.apply_pool.apply(memory.buffers, batches, true),
      applyHere: (batch) => void applyBatch(memory, batch),
      bytes_max: this.apply_queue_bytes_max,
      onFailed: (e) => this.applyFailed(run, e),
      onApplied: (bytes) => this.reportApplied(run, bytes),
    })
  }

  /**
   * Batches of a paced migration were applied: the source hears how far (its send window
   * moves on). The window granted is half the bytes this host lets wait to be applied, so a
   * source that keeps to it never meets that bound (which counts a frame's header and tag
   * too). A smaller window cost the stream: the source waits, its diff workers stop two slices
   * ahead, and both ends idle in turn (round 0 of 128 MiB, two runs each: 316–340 MiB/s at
   * 16 MiB, 337–372 at 32, 362–439 at 64, 399–404 with no window in the same set; the pre-copy
   * rounds after round 0 never fill a window).
   */
  private reportApplied(run: IncomingRun, bytes: number): void {
    run.applied_bytes += bytes
    if (!run.paced || !run.conn.isOpen) return
    run.conn.send({ t: 'migration-applied', migration_id: run.migration_id, bytes: run.applied_bytes }).catch(() => undefined)
  }

  private get window_bytes(): number {
    return Math.max(PAGE_SIZE_BYTES, Math.floor(this.apply_queue_bytes_max / 2))
  }

  private replyFor(run: IncomingRun, r: Extract<DestinationEffect, { kind: 'reply' }>['reply']): Reply {
    const migration_id = run.migration_id
    switch (r.t) {
      case 'migration-ready':
        return { message: { t: 'migration-ready', migration_id, ...(run.paced ? { window_bytes: this.window_bytes } : {}) } }
      case 'migration-round-ack':
        return { message: { t: 'migration-round-ack', migration_id, round: r.round, batches: r.batches, pages: r.pages } }
      case 'migration-prepared':
        return { message: { t: 'migration-prepared', migration_id, memory_sha256: null } } // --verify: hashed by the blackout's request handler
      case 'migration-running':
        return {
          message: {
            t: 'migration-running',
            migration_id,
            host: r.host,
            ...(run.resumed_at_ms !== null ? { resumed_at_ms: run.resumed_at_ms } : {}),
          },
        }
    }
  }
}
