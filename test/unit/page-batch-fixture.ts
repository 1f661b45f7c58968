/**
 * The sample destination memory and page batch the page-batch and page-apply tests share.
 */
import { GuestMemory } from '../../agent/vm/guest-memory.js'
import { PageBatchBuilder } from '../../agent/migration/page-batch.js'
import { encodeDeltaToBytes } from '../../agent/migration/page-delta.js'
import { PAGE_SIZE_BYTES } from '../../shared/protocol/page-size.js'

/** Four pages: 0x11…, 0x22…, 0x33…, zeros. */
export function destination(): GuestMemory {
  const m = GuestMemory.create(4)
  m.pageView(0).fill(0x11)
  m.pageView(1).fill(0x22)
  m.pageView(2).fill(0x33)
  return m
}

/** Three entries: page 0 zeroed, page 1 by a delta (two bytes changed), page 2 whole. */
export function sampleBatch(): { batch: Uint8Array; page1: Uint8Array; page2: Uint8Array } {
  const b = new PageBatchBuilder(8)
  b.addZero(0)
  const page1 = new Uint8Array(PAGE_SIZE_BYTES).fill(0x22)
  page1[100] = 0xee
  page1[4000] = 0xdd
  b.addDelta(1, encodeDeltaToBytes(new Uint8Array(PAGE_SIZE_BYTES).fill(0x22), page1) as Uint8Array)
  const page2 = Uint8Array.from({ length: PAGE_SIZE_BYTES }, (_, i) => i & 0xff)
  b.addFull(2, page2)
  return { batch: b.finish(), page1, page2 }
}
