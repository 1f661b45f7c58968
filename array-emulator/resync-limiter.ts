/**
 * Bounds resync concurrency across all Remote Copy groups of one array: at most
 * `groups_max` groups run a resync/delta cycle at once; the others wait in arrival order
 * (first come, first served) and are granted a permit as one is given back. Pure: the
 * shell turns a grant into the group's `resync-permit` input.
 */
import { HvlabError } from '../shared/errors.js'

export const RESYNC_GROUPS_MAX_DEFAULT = 2
export const RESYNC_GROUPS_MAX_LIMIT = 256

export class ResyncLimiter {
  private readonly holders = new Set<string>()
  private readonly waiting: string[] = []

  constructor(readonly groups_max: number = RESYNC_GROUPS_MAX_DEFAULT) {
    if (!Number.isSafeInteger(groups_max) || groups_max < 1 || groups_max > RESYNC_GROUPS_MAX_LIMIT) {
      throw new HvlabError(
        'HVLAB_E_USAGE',
        `resync concurrency must be an integer from 1 to ${RESYNC_GROUPS_MAX_LIMIT} groups, got ${String(groups_max)}`,
      )
    }
  }

  /** True when `group` may resync now; else it waits for a later grant (asking twice is asking once). */
  request(group: string): boolean {
    if (this.holders.has(group)) return true
    if (this.holders.size < this.groups_max && this.waiting.length === 0) {
      this.holders.add(group)
      return true
    }
    if (!this.waiting.includes(group)) this.waiting.push(group)
    return false
  }

  /** `group` gives its permit back (or stops waiting); returns the groups granted a permit now. */
  release(group: string): string[] {
    this.holders.delete(group)
    const at = this.waiting.indexOf(group)
    if (at >= 0) this.waiting.splice(at, 1)
    const granted: string[] = []
    while (this.holders.size < this.groups_max && this.waiting.length > 0) {
      const next = this.waiting.shift()!
      this.holders.add(next)
      granted.push(next)
    }
    if (this.holders.size > this.groups_max)
      throw new HvlabError('HVLAB_E_INTERNAL', `resync limiter holds ${this.holders.size} permits over its limit ${this.groups_max}`)
    return granted
  }

  get running(): number {
    return this.holders.size
  }

  get queued(): number {
    return this.waiting.length
  }
}
