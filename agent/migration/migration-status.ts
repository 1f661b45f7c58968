/**
 * What `vm migrate` reads back on a host: the status of each VM's latest migration from
 * this host (stage, round, pages left, rate, then the result), kept for a bounded number
 * of VMs, updated from the migration service's events, and the result messages built
 * from a MigrationResult or a storage check's refusal.
 */
import type { MigrationResultMessage } from '../../shared/protocol/cluster-messages.js'
import type { Message } from '../../shared/protocol/messages.js'
import type { MigrationEvent } from './migration-events.js'
import { expectedBlackoutMs } from './convergence.js'
import type { MigrationResult, RoundProgress } from './migration-service.js'

/** Results kept for `vm migrate` to read (one per VM, the latest; bounded). */
const STATUS_KEPT_MAX = 256

export interface MigrationStatus {
  ticket: string
  to: string
  mode: 'live' | 'quick'
  state: 'running' | 'done'
  migration_id: string | null
  stage: string
  round: number
  pages_left: number
  bandwidth_bytes_per_s: number
  /** Guest memory copied per second in the round being sent (0 before the first slice). */
  copy_rate_bytes_per_s: number
  expected_blackout_ms: number | null
  result: MigrationResultMessage | null
}

/** The statuses of this host's migrations: the latest per VM, and the running ones by migration id. */
export class MigrationStatusBook {
  private readonly statuses = new Map<string, MigrationStatus>()
  private readonly byId = new Map<string, MigrationStatus>()

  /** `st` is now the latest migration of `vm` (the oldest VM's is forgotten beyond the bound). */
  remember(vm: string, st: MigrationStatus): void {
    this.statuses.delete(vm)
    this.statuses.set(vm, st)
    while (this.statuses.size > STATUS_KEPT_MAX) this.statuses.delete(this.statuses.keys().next().value as string)
  }

  /** `st` follows the events of migration `migration_id` until it ends. */
  follow(migration_id: string, st: MigrationStatus): void {
    st.migration_id = migration_id
    this.byId.set(migration_id, st)
  }

  unfollow(migration_id: string): void {
    this.byId.delete(migration_id)
  }

  /** A migration event: the stage it reached and the figures it carries. */
  onEvent(e: MigrationEvent): void {
    const id = e.details.migration_id
    const st = typeof id === 'string' ? this.byId.get(id) : undefined
    if (st === undefined || st.state === 'done') return
    st.stage = e.kind.replace(/^migration\./, '')
    const num = (k: string): number | null => (typeof e.details[k] === 'number' ? (e.details[k] as number) : null)
    st.round = num('round') ?? st.round
    st.pages_left = num('pages_left') ?? st.pages_left
    st.bandwidth_bytes_per_s = num('rate_bytes_per_s') ?? st.bandwidth_bytes_per_s
    st.expected_blackout_ms = num('expected_blackout_ms') ?? st.expected_blackout_ms
  }

  /**
   * Progress within a round: the pages left are those of the round not sent yet, and the
   * expected blackout is what they would take at the rate measured so far.
   */
  onRoundProgress(p: RoundProgress): void {
    const st = this.byId.get(p.migration_id)
    if (st === undefined || st.state === 'done' || p.round !== st.round) return
    st.pages_left = Math.max(0, p.pages_total - p.pages_done)
    st.copy_rate_bytes_per_s = p.copy_rate_bytes_per_s
    if (p.copy_rate_bytes_per_s > 0) st.expected_blackout_ms = expectedBlackoutMs(st.pages_left, p.copy_rate_bytes_per_s)
  }

