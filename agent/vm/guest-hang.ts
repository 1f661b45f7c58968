/**
 * Fault injection for a guest (`hvlab vm hang`): while hung, the guest's heartbeat stops
 * counting but the VM stays "running", as a real guest whose OS froze. A hang lasts
 * until released, or `for_ms` after it began; a restart of the VM (a new VmInstance)
 * clears it, as a reset clears a frozen guest. Pure: times are inputs.
 */
import { HvlabError } from '../../shared/errors.js'
import { GUEST_HANG_MS_MAX } from '../../shared/protocol/cluster-messages.js'

/** The longest timed hang (an hour); without `for_ms` a hang lasts until released or restarted. */
export { GUEST_HANG_MS_MAX }

export class GuestHang {
  /** When the hang ends: null = not hung, Infinity = until released. */
  private until_ms: number | null = null

  /** Hangs the guest from now_ms, for `for_ms` or (null) until released. */
  hang(now_ms: number, for_ms: number | null): void {
    if (for_ms !== null && (!Number.isInteger(for_ms) || for_ms < 1 || for_ms > GUEST_HANG_MS_MAX)) {
      throw new HvlabError(
        'HVLAB_E_USAGE',
        `a guest hang lasts 1 to ${GUEST_HANG_MS_MAX} ms, got ${for_ms}; leave --for-ms out to hang until released`,
      )
    }
    this.until_ms = for_ms === null ? Infinity : now_ms + for_ms
  }

  /** Ends the hang now; returns whether the guest was hung. */
  release(now_ms: number): boolean {
    const was = this.isHung(now_ms)
    this.until_ms = null
    return was
  }

  isHung(now_ms: number): boolean {
    if (this.until_ms === null) return false
    if (now_ms < this.until_ms) return true
    this.until_ms = null
    return false
  }

  /** Whether the guest is hung now, and until when (`until_ms` null: until released). */
  state(now_ms: number): { hung: boolean; until_ms: number | null } {
    if (!this.isHung(now_ms)) return { hung: false, until_ms: null }
    return { hung: true, until_ms: this.until_ms === Infinity ? null : this.until_ms }
  }
}
