/**
 * Frames on the wire. Every WebSocket binary message is one frame:
 *
 *   u8  FRAME_MAGIC
 *   u32 length of the envelope (big-endian)
 *   ... the envelope, msgpack
 *   ... the attachment: raw bytes (pages, blocks), possibly empty
 *
 * The envelope says whether the frame is a one-way message, a request, a reply or an
 * error reply, and carries one Message. Decoding checks everything before anything
 * acts: sizes first, then msgpack, then the envelope's shape, then the message.
 */
import { Packr } from 'msgpackr'
import { HvlabError, describeError } from '../errors.js'
import { validateMessage, type Message } from './messages.js'

export const FRAME_MAGIC = 0xb7
export const FRAME_HEADER_BYTES = 5
/** The msgpack part of a frame; messages are small, bulk data rides in attachments. */
export const ENVELOPE_BYTES_MAX = 256 * 1024
/** One attachment: a batch of pages or blocks. */
export const ATTACHMENT_BYTES_MAX = 8 * 1024 * 1024
/** What ws may accept in one frame (its `maxPayload`). */
export const FRAME_BYTES_MAX = FRAME_HEADER_BYTES + ENVELOPE_BYTES_MAX + ATTACHMENT_BYTES_MAX

export type Envelope =
  | { k: 'msg'; m: Message }
  | { k: 'req'; id: number; m: Message }
  | { k: 'res'; id: number; m: Message }
  | { k: 'err'; id: number; code: string; message: string }

export interface Frame {
  envelope: Envelope
  /** Empty when the message carries no attachment; a view into the received buffer. */
  attachment: Buffer
}

// No records/structures, no extension types we did not ask for: plain maps and values.
const packr = new Packr({ useRecords: false, mapsAsObjects: true, moreTypes: false, int64AsType: 'number' })

const EMPTY = Buffer.alloc(0)

/**
 * The frame in two parts: the header with the envelope, and the attachment as given (not
 * copied). The transport sends them as two fragments of one WebSocket message, so a page
 * batch is never copied on the way out.
 */
export function encodeFrameParts(envelope: Envelope, attachment: Uint8Array = EMPTY): { head: Buffer; attachment: Uint8Array } {
  if (envelope.k !== 'err') validateMessage(envelope.m, attachment.length > 0)
  if (attachment.length > ATTACHMENT_BYTES_MAX) {
    throw new HvlabError('HVLAB_E_PROTOCOL', `attachment of ${attachment.length} bytes is over ${ATTACHMENT_BYTES_MAX}`)
  }
  const body = packr.pack(envelope)
  if (body.length > ENVELOPE_BYTES_MAX) {
    throw new HvlabError('HVLAB_E_PROTOCOL', `envelope of ${body.length} bytes is over ${ENVELOPE_BYTES_MAX}`)
  }
  const head = Buffer.allocUnsafe(FRAME_HEADER_BYTES + body.length)
  head[0] = FRAME_MAGIC
  head.writeUInt32BE(body.length, 1)
  body.copy(head, FRAME_HEADER_BYTES)
  return { head, attachment }
}

/** The whole frame in one buffer. */
export function encodeFrame(envelope: Envelope, attachment: Uint8Array = EMPTY): Buffer {
  const parts = encodeFrameParts(envelope, attachment)
  return parts.attachment.length === 0 ? parts.head : Buffer.concat([parts.head, parts.attachment])
}

const isInt = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= 0xffff_ffff

export function decodeFrame(data: Uint8Array): Frame {
  const buf = Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength)
  const head_bytes = headBytes(buf)
  if (head_bytes > buf.length) {
    throw new HvlabError(
      'HVLAB_E_PROTOCOL',
      `frame is truncated: envelope says ${head_bytes - FRAME_HEADER_BYTES} bytes, ${buf.length - FRAME_HEADER_BYTES} present`,
    )
  }
  return decodeHead(buf.subarray(0, head_bytes), buf.subarray(head_bytes))
}

