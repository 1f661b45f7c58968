/**
 * What the migration state machines put on the lab timeline: one event per stage change
 * (and per pre-copy round), with flat details a person reads as progress.
 */
export type MigrationEventKind =
  | 'migration.setup'
  | 'migration.precopy'
  | 'migration.throttled'
  | 'migration.blackout'
  | 'migration.storage'
  | 'migration.resumed'
  | 'migration.completed'
  | 'migration.failed'
  | 'migration.cancelled'
  | 'migration.cancel-refused'
  | 'migration.in-doubt'
  | 'migration.incoming'
  | 'migration.aborted'

export type MigrationEventValue = string | number | boolean | null

export interface MigrationEvent {
  readonly kind: MigrationEventKind
  readonly details: Readonly<Record<string, MigrationEventValue>>
}
