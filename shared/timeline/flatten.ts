/**
 * The one flattener of timeline details: what a state machine emits — a host's or the
 * witness's cluster events, an array's Remote Copy events — is flattened before it goes
 * on the timeline, so a value the `event` message cannot carry never reaches the wire.
 * The machines' details are declared flat (shared/timeline/*-events.ts) except a cluster
 * election's ballot, which goes on the timeline as its JSON text, as it always has.
 */
import type { z } from 'zod'
import type { detailValue } from '../protocol/runtime-messages.js'
import { EVENT_DETAIL_CHARS_MAX, EVENT_DETAIL_LIST_MAX } from './details.js'

type DetailValue = z.infer<typeof detailValue>
type Scalar = string | number | boolean | null
/** What a detail becomes: scalars and lists of scalars stay; anything else (a ballot) is its JSON text. */
type FlatValue<V> = V extends Scalar | readonly Scalar[] | undefined ? V : string
export type Flattened<D> = { [P in keyof D]: FlatValue<D[P]> }

/** A nested value (a ballot, a record) as a timeline detail: its JSON text, at most EVENT_DETAIL_CHARS_MAX characters. */
function jsonDetail(value: unknown): string | null {
  return (JSON.stringify(value) as string | undefined)?.slice(0, EVENT_DETAIL_CHARS_MAX) ?? null
}

/**
 * Scalars and short lists of scalars stay as they are; anything else (a ballot, a
 * record) becomes JSON text of at most EVENT_DETAIL_CHARS_MAX characters, and a
 * value JSON cannot show (undefined, a function) becomes null.
 */
export function flattenEventDetails<D extends Record<string, unknown>>(details: D): Flattened<D> {
  const out: Record<string, DetailValue> = {}
  for (const [k, v] of Object.entries(details)) {
    if (v === null || typeof v === 'string' || typeof v === 'boolean' || (typeof v === 'number' && Number.isFinite(v))) out[k] = v
    else if (
      Array.isArray(v) &&
      v.length <= EVENT_DETAIL_LIST_MAX &&
      v.every((x) => x === null || ['string', 'number', 'boolean'].includes(typeof x))
    )
      out[k] = v as Scalar[]
    else out[k] = jsonDetail(v)
  }
  return out as Flattened<D>
}
