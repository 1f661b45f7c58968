/**
 * A closed replica log on the wire (shared/protocol/replica-messages.ts): the primary cuts
 * a shipment into parts of at most `part_body_bytes_max` before deflation, in block order;
 * the replica server stages the parts of one cycle and gets the shipment back once the last
 * has come. Everything that arrives is checked before it is trusted: a part out of order,
 * one whose header disagrees with the first part's, a body that inflates past what its
 * header declares (a deflate bomb) or whose length does not match its block count, or
 * staging past the server's bound, throws HVLAB_E_PROTOCOL and drops the staged parts.
 * The shipment's own rules (cycle order, block order, the disk's bounds) are
 * shipment-check.ts's.
 *
 * Deflate is Node's zlib (raw deflate, level 1: a log of guest writes is mostly what the
 * guest wrote, and the link, not the CPU, is what compression saves).
 */
import { deflateRawSync, inflateRawSync } from 'node:zlib'
import { HvlabError, describeError } from '../../shared/errors.js'
import type { MessageOf } from '../../shared/protocol/messages.js'
import { SHIPMENT_PART_BODY_BYTES_MAX, type ShipmentCompression } from '../../shared/protocol/replica-messages.js'
import type { LogShipment, ShippedBlock } from './replica-log.js'

type PartMessage = MessageOf<'replica-log-part'>

export interface ShipmentPart {
  readonly message: PartMessage
  readonly attachment: Uint8Array
}

export interface ShipmentPartOptions {
  readonly block_size_bytes: number
  readonly compression: ShipmentCompression
  /** A part's body before deflation, at most (default and ceiling SHIPMENT_PART_BODY_BYTES_MAX). */
  readonly part_body_bytes_max?: number
}

const COUNT_BYTES = 4
const BLOCK_NUMBER_BYTES = 4

/** Blocks one part holds at most. */
export function blocksPerPart(block_size_bytes: number, part_body_bytes_max = SHIPMENT_PART_BODY_BYTES_MAX): number {
  const n = Math.floor(
    (Math.min(part_body_bytes_max, SHIPMENT_PART_BODY_BYTES_MAX) - COUNT_BYTES) / (BLOCK_NUMBER_BYTES + block_size_bytes),
  )
  if (n < 1)
    throw new HvlabError('HVLAB_E_INTERNAL', `a part of ${part_body_bytes_max} bytes cannot hold one ${block_size_bytes}-byte block`)
  return n
}

/** The shipment as its parts, in order; an empty cycle is one part of no blocks. */
export function shipmentParts(s: LogShipment, o: ShipmentPartOptions): ShipmentPart[] {
  const per_part = blocksPerPart(o.block_size_bytes, o.part_body_bytes_max)
  const parts = Math.max(1, Math.ceil(s.blocks.length / per_part))
  const out: ShipmentPart[] = []
  for (let part = 0; part < parts; part++) {
    const body = encodeBody(s.blocks.slice(part * per_part, (part + 1) * per_part), o.block_size_bytes)
    out.push({
      message: {
        t: 'replica-log-part',
        vm: s.vm,
        cycle: s.cycle,
        part,
        parts,
        closed_at_ms: s.closed_at_ms,
        block_size_bytes: o.block_size_bytes,
        writes_logged: s.writes_logged,
        logged_bytes: s.logged_bytes,
        compression: o.compression,
        body_bytes: body.length,
        ...(s.point_kind === undefined ? {} : { point_kind: s.point_kind }),
      },
      attachment: o.compression === 'deflate' ? deflateRawSync(body, { level: 1 }) : body,
    })
  }
  return out
}

/** A part's body before deflation: count, block numbers, block data. */
export function encodeBody(blocks: readonly ShippedBlock[], block_size_bytes: number): Buffer {
  const body = Buffer.allocUnsafe(COUNT_BYTES + blocks.length * (BLOCK_NUMBER_BYTES + block_size_bytes))
  body.writeUInt32LE(blocks.length, 0)
  const data_at = COUNT_BYTES + blocks.length * BLOCK_NUMBER_BYTES
  blocks.forEach((b, i) => {
    if (b.data.length !== block_size_bytes)
      throw new HvlabError('HVLAB_E_INTERNAL', `block ${b.block} holds ${b.data.length} bytes, not ${block_size_bytes}`)
    body.writeUInt32LE(b.block, COUNT_BYTES + i * BLOCK_NUMBER_BYTES)
    body.set(b.data, data_at + i * block_size_bytes)
  })
  return body
}

const refuse = (reason: string): HvlabError => new HvlabError('HVLAB_E_PROTOCOL', reason)

/** A part's body: inflated (never past `body_bytes`) and checked against its block count. */
export function decodePartBody(m: PartMessage, attachment: Uint8Array): ShippedBlock[] {
  const body =
    m.compression === 'deflate'
      ? inflateBounded(m, attachment)
      : Buffer.from(attachment.buffer, attachment.byteOffset, attachment.byteLength)
  const where = `part ${m.part} of shipment ${m.cycle} of vm ${m.vm}`
  if (body.length !== m.body_bytes) throw refuse(`${where}: its body is ${body.length} bytes, its header says ${m.body_bytes}`)
  return decodeBody(body, m.block_size_bytes, where)
}

