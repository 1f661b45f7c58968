/**
 * The guest service and the lab's virtual switch.
 *
 * Controller → host, over the host's authenticated controller link (request/reply):
 *   guest-ping (req) → guest-pong         the guest answered: seq echoed, a value from guest memory
 *                    → guest-unavailable  not-here: this host does not run the VM (it moved, or never ran here);
 *                                         paused-too-long: the guest stayed paused (blackout in doubt) past the hold
 *
 * Host → controller, one-way on the same link: what the switch's table is learned from.
 *   vm-location  { vm, at: 'here' | 'gone', op, epoch }  the VM runs on the sender now (started,
 *                or resumed after a migration: the gratuitous ARP), or stopped there
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

export const guestPing = defineMessage('guest-ping', () => ({
  vm: field.name(),
  seq: field.uint(),
  /** Which switch client sent it (the switch's own id for the WebSocket). */
  client: field.id(),
}))

export const guestPong = defineMessage('guest-pong', () => ({
  vm: field.name(),
  seq: field.uint(),
  /** The guest's reply counter, kept in guest memory: +1 per reply, so it moves with the VM. */
  value: field.u32(),
  host: field.name(),
}))

export const guestUnavailable = defineMessage('guest-unavailable', () => ({
  vm: field.name(),
  seq: field.uint(),
  host: field.name(),
  reason: z.enum(GUEST_UNAVAILABLE_REASONS),
}))

export const VM_LOCATION_AT = ['here', 'gone'] as const

/**
 * A host tells the lab's virtual switch where a VM is. The host is the link's own
 * (authenticated) process, never a name inside the message. `at`: here — it runs on the
 * sender now (started, or resumed after a migration); gone — it stopped there (stopped,
 * or stopped for lost quorum). `op` and `epoch`: the start op and cluster epoch of that
 * incarnation (a role's ops only grow, so a lower op is an older incarnation).
 */
export const vmLocation = defineMessage('vm-location', () => ({
  /** The process's notice number, as an event's (runtime-messages.ts `registered`). */
  n: field.uint().optional(),
  vm: field.name(),
  at: z.enum(VM_LOCATION_AT),
  op: field.uint(),
  epoch: field.uint(),
}))
export type VmLocation = Omit<z.infer<typeof vmLocation.schema>, 't'>

export const guestMessages = [guestPing, guestPong, guestUnavailable, vmLocation] as const

export type GuestPing = z.infer<typeof guestPing.schema>
/** What a host answers a guest-ping with. */
export type GuestReply = z.infer<typeof guestPong.schema> | z.infer<typeof guestUnavailable.schema>

/** Largest client frame the switch accepts (bytes); anything bigger closes that client. */
export const SWITCH_FRAME_BYTES_MAX = 1024

export const switchClientPing = z.strictObject({ t: z.literal('ping'), vm: field.name(), seq: field.uint() })
export type SwitchClientPing = z.infer<typeof switchClientPing>

export const switchReply = z.discriminatedUnion('t', [
  z.strictObject({ t: z.literal('pong'), vm: field.name(), seq: field.uint(), value: field.u32(), host: field.name() }),
  z.strictObject({ t: z.literal('unreachable'), vm: field.name(), seq: field.uint(), reason: field.text(512) }),
])
export type SwitchReply = z.infer<typeof switchReply>
