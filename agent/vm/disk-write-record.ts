/**
 * What a VM's disk writer puts in each block, so a checker can tell which write a block
 * holds: magic "HVDW", format, the VM's name, the write's sequence number, the epoch it
 * carried, the block number and a value (from guest memory or seeded random), then fill
 * bytes derived from (seq, value), and last the sha256 of everything before it — a torn
 * or foreign block fails the checksum.
 *
 * `checkAckedWrites` is the history checker: every acknowledged write is on the disk (or
 * a newer write of the same VM to the same block is), and nothing is there that the
 * writer never issued.
 */
import { createHash } from 'node:crypto'
import { HvlabError } from '../../shared/errors.js'
import { mulberry32 } from '../../shared/seeded-random.js'

const MAGIC = 0x48564457 // "HVDW"
const FORMAT = 1
const NAME_BYTES_MAX = 64
const NAME_AT = 6
const SEQ_AT = NAME_AT + NAME_BYTES_MAX + 2 // 72, 8-aligned
const EPOCH_AT = SEQ_AT + 8
const BLOCK_AT = EPOCH_AT + 8
const VALUE_AT = BLOCK_AT + 8
const FILL_AT = VALUE_AT + 4
const CHECKSUM_BYTES = 32
/** The smallest block a record fits in (header + some fill + checksum). */
export const DISK_RECORD_BLOCK_BYTES_MIN = 512

export interface DiskWriteRecord {
  vm: string
  /** The writer's sequence number: a newer write has a larger one. */
  seq: number
  /** The reservation epoch the write carried. */
  epoch: number
  block: number
  /** A u32 from guest memory or a seeded generator. */
  value: number
}

export type DecodedBlock = { kind: 'record'; record: DiskWriteRecord } | { kind: 'empty' } | { kind: 'foreign'; reason: string }

function checkBlockSize(block_size_bytes: number): void {
  if (!Number.isSafeInteger(block_size_bytes) || block_size_bytes < DISK_RECORD_BLOCK_BYTES_MIN || block_size_bytes % 8 !== 0) {
    throw new HvlabError(
      'HVLAB_E_USAGE',
      `a disk write record needs a block of at least ${DISK_RECORD_BLOCK_BYTES_MIN} bytes, a multiple of 8; got ${block_size_bytes}`,
    )
  }
}

function fill(out: Uint8Array, seq: number, value: number, end: number): void {
  const next = mulberry32((seq * 2654435761) ^ value)
  for (let i = FILL_AT; i < end; i += 4) {
    const v = (next() * 4294967296) >>> 0
    out[i] = v & 0xff
    if (i + 1 < end) out[i + 1] = (v >>> 8) & 0xff
    if (i + 2 < end) out[i + 2] = (v >>> 16) & 0xff
    if (i + 3 < end) out[i + 3] = v >>> 24
  }
}

/** One block holding `r`. */
export function encodeDiskWrite(r: DiskWriteRecord, block_size_bytes: number): Buffer {
  checkBlockSize(block_size_bytes)
  const name = Buffer.from(r.vm, 'utf8')
  if (name.length < 1 || name.length > NAME_BYTES_MAX)
    throw new HvlabError('HVLAB_E_USAGE', `vm name ${JSON.stringify(r.vm)} must be 1–${NAME_BYTES_MAX} bytes for a disk write record`)
  for (const [what, v] of [
    ['seq', r.seq],
    ['epoch', r.epoch],
    ['block', r.block],
  ] as const) {
    if (!Number.isSafeInteger(v) || v < 0)
      throw new HvlabError('HVLAB_E_INTERNAL', `disk write record: ${what} ${v} is not a non-negative integer`)
  }
  const out = Buffer.alloc(block_size_bytes)
  out.writeUInt32BE(MAGIC, 0)
  out[4] = FORMAT
  out[5] = name.length
  name.copy(out, NAME_AT)
  out.writeBigUInt64BE(BigInt(r.seq), SEQ_AT)
  out.writeBigUInt64BE(BigInt(r.epoch), EPOCH_AT)
  out.writeBigUInt64BE(BigInt(r.block), BLOCK_AT)
  out.writeUInt32BE(r.value >>> 0, VALUE_AT)
  const end = block_size_bytes - CHECKSUM_BYTES
  fill(out, r.seq, r.value >>> 0, end)
  createHash('sha256').update(out.subarray(0, end)).digest().copy(out, end)
  return out
}

