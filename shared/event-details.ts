/**
 * Timeline event details are flat (shared/protocol/runtime-messages.ts, `detailValue`):
 * what a state machine emits — a host's or the witness's cluster events, an array's
 * Remote Copy events — is flattened before it goes on the timeline.
 */
import type { EventDetails } from './protocol/runtime-messages.js'

/** Longest JSON text a nested detail becomes (a timeline detail string holds at most this). */
const EVENT_DETAIL_JSON_CHARS_MAX = 4096
/** Longest list of scalars kept as a list (the timeline's limit for one detail). */
const EVENT_DETAIL_LIST_MAX = 64

/**
 * Scalars and short lists of scalars stay as they are; anything else (a ballot, a
 * record) becomes JSON text of at most EVENT_DETAIL_JSON_CHARS_MAX characters, and a
 * value JSON cannot show (undefined, a function) becomes null.
 */
export function flattenEventDetails(details: Record<string, unknown>): EventDetails {
  const out: EventDetails = {}
  for (const [k, v] of Object.entries(details)) {
    if (v === null || typeof v === 'string' || typeof v === 'boolean' || (typeof v === 'number' && Number.isFinite(v))) out[k] = v
    else if (
      Array.isArray(v) &&
      v.length <= EVENT_DETAIL_LIST_MAX &&
      v.every((x) => x === null || ['string', 'number', 'boolean'].includes(typeof x))
    )
      out[k] = v as (string | number | boolean | null)[]
    else out[k] = (JSON.stringify(v) as string | undefined)?.slice(0, EVENT_DETAIL_JSON_CHARS_MAX) ?? null
  }
  return out
}
