/**
 * The source side of one live migration, as a pure state machine:
 * `step(input, now_ms) → effects`. The shell (migration-service.ts) carries the effects
 * out in order and feeds what happened back as inputs; no I/O, timers or clocks here.
 *
 * Stages:
 *   setup     → send-begin; the destination creates the skeleton VM and its memory.
 *   precopy   → round 0 copies all memory, then rounds of the pages dirtied meanwhile.
 *               After each round decideConvergence() says: switch over, next round, or
 *               throttle the guest harder (auto-converge) and go again.
 *   blackout  → pause the guest, copy the last dirty pages and the device state.
 *   storage   → hand the VM's storage over (owned disk; CLX switchover); the hook may
 *               refuse. A CSV needs nothing (every node sees the volume): unless memory is
 *               verified, the blackout's last request then resumes the VM too, one round
 *               trip fewer with the guest paused (`copy-final` with `then: 'resume'`).
 *   resuming  → the destination resumes the VM and announces its new location.
 *   completed → only now is the source VM released (clean-up).
 *
 * "Always have a way back": any failure or cancel before the destination runs ends in
 * `failed`/`cancelled` with the VM running on the source (guest resumed, throttle
 * lifted, storage handed back, destination told to discard). The one window that cannot
 * be decided here is a link lost while the resume is in flight (`migration-resume`, or
 * `migration-blackout` asking to resume): the destination may or may not run the VM. The machine then ends `in_doubt` with the source guest still
 * paused and its storage not handed back — never two running copies; the cluster (or
 * the operator) must settle it by asking the destination.
 */
import { HvlabError } from '../../shared/errors.js'
import type { EmitEffect } from '../../shared/machine/effect.js'
import type { StorageMode } from '../../shared/protocol/migration-messages.js'
import { PAGE_SIZE_BYTES } from '../../shared/protocol/page-size.js'
import {
  DEFAULT_THROTTLE_POLICY,
  DOWNTIME_BUDGET_MS_DEFAULT,
  ROUND_CAP_DEFAULT,
  decideConvergence,
  type ThrottlePolicy,
} from './convergence.js'
import { migrationEvent, type MigrationDetailsOf, type MigrationEvent, type MigrationEventKind } from './migration-events.js'

export const SOURCE_STAGES = [
  'setup',
  'precopy',
  'blackout',
  'storage',
  'resuming',
  'completed',
  'failed',
  'cancelled',
  'in_doubt',
] as const
export type SourceStage = (typeof SOURCE_STAGES)[number]
export type SourceOutcome = 'completed' | 'failed' | 'cancelled' | 'in_doubt'

/** Rounds at most, whatever the caller asks (Hyper-V 2008 R2 stops after 10). */
export const ROUND_CAP_MAX = 1000

export interface MigrationSourceConfig {
  readonly migration_id: string
  readonly vm: string
  readonly destination: string
  readonly page_count: number
  readonly storage: StorageMode
  readonly downtime_budget_ms?: number
  readonly round_cap?: number
  readonly throttle_policy?: ThrottlePolicy
  /** The memory is hashed on both sides while paused (`--verify`): the destination must answer the blackout before it resumes. */
  readonly verify?: boolean
}

export type SourceInput =
  | { readonly kind: 'start' }
  /** The destination answered migration-begin: skeleton VM and memory exist. */
  | { readonly kind: 'destination-ready' }
  /** A pre-copy round was sent and the destination acknowledged it. */
  | {
      readonly kind: 'round-sent'
      readonly round: number
      /** Dirty pages the round looked at. */
      readonly pages: number
      readonly bytes_sent: number
      /** Pages dirtied while the round ran (what the next round must send). */
      readonly dirty_pages_now: number
    }
  /**
   * The paused guest's last pages are on the destination, in `batches` batches; with
   * `then: 'prepare'`, its device state too, and the destination answered that it is prepared.
   */
  | {
      readonly kind: 'final-sent'
      readonly round: number
      readonly pages: number
      readonly bytes_sent: number
      readonly batches: number
    }
  | { readonly kind: 'storage-handed-over' }
  | { readonly kind: 'storage-refused'; readonly reason: string }
  /** `guest_paused_ms`: pause here → resume there, from both hosts' wall clocks (null when unknown). */
  | { readonly kind: 'destination-running'; readonly host: string; readonly guest_paused_ms?: number | null }
  /** Anything the shell saw go wrong: link cut, destination refused or gone, a diff failed. */
  | { readonly kind: 'failed'; readonly reason: string }
  | { readonly kind: 'cancel'; readonly reason: string }

