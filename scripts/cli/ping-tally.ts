/**
 * What `hvlab vm ping` counts, as pure bookkeeping (times are inputs): pings sent, replies
 * received, lost (sent and never answered, including those the switch said it could not
 * deliver), out of order (a reply whose seq is below one already received), duplicates,
 * the longest gap between consecutive replies, the longest round trip, whether the guest's
 * value ever went backwards (it rises by one per reply, in guest memory), and the hosts
 * that answered, in the order they first did.
 */

/** Pings awaiting a reply that are remembered; older ones are given up as lost. */
export const OUTSTANDING_MAX = 100_000
/** Distinct unreachable reasons kept for the summary. */
const REASONS_MAX = 8

export interface PingSummary {
  sent: number
  received: number
  lost: number
  /** Of `lost`: pings the switch answered it could not deliver (with `reasons`). */
  unreachable: number
  outOfOrder: number
  duplicates: number
  /** Longest time between two consecutive replies (0 with fewer than two). */
  maxGapMs: number
  maxRttMs: number
  /** Replies whose value was not above the one before (it must rise with every reply). */
  valueBackwards: number
  valueContinuous: boolean
  firstValue: number | null
  lastValue: number | null
  hosts: string[]
  reasons: string[]
}

export type ReplyKind = 'new' | 'duplicate' | 'unexpected'

export class PingTally {
  private readonly outstanding = new Map<number, number>()
  private sent_ = 0
  private received = 0
  private unreachable_ = 0
  private outOfOrder = 0
  private duplicates = 0
  private given_up = 0
  private maxSeq = -1
  private maxSeqSent = -1
  private lastReplyMs: number | null = null
  private maxGapMs = 0
  private maxRttMs = 0
  private valueBackwards = 0
  private firstValue: number | null = null
  private lastValue: number | null = null
  private readonly hosts: string[] = []
  private readonly reasons: string[] = []

  /** A ping went out. Seqs must rise. */
  sent(seq: number, at_ms: number): void {
    if (!Number.isInteger(seq) || seq <= this.maxSeqSent) throw new RangeError(`ping seqs must rise: ${seq} after ${this.maxSeqSent}`)
    this.maxSeqSent = seq
    this.sent_++
    this.outstanding.set(seq, at_ms)
    if (this.outstanding.size > OUTSTANDING_MAX) {
      this.outstanding.delete(this.outstanding.keys().next().value as number)
      this.given_up++
    }
  }

  /** A reply from the guest. */
  pong(seq: number, value: number, host: string, at_ms: number): ReplyKind {
    const sent_ms = this.outstanding.get(seq)
    if (sent_ms === undefined) {
      if (seq <= this.maxSeqSent) {
        this.duplicates++
        return 'duplicate'
      }
      return 'unexpected'
    }
    this.outstanding.delete(seq)
    this.received++
    if (seq < this.maxSeq) this.outOfOrder++
    this.maxSeq = Math.max(this.maxSeq, seq)
    this.maxRttMs = Math.max(this.maxRttMs, at_ms - sent_ms)
    if (this.lastReplyMs !== null) this.maxGapMs = Math.max(this.maxGapMs, at_ms - this.lastReplyMs)
    this.lastReplyMs = at_ms
    if (this.lastValue !== null && value <= this.lastValue) this.valueBackwards++
    this.firstValue ??= value
    this.lastValue = value
    if (!this.hosts.includes(host)) this.hosts.push(host)
    return 'new'
  }

  /** The switch could not deliver this ping (no such address, host gone …): it is lost. */
  unreachable(seq: number, reason: string): ReplyKind {
    if (!this.outstanding.delete(seq)) return seq <= this.maxSeqSent ? 'duplicate' : 'unexpected'
    this.unreachable_++
    if (this.reasons.length < REASONS_MAX && !this.reasons.includes(reason)) this.reasons.push(reason)
    return 'new'
  }

  /** Pings still awaiting a reply. */
  get waiting(): number {
    return this.outstanding.size
  }

  summary(): PingSummary {
    return {
      sent: this.sent_,
      received: this.received,
      lost: this.sent_ - this.received,
      unreachable: this.unreachable_,
      outOfOrder: this.outOfOrder,
      duplicates: this.duplicates,
      maxGapMs: round1(this.maxGapMs),
      maxRttMs: round1(this.maxRttMs),
      valueBackwards: this.valueBackwards,
      valueContinuous: this.valueBackwards === 0,
      firstValue: this.firstValue,
      lastValue: this.lastValue,
      hosts: [...this.hosts],
      reasons: [...this.reasons],
    }
  }
}

const round1 = (ms: number): number => Math.round(ms * 10) / 10

/** The closing lines of `hvlab vm ping`, like ping(8)'s statistics. */
export function formatPingSummary(vm: string, s: PingSummary): string {
  const pct = s.sent === 0 ? 0 : Math.round((s.lost / s.sent) * 1000) / 10
  const lines = [
    `--- vm ${vm} ping statistics ---`,
    `${s.sent} sent, ${s.received} received, ${s.lost} lost (${pct}%)${s.unreachable > 0 ? `, ${s.unreachable} unreachable` : ''}, ${s.outOfOrder} out of order, ${s.duplicates} duplicates`,
    `longest gap between replies ${s.maxGapMs} ms, longest round trip ${s.maxRttMs} ms`,
    `value ${s.firstValue ?? '-'} → ${s.lastValue ?? '-'}: ${s.valueContinuous ? 'never went backwards' : `went backwards ${s.valueBackwards} times`}; hosts ${s.hosts.join(' → ') || '-'}`,
  ]
  for (const r of s.reasons) lines.push(`unreachable: ${r}`)
  return lines.join('\n')
}
