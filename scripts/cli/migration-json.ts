/**
 * What `vm migrate --json` and `vm move --quick --json` print: the source's result with
 * its numbers rounded for people — times in ms to one decimal, rates in bytes/s to whole
 * bytes — and one snake_case field per value (the result message's own names).
 */
import type { MigrationResultMessage } from '../../shared/protocol/cluster-messages.js'

const ms = (v: number): number => Math.round(v * 10) / 10
const msOrNull = (v: number | null): number | null => (v === null ? null : ms(v))

export function migrationJson(r: MigrationResultMessage): MigrationResultMessage {
  return {
    ...r,
    total_ms: ms(r.total_ms),
    setup_ms: msOrNull(r.setup_ms ?? null),
    blackout_ms: msOrNull(r.blackout_ms),
    guest_paused_ms: msOrNull(r.guest_paused_ms ?? null),
    downtime_ms: msOrNull(r.downtime_ms),
    expected_blackout_ms: msOrNull(r.expected_blackout_ms),
    rounds: r.rounds.map((x) => ({ ...x, duration_ms: ms(x.duration_ms) })),
    bandwidth_bytes_per_s: Math.round(r.bandwidth_bytes_per_s),
    dirty_rate_bytes_per_s: Math.round(r.dirty_rate_bytes_per_s),
  }
}
