/**
 * Replication's own bandwidth cap (`hvlab replica enable VM … --max-mbit N`), PURE: each
 * thing the primary sends (a shipment's part, a resync's blocks) books the link for as
 * long as its bytes take at N Mbit/s, and may only begin once what went before has had
 * its time. So from the first send on, replication never sends more than N Mbit/s on
 * average: by any moment T, at most N × (T − the first send) plus the one send under way
 * (a part, 4 MiB at most). With no cap a send goes at once and books nothing; a cap set
 * later paces from then on, and a cap changed takes effect at the next send.
 */
import { HvlabError } from '../../shared/errors.js'

export class SendPacer {
  /** When the sends booked so far have had their time at the cap. */
  private free_at_ms = -Infinity

  /** When a send of `bytes` may begin (not before `now_ms`), with `mbit` the cap now (null: none); books it. */
  book(bytes: number, now_ms: number, mbit: number | null): number {
    if (!Number.isSafeInteger(bytes) || bytes < 0) throw new HvlabError('HVLAB_E_INTERNAL', `a send of ${bytes} bytes`)
    if (mbit === null) return now_ms
    if (!(mbit > 0) || !Number.isFinite(mbit))
      throw new HvlabError('HVLAB_E_USAGE', `a bandwidth cap is a positive number of Mbit/s, got ${mbit}`)
    const start_ms = Math.max(now_ms, this.free_at_ms)
    this.free_at_ms = start_ms + sendMs(bytes, mbit)
    return start_ms
  }
}

/** How long `bytes` take at `mbit` Mbit/s. */
export function sendMs(bytes: number, mbit: number): number {
  return (bytes * 8) / (mbit * 1000)
}
