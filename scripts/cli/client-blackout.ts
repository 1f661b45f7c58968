/**
 * The blackout of a live migration as the VM's clients saw it, for `vm migrate`: the source
 * reports when the guest paused (wall-clock ms); the lab's virtual switch puts
 * `switch.vm-moved` on the timeline when the VM's first reply comes from the destination
 * (the pings held during the blackout, handed over). From the guest's last instruction on
 * the source to that reply is the client's blackout; the switch's own gap (the VM's last
 * reply from the source → first from the destination) is what each client saw at most.
 * No client pinging the VM: no such event, and the figures are null.
 */
import type { MigrationResultMessage } from '../../shared/protocol/cluster-messages.js'
import type { SeenEvent } from './timeline-cursor.js'

/** How long `vm migrate` looks for the switch's event after the result (it is usually there already). */
export const CLIENT_MOVE_WAIT_MS = 300
export const CLIENT_MOVE_POLL_MS = 50

export interface ClientBlackout {
  /** Guest paused on the source → the switch had its first reply from the destination, ms. */
  client_blackout_ms: number | null
  /** The switch: the VM's last reply from the source → its first from the destination, ms. */
  client_gap_ms: number | null
  /** Pings the paused source held that the switch sent to the destination at its announcement. */
  released_pings: number | null
}

export const NO_CLIENT: ClientBlackout = { client_blackout_ms: null, client_gap_ms: null, released_pings: null }

const num = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null)

/** The switch's move of `r`'s VM to its destination after its pause, among `events`; null when none is there. */
export function clientBlackoutOf(r: MigrationResultMessage, events: readonly SeenEvent[]): ClientBlackout | null {
  const paused_at_ms = r.paused_at_ms ?? null
  if (r.outcome !== 'completed' || paused_at_ms === null) return null
  for (const e of events) {
    if (e.kind !== 'switch.vm-moved' || e.details.vm !== r.vm || e.details.to !== r.destination) continue
    const first = num(e.details.first_reply_at_ms)
    const gap = num(e.details.gap_ms)
    if (first === null || first < paused_at_ms) continue
    return { client_blackout_ms: first - paused_at_ms, client_gap_ms: gap, released_pings: num(e.details.released_pings) }
  }
  return null
}

/** Polls the timeline (`next`: the events since the last call) for the switch's event, a short while at most. */
export async function awaitClientBlackout(
  r: MigrationResultMessage,
  next: () => Promise<SeenEvent[]>,
  wait_ms = CLIENT_MOVE_WAIT_MS,
): Promise<ClientBlackout> {
  if (r.outcome !== 'completed' || r.paused_at_ms == null) return NO_CLIENT
  const deadline = Date.now() + wait_ms
  for (;;) {
    const found = clientBlackoutOf(r, await next())
    if (found !== null) return found
    if (Date.now() >= deadline) return NO_CLIENT
    await new Promise((resolve) => setTimeout(resolve, CLIENT_MOVE_POLL_MS))
  }
}