  /** The answer to `vm-migration-status-request` for `vm` on `host`. */
  reply(vm: string, host: string): Message {
    const st = this.statuses.get(vm)
    return {
      t: 'vm-migration-status-reply',
      vm,
      host,
      state: st === undefined ? 'none' : st.state === 'done' ? 'done' : st.stage === 'queued' ? 'queued' : 'running',
      ticket: st?.ticket ?? null,
      to: st?.to ?? null,
      stage: st?.stage ?? '',
      round: st?.round ?? 0,
      pages_left: st?.pages_left ?? 0,
      bandwidth_bytes_per_s: st?.bandwidth_bytes_per_s ?? 0,
      copy_rate_bytes_per_s: st?.copy_rate_bytes_per_s ?? 0,
      expected_blackout_ms: st?.expected_blackout_ms ?? null,
      result: st?.result ?? null,
    }
  }
}

/** The result of a migration the storage check cancelled before it began (nothing was sent). */
export function refusedResult(
  vm: string,
  mode: 'live' | 'quick',
  source: string,
  destination: string,
  memory_bytes: number,
  reason: string,
): MigrationResultMessage {
  return {
    migration_id: 'storage-check',
    vm,
    mode,
    source,
    destination,
    outcome: 'failed',
    reason: reason.slice(0, 1024),
    total_ms: 0,
    blackout_ms: null,
    downtime_ms: null,
    expected_blackout_ms: null,
    switch_reason: null,
    memory_bytes,
    bytes_sent: 0,
    bytes_raw: 0,
    rounds: [],
    final_pages: 0,
    pages: { scanned: 0, skipped: 0, zero: 0, delta: 0, full: 0 },
    bandwidth_bytes_per_s: 0,
    dirty_rate_bytes_per_s: 0,
    throttle_pct_max: 0,
    source_sha256: null,
    destination_sha256: null,
  }
}

export function resultMessage(r: MigrationResult, mode: 'live' | 'quick', downtime_ms: number | null): MigrationResultMessage {
  return {
    migration_id: r.migration_id,
    vm: r.vm,
    mode,
    source: r.source,
    destination: r.destination,
    outcome: r.outcome,
    reason: r.reason.slice(0, 1024),
    total_ms: Math.max(0, r.total_ms),
    setup_ms: r.setup_ms === null ? null : Math.max(0, r.setup_ms),
    blackout_ms: r.blackout_ms === null ? null : Math.max(0, r.blackout_ms),
    paused_at_ms: r.paused_at_ms,
    guest_paused_ms: r.guest_paused_ms === null ? null : Math.max(0, r.guest_paused_ms),
    downtime_ms,
    expected_blackout_ms: r.expected_blackout_ms === null ? null : Math.max(0, r.expected_blackout_ms),
    switch_reason: r.switch_reason,
    memory_bytes: r.memory_bytes,
    bytes_sent: r.bytes_sent,
    bytes_raw: r.bytes_raw,
    rounds: r.rounds.slice(0, 1001).map((x) => ({
      round: x.round,
      dirty_pages: x.dirty_pages,
      bytes_sent: x.bytes_sent,
      duration_ms: Math.max(0, x.duration_ms),
      throttle_pct: x.throttle_pct,
    })),
    final_pages: r.final_pages,
    pages: { ...r.pages },
    bandwidth_bytes_per_s: Math.max(0, r.bandwidth_bytes_per_s),
    dirty_rate_bytes_per_s: Math.max(0, r.dirty_rate_bytes_per_s),
    throttle_pct_max: r.throttle_pct_max,
    source_sha256: r.source_sha256,
    destination_sha256: r.destination_sha256,
  }
}

/** The status of a migration that has just begun, at `stage`, with every page still to send. */
export function runningStatus(
  options: Pick<MigrationStatus, 'ticket' | 'mode'>,
  to: string,
  page_count: number,
  stage: MigrationStatus['stage'],
): MigrationStatus {
  return {
    ticket: options.ticket,
    to,
    mode: options.mode,
    state: 'running',
    migration_id: null,
    stage,
    round: 0,
    pages_left: page_count,
    bandwidth_bytes_per_s: 0,
    copy_rate_bytes_per_s: 0,
    expected_blackout_ms: null,
    result: null,
  }
}