export type SourceEffect =
  | { readonly kind: 'send-begin' }
  /** Take the dirty set ('all': reset tracking and send every page), diff, send, await the ack. */
  | { readonly kind: 'copy-round'; readonly round: number; readonly pages: 'all' | 'dirty' }
  | { readonly kind: 'throttle-guest'; readonly pct: number }
  | { readonly kind: 'pause-guest' }
  /**
   * With the guest paused: take the dirty set, diff, send; then ('prepare') the device state,
   * awaiting the destination's answer, or ('resume') nothing more: resume-destination carries it.
   */
  | { readonly kind: 'copy-final'; readonly round: number; readonly then: 'prepare' | 'resume' }
  | { readonly kind: 'hand-over-storage'; readonly mode: StorageMode }
  | { readonly kind: 'hand-back-storage'; readonly mode: StorageMode }
  /** Ask the destination to resume the VM; `blackout`: with the device state, ending the final round of `batches` batches. */
  | { readonly kind: 'resume-destination'; readonly blackout?: { readonly round: number; readonly batches: number } }
  /** The way back: the guest runs on the source again. */
  | { readonly kind: 'resume-guest' }
  | { readonly kind: 'abort-destination'; readonly reason: string }
  /** Clean-up: the destination runs the VM; free it here. */
  | { readonly kind: 'release-vm' }
  | EmitEffect<MigrationEvent>

export interface SourceRound {
  readonly round: number
  /** Dirty pages the round sent (round 0: every page). */
  readonly pages: number
  readonly bytes_sent: number
  readonly duration_ms: number
  readonly throttle_pct: number
  /** Pages left dirty when it ended. */
  readonly dirty_after: number
}

export interface SourceReport {
  readonly stage: SourceStage
  readonly reason: string
  readonly rounds: readonly SourceRound[]
  readonly final_pages: number
  readonly final_bytes: number
  readonly bandwidth_bytes_per_s: number
  readonly dirty_rate_bytes_per_s: number
  readonly throttle_pct_max: number
  readonly switch_reason: 'fits_budget' | 'round_cap' | null
  readonly expected_blackout_ms: number | null
  readonly started_ms: number | null
  /** The destination was ready (its skeleton VM made, its memory committed): the setup's end. */
  readonly ready_ms: number | null
  readonly paused_ms: number | null
  readonly running_ms: number | null
  readonly ended_ms: number | null
}

const TERMINAL: ReadonlySet<SourceStage> = new Set(['completed', 'failed', 'cancelled', 'in_doubt'])

export class MigrationSource {
  readonly config: Required<MigrationSourceConfig>
  private stage_: SourceStage = 'setup'
  private started = false
  private reason = ''
  private round = 0
  private round_started_ms = 0
  private throttle_pct = 0
  private throttle_pct_max = 0
  private bandwidth_bytes_per_s = 0
  /** Guest memory copied per second (pages × page size), the fastest round's: what the expected blackout uses. */
  private copy_rate_bytes_per_s = 0
  private dirty_rate_bytes_per_s = 0
  private readonly rounds: SourceRound[] = []
  private final_pages = 0
  private final_bytes = 0
  private switch_reason: 'fits_budget' | 'round_cap' | null = null
  private expected_blackout_ms: number | null = null
  private started_ms: number | null = null
  private ready_ms: number | null = null
  private paused_ms: number | null = null
  private running_ms: number | null = null
  private ended_ms: number | null = null
  private storage_handed_over = false
  /** A cancel or failure that arrived while the storage hook was running. */
  private pending_end: { outcome: 'failed' | 'cancelled'; reason: string } | null = null

  constructor(config: MigrationSourceConfig) {
    this.config = {
      downtime_budget_ms: DOWNTIME_BUDGET_MS_DEFAULT,
      round_cap: ROUND_CAP_DEFAULT,
      throttle_policy: DEFAULT_THROTTLE_POLICY,
      verify: false,
      ...config,
    }
    const c = this.config
    if (!Number.isInteger(c.round_cap) || c.round_cap < 1 || c.round_cap > ROUND_CAP_MAX) {
      throw new HvlabError('HVLAB_E_USAGE', `cannot migrate vm ${c.vm}: the round cap must be 1–${ROUND_CAP_MAX}, got ${c.round_cap}`)
    }
    if (!Number.isFinite(c.downtime_budget_ms) || c.downtime_budget_ms <= 0 || c.downtime_budget_ms > 60_000) {
      throw new HvlabError(
        'HVLAB_E_USAGE',
        `cannot migrate vm ${c.vm}: the downtime budget must be above 0 and at most 60000 ms, got ${c.downtime_budget_ms}`,
      )
    }
    if (!Number.isInteger(c.page_count) || c.page_count < 1) {
      throw new HvlabError('HVLAB_E_USAGE', `cannot migrate vm ${c.vm}: it has ${c.page_count} pages of memory`)
    }
  }