/** A body as encodeBody wrote it (not deflated), checked against its block count; `where` names it in a refusal. */
export function decodeBody(bytes: Uint8Array, block_size_bytes: number, where: string): ShippedBlock[] {
  const body = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  if (body.length < COUNT_BYTES) throw refuse(`${where}: a body of ${body.length} bytes has no block count`)
  const count = body.readUInt32LE(0)
  if (body.length !== COUNT_BYTES + count * (BLOCK_NUMBER_BYTES + block_size_bytes))
    throw refuse(`${where}: ${count} blocks of ${block_size_bytes} bytes do not fill a body of ${body.length} bytes (truncated?)`)
  const data_at = COUNT_BYTES + count * BLOCK_NUMBER_BYTES
  const blocks: ShippedBlock[] = []
  for (let i = 0; i < count; i++) {
    const at = data_at + i * block_size_bytes
    // a copy: the attachment is a view into the transport's receive buffer
    blocks.push({
      block: body.readUInt32LE(COUNT_BYTES + i * BLOCK_NUMBER_BYTES),
      data: new Uint8Array(body.subarray(at, at + block_size_bytes)),
    })
  }
  return blocks
}

function inflateBounded(m: PartMessage, attachment: Uint8Array): Buffer {
  try {
    return inflateRawSync(attachment, { maxOutputLength: m.body_bytes })
  } catch (e) {
    throw refuse(
      `part ${m.part} of shipment ${m.cycle} of vm ${m.vm} does not inflate to its declared ${m.body_bytes} bytes: ${describeError(e)}`,
    )
  }
}

export type AssembledPart = { readonly kind: 'staged' } | { readonly kind: 'complete'; readonly shipment: LogShipment }

/** The header fields every part of one shipment repeats: a part that changes one is not of this shipment. */
const SAME_IN_EVERY_PART = ['cycle', 'parts', 'closed_at_ms', 'block_size_bytes', 'writes_logged', 'logged_bytes', 'point_kind'] as const

/** One replicated VM's parts in staging on its replica server. */
export class ShipmentAssembler {
  /** The first part of the shipment being staged; null when nothing is. */
  private first: PartMessage | null = null
  private next_part = 0
  private blocks: ShippedBlock[] = []

  constructor(
    private readonly o: {
      readonly vm: string
      /** Bytes of block data staged at once, at most (a shipment past it is refused: resync instead). */
      readonly staged_bytes_max: number
    },
  ) {}

  /** Bytes of block data staged now. */
  get stagedBytes(): number {
    return this.first === null ? 0 : this.blocks.length * this.first.block_size_bytes
  }

  /** Takes the next part; part 0 always starts a shipment afresh (a resend drops what was staged). */
  add(m: PartMessage, attachment: Uint8Array): AssembledPart {
    if (m.part === 0) this.drop()
    try {
      this.checkPlace(m)
      const blocks = decodePartBody(m, attachment)
      if ((this.blocks.length + blocks.length) * m.block_size_bytes > this.o.staged_bytes_max)
        throw refuse(`shipment ${m.cycle} of vm ${m.vm} is over the ${this.o.staged_bytes_max} bytes this server stages for one VM`)
      this.first ??= m
      this.next_part += 1
      this.blocks.push(...blocks)
    } catch (e) {
      this.drop()
      throw e
    }
    if (m.part < m.parts - 1) return { kind: 'staged' }
    const shipment: LogShipment = {
      vm: m.vm,
      cycle: m.cycle,
      closed_at_ms: m.closed_at_ms,
      blocks: this.blocks,
      writes_logged: m.writes_logged,
      logged_bytes: m.logged_bytes,
      ...(m.point_kind === 'application' ? { point_kind: m.point_kind } : {}),
    }
    this.drop()
    return { kind: 'complete', shipment }
  }

  /** Drops the staged parts (a refused part, a resend from part 0, a resync). */
  drop(): void {
    this.first = null
    this.next_part = 0
    this.blocks = []
  }

  private checkPlace(m: PartMessage): void {
    if (m.vm !== this.o.vm) throw refuse(`a part of vm ${m.vm} sent for the replica of vm ${this.o.vm}`)
    if (m.part >= m.parts) throw refuse(`part ${m.part} of a shipment of ${m.parts} parts`)
    if (m.part !== this.next_part)
      throw refuse(
        `part ${m.part} of shipment ${m.cycle} of vm ${m.vm} arrived where part ${this.next_part} was due; send the shipment again from part 0`,
      )
    const first = this.first
    const changed = first === null ? undefined : SAME_IN_EVERY_PART.find((k) => m[k] !== first[k])
    if (changed !== undefined) throw refuse(`part ${m.part} of shipment ${m.cycle} of vm ${m.vm} changes its ${changed} from part 0`)
  }
}
