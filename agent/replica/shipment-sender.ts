/**
 * The primary's side of one shipment on the wire: its parts go to the replica server one
 * request at a time, in order (shipment-frames.ts), and what comes back becomes the sender
 * machine's input (replica-sender.ts). Every answer is checked against the part it is for:
 * an answer for another VM, cycle or part, or a `staged` for the last part, is not trusted
 * and counts as a failed send, so the machine sends the whole shipment again next cycle.
 * A transport failure (no connection, a timeout) is a failed send too; a refusal of any
 * part ends the shipment with that refusal.
 */
import { HvlabError } from '../../shared/errors.js'
import type { Message, MessageOf } from '../../shared/protocol/messages.js'
import type { LogShipment } from './replica-log.js'
import type { ReplicaSenderInput } from './replica-sender.js'
import { shipmentParts, type ShipmentPartOptions } from './shipment-frames.js'

/** What the shipment needs of a connection (PeerConnection.request). */
export interface PartRequester {
  request(
    message: Message,
    options: { attachment?: Uint8Array; timeout_ms?: number },
  ): Promise<{ message: Message; attachment?: Uint8Array }>
}

type Answer = MessageOf<'replica-log-answer'>
type SendOutcome = Extract<ReplicaSenderInput, { kind: 'answer' | 'send-failed' }>

export async function sendShipment(
  conn: PartRequester,
  s: LogShipment,
  o: ShipmentPartOptions & { readonly timeout_ms: number },
): Promise<SendOutcome> {
  const failed: SendOutcome = { kind: 'send-failed', cycle: s.cycle }
  const parts = shipmentParts(s, o)
  for (const [i, part] of parts.entries()) {
    let reply: Message
    try {
      reply = (await conn.request(part.message, { attachment: part.attachment, timeout_ms: o.timeout_ms })).message
    } catch (e) {
      if (e instanceof HvlabError) return failed
      throw e
    }
    const last = i === parts.length - 1
    if (!answersPart(reply, part.message, last)) return failed
    if (reply.outcome === 'staged') continue
    return {
      kind: 'answer',
      cycle: s.cycle,
      outcome: reply.outcome,
      ...(reply.refusal !== undefined ? { refusal: reply.refusal } : {}),
      resync: reply.resync,
    }
  }
  // the last part's answer returned above (answersPart takes no `staged` for it), and there is always a last part
  throw new HvlabError('HVLAB_E_INTERNAL', `shipment ${s.cycle} of vm ${s.vm} ended without an answer for its last part`)
}

/** The reply is the replica's answer for this very part: `staged` before the last, a verdict on the last or a refusal on any. */
function answersPart(reply: Message, part: MessageOf<'replica-log-part'>, last: boolean): reply is Answer {
  if (reply.t !== 'replica-log-answer') return false
  if (reply.vm !== part.vm || reply.cycle !== part.cycle || reply.part !== part.part) return false
  return last ? reply.outcome !== 'staged' : reply.outcome === 'staged' || reply.outcome === 'refused'
}