/**
 * A frame received in parts (the WebSocket message's fragments, its tag taken off). When
 * the first part is the header with the envelope and the second the attachment, as this
 * transport sends them, the attachment is that part itself, not a copy; otherwise the parts
 * are joined first.
 */
export function decodeFrameParts(parts: readonly Buffer[]): Frame {
  const [head, attachment] = parts
  if (parts.length === 2 && head && attachment && head.length >= FRAME_HEADER_BYTES && headBytes(head) === head.length)
    return decodeHead(head, attachment)
  return decodeFrame(parts.length === 1 && head ? head : Buffer.concat(parts))
}

/** The header and envelope's length, as the frame's header says (checked: magic, envelope size). */
function headBytes(buf: Buffer): number {
  if (buf.length < FRAME_HEADER_BYTES) throw new HvlabError('HVLAB_E_PROTOCOL', `frame of ${buf.length} bytes is shorter than its header`)
  if (buf[0] !== FRAME_MAGIC) throw new HvlabError('HVLAB_E_PROTOCOL', `frame starts with 0x${buf[0]!.toString(16)}, not an hvlab frame`)
  const envelopeBytes = buf.readUInt32BE(1)
  if (envelopeBytes === 0 || envelopeBytes > ENVELOPE_BYTES_MAX) {
    throw new HvlabError('HVLAB_E_PROTOCOL', `envelope length ${envelopeBytes} is out of range 1..${ENVELOPE_BYTES_MAX}`)
  }
  return FRAME_HEADER_BYTES + envelopeBytes
}

/** `head`: exactly the header and the envelope; `attachment`: the rest of the frame. */
function decodeHead(head: Buffer, attachment: Buffer): Frame {
  if (attachment.length > ATTACHMENT_BYTES_MAX) throw new HvlabError('HVLAB_E_PROTOCOL', `attachment is over ${ATTACHMENT_BYTES_MAX} bytes`)
  let raw: unknown
  try {
    raw = packr.unpack(head.subarray(FRAME_HEADER_BYTES))
  } catch (e) {
    throw new HvlabError('HVLAB_E_PROTOCOL', `envelope is not valid msgpack: ${describeError(e)}`, { cause: e })
  }
  return { envelope: validateEnvelope(raw, attachment.length > 0), attachment }
}

function validateEnvelope(raw: unknown, hasAttachment: boolean): Envelope {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw new HvlabError('HVLAB_E_PROTOCOL', 'envelope is not a map')
  const e = raw as Record<string, unknown>
  const keys = Object.keys(e)
  switch (e.k) {
    case 'msg':
      if (keys.length !== 2) throw new HvlabError('HVLAB_E_PROTOCOL', 'msg envelope must have exactly k and m')
      return { k: 'msg', m: validateMessage(e.m, hasAttachment) }
    case 'req':
    case 'res':
      if (keys.length !== 3 || !isInt(e.id)) throw new HvlabError('HVLAB_E_PROTOCOL', `${e.k} envelope must have k, a u32 id and m`)
      return { k: e.k, id: e.id, m: validateMessage(e.m, hasAttachment) }
    case 'err':
      if (
        keys.length !== 4 ||
        !isInt(e.id) ||
        typeof e.code !== 'string' ||
        typeof e.message !== 'string' ||
        e.code.length > 64 ||
        e.message.length > 4096 ||
        hasAttachment
      ) {
        throw new HvlabError(
          'HVLAB_E_PROTOCOL',
          'err envelope must have k, a u32 id, a code (≤64 chars) and a message (≤4096 chars), no attachment',
        )
      }
      return { k: 'err', id: e.id, code: e.code, message: e.message }
    default:
      // Never String(e.k): a decoded map such as {toString: 1} throws a TypeError when converted.
      throw new HvlabError(
        'HVLAB_E_PROTOCOL',
        `envelope kind ${typeof e.k === 'string' ? JSON.stringify(e.k.slice(0, 16)) : `of type ${typeof e.k}`} is not msg, req, res or err`,
      )
  }
}
