/**
 * Live migration on the timeline: one event per stage of the source's and the
 * destination's state machines (agent/migration/migration-source.ts,
 * migration-destination.ts) and per pre-copy round; each names its migration and VM, and
 * the peer: the source's events the `destination`, the destination's the `source`.
 */
import { defineEvents, detail } from './details.js'

const id = { migration_id: detail.name(), vm: detail.name() }
const atSource = { ...id, destination: detail.name() }
const atDestination = { ...id, source: detail.name() }
const maybeNumber = () => detail.number().nullable()

export const migrationEvents = defineEvents({
  'migration.setup': { ...atSource, pages: detail.uint(), storage: detail.word() },
  'migration.precopy': {
    ...atSource,
    round: detail.uint(),
    pages_left: detail.uint(),
    rate_bytes_per_s: maybeNumber(),
    dirty_rate_bytes_per_s: detail.number().optional(),
    expected_blackout_ms: maybeNumber(),
    throttle_pct: detail.number(),
  },
  'migration.throttled': { ...atSource, round: detail.uint(), throttle_pct: detail.number() },
  'migration.blackout': {
    ...atSource,
    round: detail.uint(),
    pages_left: detail.uint(),
    reason: detail.word().nullable(),
    rate_bytes_per_s: maybeNumber(),
    expected_blackout_ms: maybeNumber(),
  },
  'migration.storage': { ...atSource, mode: detail.word(), final_pages: detail.uint() },
  /** Both sides say so: the source with the blackout it measured, the destination without. */
  'migration.resumed': {
    ...id,
    destination: detail.name().optional(),
    source: detail.name().optional(),
    host: detail.name(),
    blackout_ms: maybeNumber().optional(),
    /** The source's: pause there → resume on the destination, wall clocks of both hosts. */
    guest_paused_ms: maybeNumber().optional(),
  },
  'migration.completed': {
    ...atSource,
    host: detail.name(),
    rounds: detail.uint(),
    blackout_ms: maybeNumber(),
    guest_paused_ms: maybeNumber().optional(),
    total_ms: maybeNumber(),
    switch_reason: detail.word().nullable(),
    throttle_pct_max: detail.number(),
  },
  'migration.failed': { ...atSource, reason: detail.text(), rounds: detail.uint(), paused_for_ms: maybeNumber(), vm_on: detail.word() },
  'migration.cancelled': { ...atSource, reason: detail.text(), rounds: detail.uint(), paused_for_ms: maybeNumber(), vm_on: detail.word() },
  'migration.cancel-refused': { ...atSource, reason: detail.text() },
  'migration.in-doubt': { ...atSource, reason: detail.text(), detail: detail.text() },
  'migration.incoming': { ...atDestination, pages: detail.uint(), storage: detail.word() },
  'migration.aborted': { ...atDestination, reason: detail.text() },
})

export type MigrationEventKind = keyof typeof migrationEvents
