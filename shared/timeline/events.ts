/**
 * The lab-wide timeline's one vocabulary: every event kind, declared once with the schema
 * of its details (one file per family), assembled here into one union, as the wire
 * messages are in shared/protocol/messages.ts. Emitters are typed with it (`EmitEvent`,
 * `DetailsOf`), the controller checks every event a process sends against it
 * (`checkEventDetails`) before it goes on the timeline, and the CLI, the tests and the
 * reports read `TimelineEvent`.
 */
import type { z } from 'zod'
import { clusterEvents, witnessEvents } from './cluster-events.js'
import { clxEvents } from './clx-events.js'
import { EVENT_DETAIL_FIELDS_MAX } from './details.js'
import { clockEvents, labEvents, networkEvents, peerEvents, processEvents, switchEvents } from './lab-events.js'
import { migrationEvents } from './migration-events.js'
import { rcEvents } from './rc-events.js'
import { replicaEvents } from './replica-events.js'
import { nodeEvents, roleEvents, roleStateEvents } from './role-events.js'
import { arrayEvents, csvEvents } from './storage-events.js'
import { vmEvents } from './vm-events.js'

export const EVENT_SCHEMAS = {
  ...labEvents,
  ...processEvents,
  ...networkEvents,
  ...clockEvents,
  ...peerEvents,
  ...switchEvents,
  ...clusterEvents,
  ...witnessEvents,
  ...roleStateEvents,
  ...roleEvents,
  ...nodeEvents,
  ...vmEvents,
  ...migrationEvents,
  ...csvEvents,
  ...arrayEvents,
  ...rcEvents,
  ...clxEvents,
  ...replicaEvents,
} as const

type Schemas = typeof EVENT_SCHEMAS
export type EventKind = keyof Schemas
export const EVENT_KINDS = Object.keys(EVENT_SCHEMAS) as EventKind[]

/** The details of one kind (for a union of kinds, the union of their details). */
export type DetailsOf<K extends EventKind> = z.infer<Schemas[K]>

/** One event as its emitter gives it: a kind and that kind's details. */
export type EventOf<K extends EventKind> = { [P in K]: { kind: P; details: DetailsOf<P> } }[K]
export type AnyEvent = EventOf<EventKind>
/** One event with the process that emitted it, as a state machine's `emit` effect carries it. */
export type SourcedEventOf<K extends EventKind> = { [P in K]: { kind: P; source: string; details: DetailsOf<P> } }[K]

/** Puts an event on the timeline: a wrong kind or detail is a compile error. */
export type EmitEvent = <K extends EventKind>(kind: K, details: DetailsOf<K>) => void

/** One event on the lab-wide timeline, as `events.<n>.jsonl`, `GET /v1/events` and `hvlab events` give it. */
export interface TimelineEvent {
  /** Its number on the timeline, from 1, continued across restarts of the lab. */
  seq: number
  /** Wall-clock time, ms since the epoch. */
  at_ms: number
  kind: EventKind
  /** The process that emitted it, or `lab` for the controller's own. */
  source: string
  details: DetailsOf<EventKind>
}

export function isEventKind(kind: string): kind is EventKind {
  return Object.hasOwn(EVENT_SCHEMAS, kind)
}

/** Why an event was refused: a kind nobody declared, details of the wrong shape or type, or beyond a bound. */
export type EventRefusalCode = 'unknown-kind' | 'bad-details' | 'oversize'

export type EventCheck = { ok: true; event: AnyEvent } | { ok: false; code: EventRefusalCode; reason: string }

/** Checks an event a process sent against its kind's schema. */
export function checkEventDetails(kind: string, details: unknown): EventCheck {
  if (!isEventKind(kind)) return { ok: false, code: 'unknown-kind', reason: `no event kind ${kind.slice(0, 64)} is declared` }
  if (details !== null && typeof details === 'object' && Object.keys(details).length > EVENT_DETAIL_FIELDS_MAX)
    return { ok: false, code: 'oversize', reason: `${kind} has more than ${EVENT_DETAIL_FIELDS_MAX} detail fields` }
  const r = EVENT_SCHEMAS[kind].safeParse(details)
  // The details as sent (parsing builds a copy in the schema's key order): the timeline keeps their bytes.
  if (r.success) return { ok: true, event: { kind, details } as AnyEvent }
  const oversize = r.error.issues.some((i) => i.code === 'too_big')
  const where = r.error.issues.map((i) => `${i.path.join('.') || '(details)'}: ${i.message}`).join('; ')
  return { ok: false, code: oversize ? 'oversize' : 'bad-details', reason: `${kind}: ${where}`.slice(0, 1024) }
}