/** What a block holds: a disk write record, zeros, or something else (torn, foreign). */
export function decodeDiskWrite(data: Uint8Array): DecodedBlock {
  const b = Buffer.from(data.buffer, data.byteOffset, data.byteLength)
  if (b.length < DISK_RECORD_BLOCK_BYTES_MIN) return { kind: 'foreign', reason: `block of ${b.length} bytes is too small` }
  if (b.every((x) => x === 0)) return { kind: 'empty' }
  if (b.readUInt32BE(0) !== MAGIC || b[4] !== FORMAT) return { kind: 'foreign', reason: 'no disk write record header' }
  const end = b.length - CHECKSUM_BYTES
  if (!createHash('sha256').update(b.subarray(0, end)).digest().equals(b.subarray(end)))
    return { kind: 'foreign', reason: 'checksum mismatch (torn or altered block)' }
  const name_len = b[5] ?? 0
  if (name_len < 1 || name_len > NAME_BYTES_MAX) return { kind: 'foreign', reason: `bad name length ${name_len}` }
  const record: DiskWriteRecord = {
    vm: b.toString('utf8', NAME_AT, NAME_AT + name_len),
    seq: Number(b.readBigUInt64BE(SEQ_AT)),
    epoch: Number(b.readBigUInt64BE(EPOCH_AT)),
    block: Number(b.readBigUInt64BE(BLOCK_AT)),
    value: b.readUInt32BE(VALUE_AT),
  }
  return { kind: 'record', record }
}

/**
 * The seq after the newest write of `vm` that `blocks` hold (0: none): a VM started on a
 * disk holding its earlier writes (a replica after a failover) goes on past them, so no write
 * of the new run has the seq, and so the bytes, of one before.
 */
export function nextWriteSeq(vm: string, blocks: Iterable<Uint8Array>): number {
  let next = 0
  for (const data of blocks) {
    const d = decodeDiskWrite(data)
    if (d.kind === 'record' && d.record.vm === vm) next = Math.max(next, d.record.seq + 1)
  }
  return next
}

export interface AckedWritesCheck {
  vm: string
  /** Acknowledged writes (any order, any subset, e.g. the writer's bounded history). */
  acked: readonly DiskWriteRecord[]
  /** The highest seq the writer ever issued (acked or not); null if none. */
  issued_through_seq: number | null
}

/**
 * Problems found (empty = consistent). `readBlock(block)` gives the block's content now.
 * For each block with acknowledged writes: it must hold this VM's record for that block
 * with a seq at least the newest acked one (equal → same epoch and value), and never a
 * seq above `issued_through_seq` (that would be an invented write).
 */
export async function checkAckedWrites(check: AckedWritesCheck, readBlock: (block: number) => Promise<Uint8Array>): Promise<string[]> {
  const newest = new Map<number, DiskWriteRecord>()
  for (const a of check.acked) {
    const have = newest.get(a.block)
    if (!have || a.seq > have.seq) newest.set(a.block, a)
  }
  const problems: string[] = []
  for (const [block, want] of [...newest].sort((x, y) => x[0] - y[0])) {
    const got = decodeDiskWrite(await readBlock(block))
    if (got.kind !== 'record') {
      problems.push(`block ${block}: acked write seq ${want.seq} is missing (block is ${got.kind === 'empty' ? 'all zeros' : got.reason})`)
      continue
    }
    const r = got.record
    if (r.vm !== check.vm || r.block !== block)
      problems.push(`block ${block}: holds vm ${r.vm}'s write for block ${r.block}, expected vm ${check.vm}'s`)
    else if (r.seq < want.seq)
      problems.push(`block ${block}: holds seq ${r.seq}, older than acked seq ${want.seq} (an acknowledged write was lost)`)
    else if (check.issued_through_seq === null || r.seq > check.issued_through_seq)
      problems.push(
        `block ${block}: holds seq ${r.seq}, which the writer never issued (highest issued ${check.issued_through_seq ?? 'none'})`,
      )
    else if (r.seq === want.seq && (r.epoch !== want.epoch || r.value !== want.value))
      problems.push(
        `block ${block}: seq ${r.seq} has epoch ${r.epoch} value ${r.value}, acked with epoch ${want.epoch} value ${want.value}`,
      )
  }
  return problems
}
