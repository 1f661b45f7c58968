/**
 * What the migration state machines put on the lab timeline: one event per stage change
 * (and per pre-copy round), with flat details a person reads as progress. The kinds and
 * their details are declared once, in shared/timeline/migration-events.ts.
 */
import type { DetailsOf } from '../../shared/timeline/events.js'
import type { MigrationEventKind } from '../../shared/timeline/migration-events.js'

export type { MigrationEventKind }

export type MigrationEventValue = string | number | boolean | null

/** One migration event: its kind and that kind's details (readable by name, as the status and tests read them). */
export type MigrationEvent = {
  readonly [K in MigrationEventKind]: {
    readonly kind: K
    readonly details: Readonly<DetailsOf<K>> & Readonly<Record<string, MigrationEventValue | undefined>>
  }
}[MigrationEventKind]

/** Who says it: the source names the destination, the destination the source; the machine adds these. */
type Named = 'migration_id' | 'vm' | 'destination' | 'source'
/** The details a machine gives for `kind`, before it adds its migration's id, VM and peer. */
export type MigrationDetailsOf<K extends MigrationEventKind> = Omit<DetailsOf<K>, Named>

/** A machine's event: its migration's id, VM and peer, then the kind's own details. */
export function migrationEvent<K extends MigrationEventKind>(
  kind: K,
  named: { migration_id: string; vm: string; destination: string } | { migration_id: string; vm: string; source: string },
  details: MigrationDetailsOf<K>,
): MigrationEvent {
  // Named + MigrationDetailsOf<K> is DetailsOf<K>; TypeScript cannot see that for a generic K.
  return { kind, details: { ...named, ...details } } as unknown as MigrationEvent
}
