/**
 * A replica's recovery points (seed 002: "X historical copies … Hyper-V snapshots on the
 * destination copy of the VM that are automatically created and merged"), PURE. A point is
 * the replica disk as it was after a cycle was applied. Each point keeps, copy-on-write,
 * what the blocks overwritten after it held (its undo log): the first overwrite of a block
 * after the point saves the old content, later ones save nothing. To return the disk to a
 * point, each block changed since gets the content of the first undo log after the point
 * that holds it. When there are more points than allowed the oldest is merged away: its
 * undo log is dropped, which no later point needs.
 *
 * The machine says what changed so that a shell can keep it durably
 * (recovery-point-files.ts): `beforeWrite` returns the undo entry it kept, `take` the
 * cycles merged away; `restore` starts from points read back.
 */
import { scaled } from '../../shared/clock.js'
import { HvlabError } from '../../shared/errors.js'

import { RECOVERY_POINTS_MAX, type RecoveryPointKind } from '../../shared/protocol/replica-messages.js'

/** Replica keeps up to 24 recovery points (hourly, a day's worth). */
export { RECOVERY_POINTS_MAX }

/** Replica takes a recovery point every hour (before the lab's timeScale). */
export const RECOVERY_POINT_EVERY_MS = 3_600_000

/** How often a replica server takes a point: hourly scaled by `time_scale`, or the topology's lab acceleration when set. */
export function recoveryPointEveryMs(time_scale: number, lab_every_ms?: number): number {
  return lab_every_ms ?? scaled(RECOVERY_POINT_EVERY_MS, time_scale)
}

export interface RecoveryPoint {
  /** The cycle applied when it was taken. */
  readonly cycle: number
  readonly at_ms: number
  /** `application`: taken from a shipment whose log closed while the guest was quiesced (a VSS snapshot); `crash`: as a crash would leave the disk. */
  readonly kind: RecoveryPointKind
}

export interface KeptPoint extends RecoveryPoint {
  /** Block → its content at this point, for the blocks overwritten since (until the next point). */
  readonly undo: Map<number, Uint8Array>
}

/** A block's content at the point of `cycle`, kept before its first overwrite since. */
export interface UndoEntry {
  readonly cycle: number
  readonly block: number
  readonly data: Uint8Array
}

/** What applying a shipment did to the recovery points (ReplicaReceiver), for the store to keep. */
export interface PointChanges {
  /** The undo entries kept while its blocks were written. */
  readonly undo: readonly UndoEntry[]
  /** The point taken after it (with this server's time), or null. */
  readonly taken: { readonly point: RecoveryPoint; readonly taken_ms: number } | null
  /** The cycles of the points merged away. */
  readonly merged: readonly number[]
}

export const NO_POINT_CHANGES: PointChanges = { undo: [], taken: null, merged: [] }

function checkPointsMax(max_points: number): void {
  if (!Number.isSafeInteger(max_points) || max_points < 0 || max_points > RECOVERY_POINTS_MAX)
    throw new HvlabError('HVLAB_E_USAGE', `recovery points must be a whole number from 0 to ${RECOVERY_POINTS_MAX}, got ${max_points}`)
}

export class RecoveryPoints {
  private readonly points: KeptPoint[] = []

  constructor(private max_points: number = RECOVERY_POINTS_MAX) {
    checkPointsMax(max_points)
  }

  /** Keep at most `max_points` from now on (`replica enable` again with another count); returns the cycles of the oldest merged away beyond it. */
  limit(max_points: number): number[] {
    checkPointsMax(max_points)
    this.max_points = max_points
    const merged: number[] = []
    while (this.points.length > max_points) merged.push(this.points.shift()!.cycle)
    return merged
  }

  /** Points read back (oldest first) with their undo logs; the cycles merged away beyond the limit. */
  restore(points: readonly KeptPoint[]): number[] {
    const merged: number[] = []
    for (const p of points) merged.push(...this.keep({ ...p, undo: new Map(p.undo) }))
    return merged
  }

  /** A new point of the disk as it is now; returns the cycles of the oldest merged away beyond the limit. */
  take(point: RecoveryPoint): number[] {
    return this.keep({ ...point, undo: new Map() })
  }

  private keep(point: KeptPoint): number[] {
    const last = this.points.at(-1)
    if (last !== undefined && point.cycle <= last.cycle)
      throw new HvlabError('HVLAB_E_INTERNAL', `recovery point at cycle ${point.cycle} is not after the last one (cycle ${last.cycle})`)
    if (this.max_points === 0) return [] // none kept
    this.points.push(point)
    const merged: number[] = []
    while (this.points.length > this.max_points) merged.push(this.points.shift()!.cycle)
    return merged
  }

  /**
   * Call before the replica overwrites `block` (holding `current`): the newest point keeps
   * its old content once. Returns the entry kept (null: none kept, no point or kept already).
   */
  beforeWrite(block: number, current: Uint8Array): UndoEntry | null {
    const newest = this.points.at(-1)
    if (newest === undefined || newest.undo.has(block)) return null
    const data = Uint8Array.from(current)
    newest.undo.set(block, data)
    return { cycle: newest.cycle, block, data }
  }

  list(): RecoveryPoint[] {
    return this.points.map(({ cycle, at_ms, kind }) => ({ cycle, at_ms, kind }))
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