  get stage(): SourceStage {
    return this.stage_
  }

  /** A CSV needs no hand-over: unless memory is verified while paused, the blackout's request resumes the VM too. */
  get resumesWithBlackout(): boolean {
    return this.config.storage === 'csv' && !this.config.verify
  }

  get done(): boolean {
    return TERMINAL.has(this.stage_)
  }

  /** Where the migration ended; null while it runs. */
  get outcome(): SourceOutcome | null {
    return this.done ? (this.stage_ as SourceOutcome) : null
  }

  report(): SourceReport {
    return {
      stage: this.stage_,
      reason: this.reason,
      rounds: [...this.rounds],
      final_pages: this.final_pages,
      final_bytes: this.final_bytes,
      bandwidth_bytes_per_s: this.bandwidth_bytes_per_s,
      dirty_rate_bytes_per_s: this.dirty_rate_bytes_per_s,
      throttle_pct_max: this.throttle_pct_max,
      switch_reason: this.switch_reason,
      expected_blackout_ms: this.expected_blackout_ms,
      started_ms: this.started_ms,
      ready_ms: this.ready_ms,
      paused_ms: this.paused_ms,
      running_ms: this.running_ms,
      ended_ms: this.ended_ms,
    }
  }

  step(input: SourceInput, now_ms: number): SourceEffect[] {
    if (!Number.isFinite(now_ms)) throw new HvlabError('HVLAB_E_INTERNAL', `migration source: now_ms ${now_ms} is not a time`)
    if (this.done) return [] // late answers to effects of a migration that already ended
    switch (input.kind) {
      case 'start':
        return this.onStart(now_ms)
      case 'destination-ready':
        return this.onDestinationReady(now_ms)
      case 'round-sent':
        return this.onRoundSent(input, now_ms)
      case 'final-sent':
        return this.onFinalSent(input, now_ms)
      case 'storage-handed-over':
        return this.onStorageHandedOver(now_ms)
      case 'storage-refused':
        return this.onStorageRefused(input.reason, now_ms)
      case 'destination-running':
        return this.onDestinationRunning(input.host, input.guest_paused_ms ?? null, now_ms)
      case 'failed':
        return this.endEarly('failed', input.reason, now_ms)
      case 'cancel':
        return this.onCancel(input.reason, now_ms)
    }
  }

  private expect(stage: SourceStage, input: string): void {
    if (this.stage_ !== stage) {
      throw new HvlabError(
        'HVLAB_E_INTERNAL',
        `migration ${this.config.migration_id}: ${input} arrived in stage ${this.stage_}, expected ${stage}`,
      )
    }
  }

  private emit<K extends MigrationEventKind>(kind: K, details: MigrationDetailsOf<K>): SourceEffect {
    const c = this.config
    return { kind: 'emit', event: migrationEvent(kind, { migration_id: c.migration_id, vm: c.vm, destination: c.destination }, details) }
  }

  private onStart(now_ms: number): SourceEffect[] {
    if (this.started) throw new HvlabError('HVLAB_E_INTERNAL', `migration ${this.config.migration_id} was started twice`)
    this.started = true
    this.started_ms = now_ms
    return [this.emit('migration.setup', { pages: this.config.page_count, storage: this.config.storage }), { kind: 'send-begin' }]
  }

  private onDestinationReady(now_ms: number): SourceEffect[] {
    this.expect('setup', 'destination-ready')
    this.stage_ = 'precopy'
    this.ready_ms = now_ms
    this.round = 0
    this.round_started_ms = now_ms
    return [
      this.emit('migration.precopy', {
        round: 0,
        pages_left: this.config.page_count,
        rate_bytes_per_s: null,
        expected_blackout_ms: null,
        throttle_pct: 0,
      }),
      { kind: 'copy-round', round: 0, pages: 'all' },
    ]
  }

