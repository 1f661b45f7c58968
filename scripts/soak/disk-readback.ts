/**
 * The disk half of a soak's history: the hosts' disk write journals (every guest write,
 * issued and then acknowledged, refused or failed; agent/vm/disk-write-journal.ts), and,
 * once the writers are stopped, the sha256 of every block each VM wrote, read from the
 * array its disk is on (the copy the VM writes to: the primary of its group).
 */
import { readFileSync } from 'node:fs'
import { parseDiskJournalLine } from '../../shared/disk-journal-format.js'
import { labLayout } from '../../shared/lab-layout.js'
import { BLOCKS_PER_IO_MAX } from '../../shared/protocol/storage-limits.js'
import type { Topology } from '../../shared/topology.js'
import { csvListing } from '../cli/csv-commands.js'
import { vmInspectNow } from '../cli/vm-queries.js'
import type { CsvInfo } from '../../shared/protocol/csv-messages.js'
import type { VmDiskCountersMessage } from '../../shared/protocol/cluster-messages.js'
import type { MessageOf } from '../../shared/protocol/messages.js'
import { vmDiskRegion } from '../../agent/clx/vm-storage.js'
import type { RecordOf } from './history.js'
import { largest } from './stats.js'
import type { SoakLab } from './soak-lab.js'

type DiskRecord = RecordOf<'disk-issued'> | RecordOf<'disk-done'>

const DIGEST_TIMEOUT_MS = 30_000
const DRAIN_WAIT_MS = 30_000

/** Every line of every host's journal, as history records; a line that is not whole (cut by a kill) is skipped. */
export function collectDiskJournals(dir: string, topology: Topology): DiskRecord[] {
  const out: DiskRecord[] = []
  for (const h of topology.hosts) {
    let text = ''
    try {
      text = readFileSync(labLayout(dir).diskWriteJournal(h.name), 'utf8')
    } catch {
      continue // a host that never wrote
    }
    for (const line of text.split('\n')) {
      const j = line.length > 0 ? parseDiskJournalLine(line) : null
      if (j === null) continue
      if (j.t === 'issued') out.push({ ...j, t: 'disk-issued' })
      else
        out.push({
          t: 'disk-done',
          vm: j.vm,
          host: j.host,
          epoch: j.epoch,
          seq: j.seq,
          block: j.block,
          ...(j.disk === undefined ? {} : { disk: j.disk }),
          outcome: j.t,
          code: j.code,
          at_ms: j.at_ms,
        })
    }
  }
  return out
}

/** Stops each VM's disk writers and waits until none of their writes is in flight. */
export async function stopDiskWriters(lab: SoakLab, vms: readonly string[]): Promise<void> {
  for (const vm of vms) await lab.cli('vm', 'load', vm, '--disk-iops', '0')
  const deadline = Date.now() + DRAIN_WAIT_MS
  for (const vm of vms) {
    while (Date.now() < deadline) {
      const r = await vmInspectNow(lab.control(), vm).catch(() => null)
      if (!r || vmDisks(r).every((d) => d.in_flight === 0)) break
      await new Promise((res) => setTimeout(res, 100))
    }
  }
}

/** A VM's disk writers as `vm inspect` shows them, disk 0 first (none when no disk is attached). */
function vmDisks(r: Pick<MessageOf<'vm-inspect-reply'>, 'disk' | 'data_disks'>): VmDiskCountersMessage[] {
  return r.disk == null ? [] : [r.disk, ...(r.data_disks ?? [])]
}

/**
 * The digest of every block each disk of each VM wrote, from the array that disk is on now
 * (for a disk on a Cluster Shared Volume, its region of the CSV's volume); a VM not running
 * now is skipped (the checker reports it unrecovered). Blocks are the disk's own numbers, as
 * in the journal.
 */
export async function finalBlocks(lab: SoakLab, vms: readonly string[], journal: readonly DiskRecord[]): Promise<RecordOf<'disk-final'>[]> {
  const out: RecordOf<'disk-final'>[] = []
  const csvs = (await csvListing(lab.control())).csvs
  for (const vm of vms) {
    const inspected = await vmInspectNow(lab.control(), vm).catch(() => null)
    for (const [disk, at] of (inspected === null ? [] : vmDisks(inspected)).entries())
      out.push(
        ...(await diskFinalBlocks(lab, vm, disk, at, regionStart(csvs, at, vmDiskRegion(vm, disk)), blocksWritten(journal, vm, disk))),
      )
  }
  return out
}

/** The digests of the first `blocks` blocks of disk `disk` of `vm`, `first` on its volume. */
async function diskFinalBlocks(
  lab: SoakLab,
  vm: string,
  disk: number,
  at: { array: string; volume: string },
  first: number,
  blocks: number,
): Promise<RecordOf<'disk-final'>[]> {
  const out: RecordOf<'disk-final'>[] = []
  for (let block = 0; block < blocks; block += BLOCKS_PER_IO_MAX) {
    const count = Math.min(BLOCKS_PER_IO_MAX, blocks - block)
    const request = { t: 'block-digest-request', volume: at.volume, block: first + block, blocks: count } as const
    const r = await lab.control().request(at.array, request, 'block-digest', DIGEST_TIMEOUT_MS)
    for (const [i, sha256] of (r.block_sha256 ?? []).entries())
      out.push({ t: 'disk-final', vm, ...(disk === 0 ? {} : { disk }), array: at.array, volume: at.volume, block: block + i, sha256 })
  }
  return out
}

/** How many blocks from block 0 cover every block the journals say disk `disk` of `vm` wrote. */
export function blocksWritten(journal: readonly DiskRecord[], vm: string, disk = 0): number {
  return largest(
    journal.flatMap((j) => (j.t === 'disk-issued' && j.vm === vm && (j.disk ?? 0) === disk ? [j.block + 1] : [])),
    0,
  )
}

/** Where a VM disk's block 0 is on its volume: the first block of its region (`region`) when the volume is a CSV's, else 0. */
export function regionStart(csvs: readonly CsvInfo[], disk: { array: string; volume: string }, region: string): number {
  const csv = csvs.find((c) => c.array === disk.array && c.volume === disk.volume)
  return csv?.regions.find((r) => r.region === region)?.offset_block ?? 0
}
