/**
 * What a replica server does with a log shipment that arrives for a VM (PURE): the replica
 * is crash-consistent only if shipments are applied whole and in cycle order, so each is
 * judged before a byte of it is written.
 *
 *   the next cycle, well formed                  → apply
 *   a cycle already applied (a replay)           → ignore: the replica is unharmed
 *   a later cycle (one is missing)               → refuse; the VM needs a resync
 *   closed after the replica's now + clock skew  → refuse (a log from the future)
 *   another VM's, blocks out of order or outside
 *   the disk, a block of the wrong size          → refuse (corrupt or truncated)
 */
import type { ShipmentRefusal } from '../../shared/protocol/replica-messages.js'
import type { LogShipment } from './replica-log.js'

export type { ShipmentRefusal }

export type ShipmentVerdict =
  | { readonly action: 'apply' }
  | { readonly action: 'ignore' | 'refuse'; readonly refusal: ShipmentRefusal; readonly resync: boolean; readonly reason: string }

export interface ReplicaState {
  readonly vm: string
  /** The last cycle applied (0: only the initial replication). */
  readonly applied_cycle: number
  readonly disk_blocks: number
  readonly block_size_bytes: number
}

export function judgeShipment(
  s: Pick<LogShipment, 'vm' | 'cycle' | 'closed_at_ms' | 'blocks'>,
  r: ReplicaState,
  now_ms: number,
  clock_skew_ms: number,
): ShipmentVerdict {
  const refuse = (refusal: ShipmentRefusal, reason: string, resync = false): ShipmentVerdict => ({
    action: refusal === 'replayed' ? 'ignore' : 'refuse',
    refusal,
    resync,
    reason,
  })
  if (s.vm !== r.vm) return refuse('wrong-vm', `a shipment of vm ${s.vm} sent for the replica of vm ${r.vm}`)
  const malformed = malformedBlock(s.blocks, r)
  if (malformed !== null) return refuse('malformed', `shipment ${s.cycle} of vm ${r.vm}: ${malformed}; nothing of it was applied`)
  if (s.closed_at_ms > now_ms + clock_skew_ms)
    return refuse(
      'from-future',
      `shipment ${s.cycle} of vm ${r.vm} was closed ${Math.round(s.closed_at_ms - now_ms)} ms in this server's future`,
    )
  if (s.cycle <= r.applied_cycle)
    return refuse('replayed', `shipment ${s.cycle} of vm ${r.vm} was already applied (last ${r.applied_cycle})`)
  if (s.cycle > r.applied_cycle + 1)
    return refuse(
      'cycle-gap',
      `shipment ${s.cycle} of vm ${r.vm} arrived after ${r.applied_cycle}: cycles are missing, so the replica needs a resync`,
      true,
    )
  return { action: 'apply' }
}

/** Why the blocks cannot be a closed log of this disk (null: they can): strictly increasing, on the disk, whole blocks. */
function malformedBlock(blocks: LogShipment['blocks'], r: ReplicaState): string | null {
  let previous = -1
  for (const b of blocks) {
    if (!Number.isSafeInteger(b.block) || b.block <= previous) return `block ${b.block} is out of order or repeated`
    if (b.block >= r.disk_blocks) return `block ${b.block} is outside the disk's ${r.disk_blocks} blocks`
    if (b.data.length !== r.block_size_bytes) return `block ${b.block} holds ${b.data.length} bytes, not ${r.block_size_bytes} (truncated?)`
    previous = b.block
  }
  return null
}
