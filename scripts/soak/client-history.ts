/**
 * What a soak's clients saw, from the pings of its history: per VM, the times of its
 * replies, the gaps between them (a gap is how long the VM did not answer: the RTO of a
 * failover, the blackout of a migration as the client sees it), its round trips, and when
 * it first answered after a given moment.
 */
import type { RecordOf } from './history.js'
import type { VmSeries } from './report-types.js'

type Ping = RecordOf<'ping'>

export interface Gap {
  from_ms: number
  to_ms: number
}

/** Points of each VM's round-trip series drawn at most. */
const RTT_POINTS_MAX = 2000

export class ClientHistory {
  /** Per VM, its replies in reply order. */
  private readonly replies = new Map<string, Ping[]>()

  constructor(pings: readonly Ping[], vms: readonly string[]) {
    for (const vm of vms) this.replies.set(vm, [])
    for (const p of pings) if (p.outcome === 'reply' && p.reply_ms !== null) this.replies.get(p.vm)?.push(p)
    for (const list of this.replies.values()) list.sort((a, b) => a.reply_ms! - b.reply_ms!)
  }

  get vms(): string[] {
    return [...this.replies.keys()]
  }

  /** Gaps between consecutive replies of `vm` longer than `threshold_ms`. */
  gaps(vm: string, threshold_ms: number): Gap[] {
    const r = this.replies.get(vm) ?? []
    const out: Gap[] = []
    for (let i = 1; i < r.length; i++) {
      const from_ms = r[i - 1]!.reply_ms!
      const to_ms = r[i]!.reply_ms!
      if (to_ms - from_ms > threshold_ms) out.push({ from_ms, to_ms })
    }
    return out
  }

  /** The longest gap of `vm` that ends after `from_ms` and begins before `to_ms`; 0 when none is above `threshold_ms`. */
  longestGapWithin(vm: string, from_ms: number, to_ms: number, threshold_ms: number): number {
    let longest = 0
    for (const g of this.gaps(vm, threshold_ms))
      if (g.to_ms > from_ms && g.from_ms < to_ms) longest = Math.max(longest, g.to_ms - g.from_ms)
    return longest
  }

  /** When `vm` first answered a ping sent at or after `after_ms`; null if it never did. */
  firstReplyAfter(vm: string, after_ms: number): number | null {
    return (this.replies.get(vm) ?? []).find((p) => p.sent_ms >= after_ms)?.reply_ms ?? null
  }

  /** Its round trips as [reply time, ms], thinned to at most RTT_POINTS_MAX by keeping the slowest of each bucket. */
  rtt(vm: string): [number, number][] {
    const r = this.replies.get(vm) ?? []
    const per = Math.max(1, Math.ceil(r.length / RTT_POINTS_MAX))
    const out: [number, number][] = []
    for (let i = 0; i < r.length; i += per) {
      const bucket = r.slice(i, i + per)
      const slowest = bucket.reduce((a, b) => (b.reply_ms! - b.sent_ms > a.reply_ms! - a.sent_ms ? b : a))
      out.push([slowest.reply_ms!, slowest.reply_ms! - slowest.sent_ms])
    }
    return out
  }

  series(vm: string, threshold_ms: number, runs: [number, number, string][]): VmSeries {
    return { vm, rtt: this.rtt(vm), gaps: this.gaps(vm, threshold_ms), runs }
  }
}
