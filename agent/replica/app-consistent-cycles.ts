/**
 * Which of a VM's replication cycles are application-consistent, and the quiesce of its
 * guest for one (seed 002: "Enable VSS once per hour: for apps requiring consistency"),
 * PURE: times come in, nothing here reads a clock.
 *
 * Every `every_ms` (`replica enable --app-consistent-every-h N`: N times the replica's
 * recovery-point interval, an hour scaled by the lab's timeScale) the next cycle is
 * application-consistent, as a VSS snapshot makes it: before its log closes the primary asks
 * the guest's integration service to quiesce (its application finishes the transaction it
 * has open and holds new ones), the log closes the instant the guest answers, then the
 * guest resumes. The first cycle after replication begins is one; the next is due
 * `every_ms` after that one was asked for, whatever became of it.
 *
 * A guest that does not answer within `timeout_ms` (hung, paused, its writes stuck) holds
 * nothing up: the cycle closes crash-consistent at the timeout (the shell says so on the
 * timeline), and an answer after it is ignored. An answer names the cycle it was asked for,
 * so a late one is never taken for a later ask. Waits are told in whole ms (a host's clock
 * has fractions; the timeline takes whole ones).
 */
import { HvlabError } from '../../shared/errors.js'

export interface AppConsistentOptions {
  /** How often a cycle is application-consistent. */
  readonly every_ms: number
  /** How long the guest may take to quiesce before the cycle closes crash-consistent. */
  readonly timeout_ms: number
}

/** How long a guest may take to quiesce: VSS's freeze window (10 s), and never more than half a cycle. */
export const QUIESCE_TIMEOUT_MS = 10_000

/**
 * The options for a point every `every_h` hours, a recovery point being taken every
 * `point_every_ms` and a cycle every `frequency_ms` (both as the lab runs them); undefined
 * when `every_h` is (no application-consistent points).
 */
export function appConsistentOptions(
  every_h: number | undefined,
  point_every_ms: number,
  frequency_ms: number,
): AppConsistentOptions | undefined {
  if (every_h === undefined) return undefined
  return { every_ms: every_h * point_every_ms, timeout_ms: Math.max(1, Math.min(QUIESCE_TIMEOUT_MS, Math.floor(frequency_ms / 2))) }
}

/** What to do with the cycle that comes now: close its log at once, or ask the guest to quiesce first. */
export type CycleStart = { readonly action: 'close' } | { readonly action: 'quiesce'; readonly deadline_ms: number }

export class AppConsistentCycles {
  private next_due_ms: number
  private asked: { readonly cycle: number; readonly since_ms: number } | null = null

  /** Replication begins at `now_ms`: its first cycle is application-consistent. */
  constructor(
    private readonly o: AppConsistentOptions,
    now_ms: number,
  ) {
    if (!(o.every_ms > 0) || !(o.timeout_ms > 0))
      throw new HvlabError(
        'HVLAB_E_INTERNAL',
        `application-consistent cycles need every_ms and timeout_ms above 0, got ${o.every_ms}, ${o.timeout_ms}`,
      )
    this.next_due_ms = now_ms
  }

  /** The cycle asked for, while the guest is asked to quiesce (null: none). */
  get askedCycle(): number | null {
    return this.asked?.cycle ?? null
  }

  /** When the ask under way times out (null: none). */
  get deadlineMs(): number | null {
    return this.asked === null ? null : this.asked.since_ms + this.o.timeout_ms
  }

  /** Cycle `cycle` comes at `now_ms`: quiesce the guest first when one is due, else close it now. */
  atCycle(cycle: number, now_ms: number): CycleStart {
    if (this.asked !== null || now_ms < this.next_due_ms) return { action: 'close' }
    this.asked = { cycle, since_ms: now_ms }
    this.next_due_ms = now_ms + this.o.every_ms
    return { action: 'quiesce', deadline_ms: now_ms + this.o.timeout_ms }
  }

  /** The guest quiesced for `cycle`: how long it took when the cycle closes application-consistent now; null: not asked, or too late. */
  answered(cycle: number, now_ms: number): { readonly waited_ms: number } | null {
    if (this.asked === null || this.asked.cycle !== cycle || now_ms >= this.deadlineMs!) return null
    const waited_ms = Math.round(now_ms - this.asked.since_ms)
    this.asked = null
    return { waited_ms }
  }

  /** At `now_ms`: the ask that timed out (its cycle closes crash-consistent now, the guest resumes), or null. */
  timedOut(now_ms: number): { readonly cycle: number; readonly waited_ms: number } | null {
    if (this.asked === null || now_ms < this.deadlineMs!) return null
    const { cycle, since_ms } = this.asked
    this.asked = null
    return { cycle, waited_ms: Math.round(now_ms - since_ms) }
  }

  /** Drops the ask under way (a resync or a flush closes the log otherwise); the cycle asked for, or null. */
  cancel(): number | null {
    const cycle = this.askedCycle
    this.asked = null
    return cycle
  }
}
