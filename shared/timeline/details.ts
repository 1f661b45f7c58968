/**
 * How a timeline event kind is declared: `defineEvents` names each kind of one family with
 * the zod schema of its details, the way `defineMessage` declares a wire message. Details
 * are flat and bounded — a string, a number, a flag, null, or a short list of those — as
 * the `event` message has always carried them (shared/protocol/runtime-messages.ts).
 */
import { z } from 'zod'
import { field } from '../protocol/define.js'

/** Longest string in a detail (a reason, a JSON text of a nested value). */
export const EVENT_DETAIL_CHARS_MAX = 4096
/** Longest list in a detail. */
export const EVENT_DETAIL_LIST_MAX = 64
/** Most detail fields in one event. */
export const EVENT_DETAIL_FIELDS_MAX = 64
/** What a kind may be: lowercase, a family, a dot, and the event (`cluster.view-changed`). */
export const EVENT_KIND_PATTERN = /^[a-z][a-z0-9.-]{0,63}$/

/** Bounded detail fields (shared/protocol/define.ts `field`, with the timeline's limits). */
export const detail = {
  /** Free text: a reason, a hint, a JSON text of a nested value. */
  text: () => field.text(EVENT_DETAIL_CHARS_MAX),
  /** A process, node, VM, volume, group or CSV name, as its sender knows it. */
  name: () => field.text(255),
  /** One of a few words (a mode, an outcome, a role state). */
  word: () => field.text(64),
  /** Any finite number (ms, bytes, counts, rates). */
  number: () => z.number().finite(),
  /** An epoch, op or sequence number. */
  uint: () => field.uint(),
  time_ms: () => field.time_ms(),
  flag: () => z.boolean(),
  /** A short list of names. */
  names: () => field.list(field.text(255), EVENT_DETAIL_LIST_MAX),
}

/** One family's kinds, each with the strict schema of its details. */
export function defineEvents<S extends Record<string, z.ZodRawShape>>(
  shapes: S,
): { readonly [K in keyof S]: z.ZodObject<S[K], z.core.$strict> } {
  const out: Record<string, z.ZodObject<z.ZodRawShape, z.core.$strict>> = {}
  for (const [kind, shape] of Object.entries(shapes)) out[kind] = z.strictObject(shape)
  return out as { readonly [K in keyof S]: z.ZodObject<S[K], z.core.$strict> }
}
