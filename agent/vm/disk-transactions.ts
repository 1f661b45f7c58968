/**
 * The guest application's transactions on its disk (vm-disk.ts), PURE: transaction k is
 * two block writes, its data (seq 2k) then its commit record (seq 2k + 1), each to the
 * block `seq % area_blocks` of the writer's ring. A disk image holds a torn transaction when
 * one of the two is on it and the other is not yet: the other's block still holds an older
 * write. (A newer one there means the other half was written and overwritten since, by a
 * later transaction.) A crash-consistent copy may hold one, the writes in flight when it
 * was cut; an application-consistent one (the guest quiesced) never does.
 */
import { decodeDiskWrite } from './disk-write-record.js'

export interface TornTransaction {
  /** The transaction (its data is seq 2k, its commit record 2k + 1). */
  readonly transaction: number
  /** The half on the disk, and the one missing. */
  readonly present_seq: number
  readonly missing_seq: number
}

/** The seq each block of the writer's ring holds (`vm`'s records only; an empty or foreign block holds none). */
export function seqsOnDisk(image: Uint8Array, block_size_bytes: number, vm: string, area_blocks: number): Map<number, number> {
  const seqs = new Map<number, number>()
  for (let block = 0; block < area_blocks && (block + 1) * block_size_bytes <= image.length; block++) {
    const got = decodeDiskWrite(image.subarray(block * block_size_bytes, (block + 1) * block_size_bytes))
    if (got.kind === 'record' && got.record.vm === vm && got.record.block === block) seqs.set(block, got.record.seq)
  }
  return seqs
}

/** The torn transactions among `seqs` (block → the seq it holds), oldest first. */
export function tornTransactions(seqs: ReadonlyMap<number, number>, area_blocks: number): TornTransaction[] {
  const torn: TornTransaction[] = []
  for (const seq of seqs.values()) {
    const partner = seq % 2 === 0 ? seq + 1 : seq - 1
    const held = seqs.get(partner % area_blocks) ?? -1
    if (held < partner) torn.push({ transaction: Math.floor(seq / 2), present_seq: seq, missing_seq: partner })
  }
  return torn.sort((a, b) => a.transaction - b.transaction)
}
