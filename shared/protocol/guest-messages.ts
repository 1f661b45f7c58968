/**
 * The guest service and the lab's virtual switch.
 *
 * Controller → host, over the host's authenticated controller link (request/reply):
 *   guest-ping (req) → guest-pong         the guest answered: seq echoed, a value from guest memory
 *                    → guest-unavailable  not-here: this host does not run the VM (it moved, or never ran here);
 *                                         paused-too-long: the guest stayed paused (blackout in doubt) past the hold
 *
 * Client ↔ switch, on the control API's WebSocket `/v1/switch` (JSON text frames, not part
 * of the peer union; validated with the zod schemas below after JSON.parse):
 *   client → switch  { t: 'ping', vm, seq }
 *   switch → client  { t: 'pong', vm, seq, value, host } | { t: 'unreachable', vm, seq, reason }
 */
import { z } from 'zod'
import { defineMessage, field } from './define.js'

export const GUEST_UNAVAILABLE_REASONS = ['not-here', 'paused-too-long'] as const
export type GuestUnavailableReason = (typeof GUEST_UNAVAILABLE_REASONS)[number]

export const guestPing = defineMessage('guest-ping', {
  vm: field.name(),
  seq: field.uint(),
  /** Which switch client sent it (the switch's own id for the WebSocket). */
  client: field.id(),
})

export const guestPong = defineMessage('guest-pong', {
  vm: field.name(),
  seq: field.uint(),
  /** The guest's reply counter, kept in guest memory: +1 per reply, so it moves with the VM. */
  value: field.u32(),
  host: field.name(),
})

export const guestUnavailable = defineMessage('guest-unavailable', {
  vm: field.name(),
  seq: field.uint(),
  host: field.name(),
  reason: z.enum(GUEST_UNAVAILABLE_REASONS),
})

export const guestMessages = [guestPing, guestPong, guestUnavailable] as const

/** Largest client frame the switch accepts (bytes); anything bigger closes that client. */
export const SWITCH_FRAME_BYTES_MAX = 1024

export const switchClientPing = z.strictObject({ t: z.literal('ping'), vm: field.name(), seq: field.uint() })
export type SwitchClientPing = z.infer<typeof switchClientPing>

export const switchReply = z.discriminatedUnion('t', [
  z.strictObject({ t: z.literal('pong'), vm: field.name(), seq: field.uint(), value: field.u32(), host: field.name() }),
  z.strictObject({ t: z.literal('unreachable'), vm: field.name(), seq: field.uint(), reason: field.text(512) }),
])
export type SwitchReply = z.infer<typeof switchReply>
