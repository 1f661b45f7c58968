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
  out_of_order: number
  duplicates: number
  /** Longest time between two consecutive replies (0 with fewer than two). */
  gap_ms_max: number
  /** When the reply that ended the longest gap came (the tally's clock, ms; null with fewer than two replies). */
  gap_max_ended_ms: number | null
  /** The longest gap's replies came from two hosts: it spans a move of the VM. */
  gap_max_across_hosts: boolean
  /** The longest gap between two replies from different hosts: what a move of the VM (its blackout) cost this client (null: no move seen). */
  move_gap_ms_max: number | null
  rtt_ms_max: number
  /** Replies whose value was not above the one before (it must rise with every reply). */
  value_backwards: number
  value_continuous: boolean
  first_value: number | null
  last_value: number | null
  hosts: string[]
  reasons: string[]
}

export type ReplyKind = 'new' | 'duplicate' | 'unexpected'

export class PingTally {
  private readonly outstanding = new Map<number, number>()
  private sent_ = 0
  private received = 0
  private unreachable_ = 0
  private out_of_order = 0
  private duplicates = 0
  private given_up = 0
  private seq_max = -1
  private seq_sent_max = -1
  private last_reply_ms: number | null = null
  private gap_ms_max = 0
  private gap_max_ended_ms: number | null = null
  private gap_max_across_hosts = false
  private last_host: string | null = null
  private move_gap_ms_max: number | null = null
  private rtt_ms_max = 0
  private value_backwards = 0
  private first_value: number | null = null
  private last_value: number | null = null
  private readonly hosts: string[] = []
  private readonly reasons: string[] = []

  /** A ping went out. Seqs must rise. */
  sent(seq: number, at_ms: number): void {
    if (!Number.isInteger(seq) || seq <= this.seq_sent_max) throw new RangeError(`ping seqs must rise: ${seq} after ${this.seq_sent_max}`)
    this.seq_sent_max = seq
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
      if (seq <= this.seq_sent_max) {
        this.duplicates++
        return 'duplicate'
      }
      return 'unexpected'
    }
    this.outstanding.delete(seq)
    this.received++
    if (seq < this.seq_max) this.out_of_order++
    this.seq_max = Math.max(this.seq_max, seq)
    this.rtt_ms_max = Math.max(this.rtt_ms_max, at_ms - sent_ms)
    if (this.last_reply_ms !== null && (this.gap_max_ended_ms === null || at_ms - this.last_reply_ms > this.gap_ms_max)) {
      this.gap_ms_max = at_ms - this.last_reply_ms
      this.gap_max_ended_ms = at_ms
      this.gap_max_across_hosts = this.last_host !== host
    }
    if (this.last_reply_ms !== null && this.last_host !== host)
      this.move_gap_ms_max = Math.max(this.move_gap_ms_max ?? 0, at_ms - this.last_reply_ms)
    this.last_reply_ms = at_ms
    this.last_host = host
    if (this.last_value !== null && value <= this.last_value) this.value_backwards++
    this.first_value ??= value
    this.last_value = value
    if (!this.hosts.includes(host)) this.hosts.push(host)
    return 'new'
  }

  /** The switch could not deliver this ping (no such address, host gone …): it is lost. */
  unreachable(seq: number, reason: string): ReplyKind {
    if (!this.outstanding.delete(seq)) return seq <= this.seq_sent_max ? 'duplicate' : 'unexpected'
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
      out_of_order: this.out_of_order,
      duplicates: this.duplicates,
      gap_ms_max: round1(this.gap_ms_max),
      gap_max_ended_ms: this.gap_max_ended_ms === null ? null : round1(this.gap_max_ended_ms),
      gap_max_across_hosts: this.gap_max_across_hosts,
      move_gap_ms_max: this.move_gap_ms_max === null ? null : round1(this.move_gap_ms_max),
      rtt_ms_max: round1(this.rtt_ms_max),
      value_backwards: this.value_backwards,
      value_continuous: this.value_backwards === 0,
      first_value: this.first_value,
      last_value: this.last_value,
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
    `${s.sent} sent, ${s.received} received, ${s.lost} lost (${pct}%)${s.unreachable > 0 ? `, ${s.unreachable} unreachable` : ''}, ${s.out_of_order} out of order, ${s.duplicates} duplicates`,
    `longest gap between replies ${s.gap_ms_max} ms${s.move_gap_ms_max === null ? '' : ` (across a move between hosts ${s.move_gap_ms_max} ms)`}, longest round trip ${s.rtt_ms_max} ms`,
    `value ${s.first_value ?? '-'} → ${s.last_value ?? '-'}: ${s.value_continuous ? 'never went backwards' : `went backwards ${s.value_backwards} times`}; hosts ${s.hosts.join(' → ') || '-'}`,
  ]
  for (const r of s.reasons) lines.push(`unreachable: ${r}`)
  return lines.join('\n')
}
