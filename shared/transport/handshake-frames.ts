/**
 * Reading and writing the handshake's frames on a raw WebSocket, before it becomes a
 * PeerConnection. Both the server and the client side use these.
 */
import type WebSocket from 'ws'
import { HvlabError } from '../errors.js'
import { decodeFrame, encodeFrame } from '../protocol/codec.js'
import type { Message, MessageOf, MessageType } from '../protocol/messages.js'

export const HANDSHAKE_TIMEOUT_MS = 5_000

export function sendRaw(ws: WebSocket, message: Message): void {
  ws.send(encodeFrame({ k: 'msg', m: message }), { binary: true })
}

/** Why a connection is closed, cut to what a goodbye may carry so the reason always gets through. */
export function goodbye(code: string, reason: string): MessageOf<'goodbye'> {
  return { t: 'goodbye', code: code.slice(0, 64), reason: reason.length > 1024 ? `${reason.slice(0, 1021)}...` : reason }
}

/**
 * Decodes one handshake frame and checks that it is the message we expect. A goodbye
 * from the other side becomes an error with its code and reason.
 */
export function expectMessage<T extends MessageType>(data: unknown, isBinary: boolean, t: T): MessageOf<T> {
  if (!isBinary || !Buffer.isBuffer(data)) throw new HvlabError('HVLAB_E_PROTOCOL', 'handshake frames are binary')
  const { envelope } = decodeFrame(data)
  if (envelope.k !== 'msg') throw new HvlabError('HVLAB_E_PROTOCOL', `expected ${t} during the handshake, got a ${envelope.k} envelope`)
  const m = envelope.m
  if (m.t === 'goodbye' && t !== 'goodbye') {
    const code = m.code === 'HVLAB_E_AUTH' || m.code === 'HVLAB_E_CERT' ? m.code : 'HVLAB_E_REFUSED'
    throw new HvlabError(code, `refused by peer: ${m.reason}`)
  }
  if (m.t !== t) throw new HvlabError('HVLAB_E_PROTOCOL', `expected ${t} during the handshake, got ${m.t}`)
  return m as MessageOf<T>
}
