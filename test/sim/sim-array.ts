/**
 * A simulated storage array for the role simulation: one reservation per volume, decided
 * by the array's real rule (array-emulator/fencing.ts `fenceDecision`), and a log of every
 * decision. Every running VM writes its volume with its host's current cluster epoch; the
 * check below is independent of `fenceDecision`, so a fencing rule that let a stale
 * (zombie) writer through would be caught.
 */
import { fenceDecision, type FenceDecision, type Reservation } from '../../array-emulator/fencing.js'

export interface WriteRecord {
  at_ms: number
  volume: string
  host: string
  epoch: number
  decision: FenceDecision
  /** The writer held no quorum lease (it runs the VM only within its no-quorum grace). */
  zombie: boolean
}

export interface ArrayStats {
  writes: number
  refused: number
  zombie_writes: number
  zombie_refused: number
}

/** Refused writes kept for a failing seed's report. */
const REFUSALS_KEPT_MAX = 16

export class SimArray {
  private readonly reservations = new Map<string, Reservation>()
  /** The newest epoch this checker saw accepted per volume (kept apart from the fence table). */
  private readonly newest_accepted = new Map<string, { epoch: number; host: string }>()
  readonly refusals: WriteRecord[] = []
  readonly stats: ArrayStats = { writes: 0, refused: 0, zombie_writes: 0, zombie_refused: 0 }
  /** The decision rule; a test may swap in a broken one to show the check catches it. */
  decide: (current: Reservation | undefined, epoch: number) => FenceDecision = fenceDecision

  /** A write by `host` at `epoch`; returns a description of a violation, or null. */
  write(at_ms: number, volume: string, host: string, epoch: number, zombie: boolean): string | null {
    const current = this.reservations.get(volume)
    const decision = this.decide(current, epoch)
    this.stats.writes++
    if (zombie) this.stats.zombie_writes++
    if (decision === 'raise') this.reservations.set(volume, { epoch, host })
    if (decision === 'refuse') {
      this.stats.refused++
      if (zombie) this.stats.zombie_refused++
      if (this.refusals.length < REFUSALS_KEPT_MAX) this.refusals.push({ at_ms, volume, host, epoch, decision, zombie })
      return null
    }
    const newest = this.newest_accepted.get(volume)
    if (newest !== undefined && epoch < newest.epoch) {
      return `array accepted a stale write at ${at_ms.toFixed(0)} ms: volume ${volume} by ${host}${zombie ? ' (a zombie: no quorum lease)' : ''} at epoch ${epoch}, after ${newest.host}'s write at epoch ${newest.epoch}`
    }
    if (newest === undefined || epoch > newest.epoch) this.newest_accepted.set(volume, { epoch, host })
    return null
  }

  reservation(volume: string): Reservation | undefined {
    return this.reservations.get(volume)
  }
}
