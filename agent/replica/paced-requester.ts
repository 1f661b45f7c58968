/**
 * The primary's connection to its replica server, paced (send-pacer.ts): a request that
 * carries bytes (a shipment's part, a resync's blocks) waits on the clock for its turn
 * under the VM's cap before it goes; the rest (begin, hashes, done) go at once. The cap is
 * read at each send (the VM's role may change it while replication runs).
 */
import { sleepOn, type Clock } from '../../shared/clock.js'
import type { SendPacer } from './send-pacer.js'
import type { PartRequester } from './shipment-sender.js'

export interface PacingDeps {
  readonly pacer: SendPacer
  readonly clock: Clock
  /** The cap now, Mbit/s (null: none). */
  maxMbit(): number | null
}

export function pacedRequester(conn: PartRequester, p: PacingDeps): PartRequester {
  return {
    async request(message, options) {
      const bytes = options.attachment?.length ?? 0
      if (bytes > 0) {
        const now = p.clock.now()
        const start_ms = p.pacer.book(bytes, now, p.maxMbit())
        if (start_ms > now) await sleepOn(p.clock, start_ms - now)
      }
      return conn.request(message, options)
    },
  }
}