  private onRoundSent(input: Extract<SourceInput, { kind: 'round-sent' }>, now_ms: number): SourceEffect[] {
    this.expect('precopy', 'round-sent')
    if (input.round !== this.round) {
      throw new HvlabError(
        'HVLAB_E_INTERNAL',
        `migration ${this.config.migration_id}: round ${input.round} reported, round ${this.round} is running`,
      )
    }
    const duration_ms = Math.max(1, now_ms - this.round_started_ms)
    this.rounds.push({
      round: input.round,
      pages: input.pages,
      bytes_sent: input.bytes_sent,
      duration_ms,
      throttle_pct: this.throttle_pct,
      dirty_after: input.dirty_pages_now,
    })
    // The link carries at least what the fastest round showed; a small round is mostly latency.
    this.bandwidth_bytes_per_s = Math.max(this.bandwidth_bytes_per_s, (input.bytes_sent / duration_ms) * 1000)
    // What the blackout depends on is how fast dirty pages go across (zero pages and deltas are
    // far smaller on the wire than a page), so the decision measures memory copied per second,
    // in the rounds after round 0: round 0 looks at all of memory, where a page never written
    // costs nothing (skipped), and its pages go whole, straight from guest memory (page-diff.ts),
    // so its pages per second say nothing about the blackout's. Measured on the project's 2-core
    // machine: 256 MiB, 50 MiB/s dirtied, switched over after round 0 on its rate, blackouts of
    // 100–240 ms against a budget of 100. A later round is what the blackout's copy is like.
    if (input.round > 0)
      this.copy_rate_bytes_per_s = Math.max(this.copy_rate_bytes_per_s, ((input.pages * PAGE_SIZE_BYTES) / duration_ms) * 1000)
    this.dirty_rate_bytes_per_s = ((input.dirty_pages_now * PAGE_SIZE_BYTES) / duration_ms) * 1000
    const decision = decideConvergence(
      {
        round: this.rounds.length,
        remaining_dirty_pages: input.dirty_pages_now,
        bandwidth_bytes_per_s: this.copy_rate_bytes_per_s,
        dirty_rate_bytes_per_s: this.dirty_rate_bytes_per_s,
        downtime_budget_ms: this.config.downtime_budget_ms,
        round_cap: this.config.round_cap,
        throttle_pct: this.throttle_pct,
      },
      this.config.throttle_policy,
    )
    this.expected_blackout_ms = Number.isFinite(decision.expected_blackout_ms) ? decision.expected_blackout_ms : null
    if (decision.action === 'switch_over') {
      this.switch_reason = decision.reason
      return this.pause(now_ms, input.dirty_pages_now)
    }
    const effects: SourceEffect[] = []
    if (decision.action === 'throttle') {
      this.throttle_pct = decision.throttle_pct
      this.throttle_pct_max = Math.max(this.throttle_pct_max, decision.throttle_pct)
      effects.push(this.emit('migration.throttled', { round: this.round, throttle_pct: decision.throttle_pct }), {
        kind: 'throttle-guest',
        pct: decision.throttle_pct,
      })
    }
    this.round++
    this.round_started_ms = now_ms
    effects.push(
      this.emit('migration.precopy', {
        round: this.round,
        pages_left: input.dirty_pages_now,
        rate_bytes_per_s: Math.round(this.bandwidth_bytes_per_s),
        dirty_rate_bytes_per_s: Math.round(this.dirty_rate_bytes_per_s),
        expected_blackout_ms: this.expected_blackout_ms,
        throttle_pct: this.throttle_pct,
      }),
      { kind: 'copy-round', round: this.round, pages: 'dirty' },
    )
    return effects
  }

  private pause(now_ms: number, pages_left: number): SourceEffect[] {
    this.stage_ = 'blackout'
    this.paused_ms = now_ms
    this.round++
    return [
      this.emit('migration.blackout', {
        round: this.round,
        pages_left,
        reason: this.switch_reason,
        rate_bytes_per_s: Math.round(this.bandwidth_bytes_per_s),
        expected_blackout_ms: this.expected_blackout_ms,
      }),
      { kind: 'pause-guest' },
      { kind: 'copy-final', round: this.round, then: this.resumesWithBlackout ? 'resume' : 'prepare' },
    ]
  }

