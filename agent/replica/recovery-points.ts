/**
 * A replica's recovery points (seed 002: "X historical copies … Hyper-V snapshots on the
 * destination copy of the VM that are automatically created and merged"), PURE. A point is
 * the replica disk as it was after a cycle was applied. Each point keeps, copy-on-write,
 * what the blocks overwritten after it held (its undo log): the first overwrite of a block
 * after the point saves the old content, later ones save nothing. To return the disk to a
 * point, each block changed since gets the content of the first undo log after the point
 * that holds it. When there are more points than allowed the oldest is merged away: its
 * undo log is dropped, which no later point needs.
 */
import { HvlabError } from '../../shared/errors.js'

import { RECOVERY_POINTS_MAX } from '../../shared/protocol/replica-messages.js'

/** Replica keeps up to 24 recovery points (hourly, a day's worth). */
export { RECOVERY_POINTS_MAX }

export interface RecoveryPoint {
  /** The cycle applied when it was taken. */
  readonly cycle: number
  readonly at_ms: number
  /** Taken from a shipment whose log the guest had quiesced (a VSS snapshot), not just crash-consistent. */
  readonly app_consistent: boolean
}

interface Kept extends RecoveryPoint {
  /** Block → its content at this point, for the blocks overwritten since (until the next point). */
  readonly undo: Map<number, Uint8Array>
}

export class RecoveryPoints {
  private readonly points: Kept[] = []

  constructor(private readonly max_points: number = RECOVERY_POINTS_MAX) {
    if (!Number.isSafeInteger(max_points) || max_points < 0 || max_points > RECOVERY_POINTS_MAX)
      throw new HvlabError('HVLAB_E_USAGE', `recovery points must be a whole number from 0 to ${RECOVERY_POINTS_MAX}, got ${max_points}`)
  }

  /** A new point of the disk as it is now; the oldest beyond the limit is merged away. */
  take(point: RecoveryPoint): void {
    const last = this.points.at(-1)
    if (last !== undefined && point.cycle <= last.cycle)
      throw new HvlabError('HVLAB_E_INTERNAL', `recovery point at cycle ${point.cycle} is not after the last one (cycle ${last.cycle})`)
    if (this.max_points === 0) return
    this.points.push({ ...point, undo: new Map() })
    while (this.points.length > this.max_points) this.points.shift()
  }

  /** Call before the replica overwrites `block` (holding `current`): the newest point keeps its old content once. */
  beforeWrite(block: number, current: Uint8Array): void {
    const newest = this.points.at(-1)
    if (newest !== undefined && !newest.undo.has(block)) newest.undo.set(block, Uint8Array.from(current))
  }

  list(): RecoveryPoint[] {
    return this.points.map(({ undo: _undo, ...p }) => p)
  }

  /** The newest point taken at or before `at_ms` (undefined: none). */
  atOrBefore(at_ms: number): RecoveryPoint | undefined {
    return this.list()
      .filter((p) => p.at_ms <= at_ms)
      .at(-1)
  }

  /** What to write back to return the disk to the point of `cycle`: each block changed since, with its content then. */
  revertTo(cycle: number): Map<number, Uint8Array> {
    const from = this.points.findIndex((p) => p.cycle === cycle)
    if (from < 0)
      throw new HvlabError(
        'HVLAB_E_NOT_FOUND',
        `no recovery point at cycle ${cycle}; the replica has ${this.points.map((p) => p.cycle).join(', ') || 'none'}`,
      )
    const out = new Map<number, Uint8Array>()
    for (const p of this.points.slice(from)) for (const [block, data] of p.undo) if (!out.has(block)) out.set(block, data)
    return out
  }

  /** Forgets every point (a resync makes them meaningless, seed: "recovery points are cleared"). */
  clear(): void {
    this.points.length = 0
  }
}
