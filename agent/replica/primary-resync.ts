/**
 * The primary's side of a resync (seed 002: "compares the source and the target … and
 * sends only the differences"), also the initial replication over the network: for each
 * stretch of the disk, the replica's block hashes come back, the primary reads the same
 * blocks from its own disk, and only the blocks whose hash differs travel. The last step
 * tells the replica which cycle comes next. Writes that land meanwhile are in the VM's
 * log (replica-sender.ts), so the first cycle after the resync brings the replica level.
 */
import { createHash } from 'node:crypto'
import { HvlabError } from '../../shared/errors.js'
import type { Message } from '../../shared/protocol/messages.js'
import { HASHES_PER_REQUEST_MAX, SHIPMENT_PART_BODY_BYTES_MAX } from '../../shared/protocol/replica-messages.js'
import type { ShippedBlock } from './replica-log.js'
import { blocksPerPart, encodeBody } from './shipment-frames.js'
import type { PartRequester } from './shipment-sender.js'

/** The primary VM's disks as the resync reads them: one block space (disk-set.ts). */
export interface PrimaryDisk {
  readonly block_size_bytes: number
  /** Blocks of every disk together. */
  readonly blocks: number
  /** How many disks those blocks are, of blocks / disks each (absent: 1). */
  readonly disks?: number
  /** The stretches a resync compares (the disks that replicate: disk-set.ts); absent: every block. */
  readonly ranges?: readonly { readonly first: number; readonly blocks: number }[]
  /** `blocks` blocks from `first`, read from where the VM's disk is now. */
  read(first: number, blocks: number): Promise<Uint8Array>
}

/** Blocks read from the primary's disk at once (an array reads at most 256 per request). */
export const RESYNC_READ_BLOCKS = 256

export interface ResyncResult {
  readonly blocks_compared: number
  readonly blocks_sent: number
}

export async function resyncReplica(
  conn: PartRequester,
  disk: PrimaryDisk,
  o: { readonly vm: string; readonly next_cycle: number; readonly timeout_ms: number },
): Promise<ResyncResult> {
  const stretch = Math.min(HASHES_PER_REQUEST_MAX, blocksPerPart(disk.block_size_bytes, SHIPMENT_PART_BODY_BYTES_MAX))
  let sent = 0
  let compared = 0
  for (const range of disk.ranges ?? [{ first: 0, blocks: disk.blocks }]) {
    const end = range.first + range.blocks
    for (let first = range.first; first < end; first += stretch) {
      const count = Math.min(stretch, end - first)
      const theirs = await replicaHashes(conn, o.vm, first, count, o.timeout_ms)
      const differing = await differingBlocks(disk, first, count, theirs)
      if (differing.length > 0) await sendBlocks(conn, o.vm, differing, disk.block_size_bytes, o.timeout_ms)
      sent += differing.length
    }
    compared += range.blocks
  }
  await expect(conn.request({ t: 'replica-resync-done', vm: o.vm, next_cycle: o.next_cycle }, { timeout_ms: o.timeout_ms }), 'ok')
  return { blocks_compared: compared, blocks_sent: sent }
}

async function replicaHashes(conn: PartRequester, vm: string, first: number, count: number, timeout_ms: number): Promise<Uint8Array> {
  const reply = await conn.request({ t: 'replica-hashes-request', vm, first_block: first, blocks: count }, { timeout_ms })
  const { message: m, attachment } = reply
  if (m.t !== 'replica-hashes-reply' || m.first_block !== first || m.blocks !== count || attachment?.length !== count * 32)
    throw new HvlabError(
      'HVLAB_E_PROTOCOL',
      `the replica server answered the hashes of vm ${vm}'s blocks ${first}+${count} with something else`,
    )
  return attachment
}

/** The primary's blocks `first … first + count - 1` whose SHA-256 is not the replica's. */
export async function differingBlocks(disk: PrimaryDisk, first: number, count: number, theirs: Uint8Array): Promise<ShippedBlock[]> {
  const out: ShippedBlock[] = []
  const bs = disk.block_size_bytes
  for (let at = 0; at < count; at += RESYNC_READ_BLOCKS) {
    const n = Math.min(RESYNC_READ_BLOCKS, count - at)
    const data = await disk.read(first + at, n)
    if (data.length !== n * bs) throw new HvlabError('HVLAB_E_PROTOCOL', `a read of ${n} blocks returned ${data.length} bytes`)
    for (let i = 0; i < n; i++) {
      const block = data.subarray(i * bs, (i + 1) * bs)
      const mine = createHash('sha256').update(block).digest()
      if (!mine.equals(theirs.subarray((at + i) * 32, (at + i + 1) * 32))) out.push({ block: first + at + i, data: block.slice() })
    }
  }
  return out
}

async function sendBlocks(
  conn: PartRequester,
  vm: string,
  blocks: readonly ShippedBlock[],
  block_size_bytes: number,
  timeout_ms: number,
): Promise<void> {
  const per = blocksPerPart(block_size_bytes, SHIPMENT_PART_BODY_BYTES_MAX)
  for (let i = 0; i < blocks.length; i += per) {
    const body = encodeBody(blocks.slice(i, i + per), block_size_bytes)
    await expect(conn.request({ t: 'replica-resync-blocks', vm, body_bytes: body.length }, { attachment: body, timeout_ms }), 'ok')
  }
}

async function expect(reply: Promise<{ message: Message }>, t: Message['t']): Promise<void> {
  const m = (await reply).message
  if (m.t !== t) throw new HvlabError('HVLAB_E_PROTOCOL', `the replica server answered with ${m.t}, not ${t}`)
}