  private onFinalSent(input: Extract<SourceInput, { kind: 'final-sent' }>, _now_ms: number): SourceEffect[] {
    this.expect('blackout', 'final-sent')
    if (input.round !== this.round) {
      throw new HvlabError(
        'HVLAB_E_INTERNAL',
        `migration ${this.config.migration_id}: final round ${input.round} reported, expected ${this.round}`,
      )
    }
    this.final_pages = input.pages
    this.final_bytes = input.bytes_sent
    const storage = this.emit('migration.storage', { mode: this.config.storage, final_pages: input.pages })
    if (this.resumesWithBlackout) {
      this.stage_ = 'resuming'
      return [storage, { kind: 'resume-destination', blackout: { round: input.round, batches: input.batches } }]
    }
    this.stage_ = 'storage'
    return [storage, { kind: 'hand-over-storage', mode: this.config.storage }]
  }

  private onStorageHandedOver(now_ms: number): SourceEffect[] {
    this.expect('storage', 'storage-handed-over')
    this.storage_handed_over = true
    if (this.pending_end) return this.endEarly(this.pending_end.outcome, this.pending_end.reason, now_ms, true)
    this.stage_ = 'resuming'
    return [{ kind: 'resume-destination' }]
  }

  private onStorageRefused(reason: string, now_ms: number): SourceEffect[] {
    this.expect('storage', 'storage-refused')
    const pending = this.pending_end
    if (pending) return this.endEarly(pending.outcome, `${pending.reason} (and storage refused: ${reason})`, now_ms, true)
    return this.endEarly('failed', `storage hand-over refused: ${reason}`, now_ms, true)
  }

  private onDestinationRunning(host: string, guest_paused_ms: number | null, now_ms: number): SourceEffect[] {
    this.expect('resuming', 'destination-running')
    this.running_ms = now_ms
    this.ended_ms = now_ms
    this.stage_ = 'completed'
    const blackout_ms = this.paused_ms === null ? null : now_ms - this.paused_ms
    const total_ms = this.started_ms === null ? null : now_ms - this.started_ms
    return [
      this.emit('migration.resumed', { host, blackout_ms, guest_paused_ms }),
      { kind: 'release-vm' },
      this.emit('migration.completed', {
        host,
        rounds: this.rounds.length,
        blackout_ms,
        guest_paused_ms,
        total_ms,
        switch_reason: this.switch_reason,
        throttle_pct_max: this.throttle_pct_max,
      }),
    ]
  }

  private onCancel(reason: string, now_ms: number): SourceEffect[] {
    if (this.stage_ === 'resuming') {
      return [this.emit('migration.cancel-refused', { reason: 'the destination is resuming the VM; too late to cancel' })]
    }
    return this.endEarly('cancelled', reason, now_ms)
  }

  /**
   * The way back, from any stage before the destination runs. While the storage hook
   * runs, the end waits for its answer (so storage that moved can be moved back).
   */
  private endEarly(outcome: 'failed' | 'cancelled', reason: string, now_ms: number, storage_answered = false): SourceEffect[] {
    if (this.stage_ === 'storage' && !storage_answered) {
      // Wait for the hook's answer; the first reason to end is the one reported.
      this.pending_end ??= { outcome, reason }
      return []
    }
    if (this.stage_ === 'resuming') {
      this.stage_ = 'in_doubt'
      this.reason = reason
      this.ended_ms = now_ms
      return [
        this.emit('migration.in-doubt', {
          reason,
          detail:
            'the link was lost while the destination was resuming the VM; the source copy stays paused until the cluster learns whether the destination runs it',
        }),
      ]
    }
    const wasPaused = this.stage_ === 'blackout' || this.stage_ === 'storage'
    const effects: SourceEffect[] = [{ kind: 'abort-destination', reason }]
    if (this.storage_handed_over) effects.push({ kind: 'hand-back-storage', mode: this.config.storage })
    if (this.throttle_pct > 0) effects.push({ kind: 'throttle-guest', pct: 0 })
    if (wasPaused) effects.push({ kind: 'resume-guest' })
    this.stage_ = outcome
    this.reason = reason
    this.ended_ms = now_ms
    const paused_for_ms = wasPaused && this.paused_ms !== null ? now_ms - this.paused_ms : null
    effects.push(
      this.emit(outcome === 'failed' ? 'migration.failed' : 'migration.cancelled', {
        reason,
        rounds: this.rounds.length,
        paused_for_ms,
        vm_on: 'source',
      }),
    )
    return effects
  }
}
