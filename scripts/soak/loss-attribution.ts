/**
 * Which fault of a soak each lost acknowledged write goes to, for the report's per-fault
 * "bytes lost" (PURE). An acknowledged write can only be lost by something that happens at
 * or after its acknowledgement (a failover to a copy that lacks it), so the fault to blame
 * is the one in progress when it was acknowledged, or else the next one to start:
 *
 *   a lost write goes to the first fault (by start) not yet healed when it was acknowledged
 *   (start ≤ ack ≤ heal, or start > ack); a fault never healed stays open to the run's end.
 *
 * So a write acknowledged during a fault's hold is that fault's; one acknowledged in the
 * quiet after a heal is the next fault's (the one whose failover could take it). A loss
 * acknowledged after the last fault was healed is no fault's (the report's totals still
 * count it). Allowed losses and violations are counted apart.
 */

export interface FaultWindow {
  readonly id: number
  readonly start_ms: number
  /** null: never healed. */
  readonly heal_ms: number | null
}

export interface LostWrite {
  readonly acked_ms: number
  readonly bytes: number
  /** The configuration allows its loss (reported, no violation). */
  readonly allowed: boolean
}

export interface FaultLoss {
  writes_lost: number
  bytes_lost: number
  writes_lost_allowed: number
  bytes_lost_allowed: number
}

export const noLoss = (): FaultLoss => ({ writes_lost: 0, bytes_lost: 0, writes_lost_allowed: 0, bytes_lost_allowed: 0 })

/** The fault a write acknowledged at `acked_ms` goes to; null: every fault was healed before it. */
export function blamedFault(faults: readonly FaultWindow[], acked_ms: number): number | null {
  const open = faults.filter((f) => f.heal_ms === null || f.heal_ms >= acked_ms).sort((a, b) => a.start_ms - b.start_ms || a.id - b.id)
  return open[0]?.id ?? null
}

/** Each fault's losses (every fault id present, with zeros where none). */
export function lossByFault(faults: readonly FaultWindow[], lost: readonly LostWrite[]): Map<number, FaultLoss> {
  const out = new Map(faults.map((f) => [f.id, noLoss()]))
  for (const w of lost) {
    const id = blamedFault(faults, w.acked_ms)
    const loss = id === null ? undefined : out.get(id)
    if (loss === undefined) continue
    if (w.allowed) {
      loss.writes_lost_allowed++
      loss.bytes_lost_allowed += w.bytes
    } else {
      loss.writes_lost++
      loss.bytes_lost += w.bytes
    }
  }
  return out
}
