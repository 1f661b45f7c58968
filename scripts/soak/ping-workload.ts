/**
 * A soak's clients: each VM is pinged at its stable address (the lab's virtual switch, as
 * `hvlab vm ping` does) every `interval_ms`, and every ping goes into the history with its
 * outcome — the reply (when, from which host), the switch's "unreachable", or nothing
 * within `timeout_ms` (lost). The connection to the switch is made again if it drops.
 */
import type { SwitchReply } from '../../shared/protocol/guest-messages.js'
import { SwitchClient } from '../cli/switch-client.js'
import type { RecordOf } from './history.js'

type PingRecord = RecordOf<'ping'>

export interface PingWorkloadOptions {
  dir: string
  vms: readonly string[]
  interval_ms: number
  timeout_ms: number
  record: (r: PingRecord) => void
}

const RECONNECT_MS = 500

export class PingWorkload {
  private client: SwitchClient | null = null
  private timer: NodeJS.Timeout | null = null
  private stopped = false
  private readonly seqs = new Map<string, number>()
  /** `vm/seq` → when it was sent. */
  private readonly outstanding = new Map<string, { vm: string; seq: number; sent_ms: number }>()
  private readonly last_reply_ms = new Map<string, number>()

  constructor(private readonly o: PingWorkloadOptions) {}

  async start(): Promise<void> {
    await this.connect()
    this.timer = setInterval(() => this.tick(), this.o.interval_ms)
  }

  /** Stops sending, waits for the last replies (up to the timeout) and records what never came as lost. */
  async stop(): Promise<void> {
    this.stopped = true
    if (this.timer) clearInterval(this.timer)
    const deadline = Date.now() + this.o.timeout_ms
    while (this.outstanding.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20))
    this.giveUp(Infinity)
    this.client?.close()
  }

  /** When `vm` last answered (ms), or null if it never did. */
  lastReplyMs(vm: string): number | null {
    return this.last_reply_ms.get(vm) ?? null
  }

  private async connect(): Promise<void> {
    this.client = await SwitchClient.connect(
      this.o.dir,
      (r) => this.reply(r),
      () => this.reconnectLater(),
    )
  }

  private reconnectLater(): void {
    this.client = null
    if (this.stopped) return
    setTimeout(() => void this.connect().catch(() => this.reconnectLater()), RECONNECT_MS)
  }

  private tick(): void {
    const now = Date.now()
    this.giveUp(now - this.o.timeout_ms)
    for (const vm of this.o.vms) {
      const seq = (this.seqs.get(vm) ?? 0) + 1
      this.seqs.set(vm, seq)
      this.outstanding.set(`${vm}/${seq}`, { vm, seq, sent_ms: now })
      this.client?.ping(vm, seq) // no connection now: it will count as lost, as a client's would
    }
  }

  private reply(r: SwitchReply): void {
    const sent = this.outstanding.get(`${r.vm}/${r.seq}`)
    if (!sent) return // late (already counted lost) or a duplicate
    this.outstanding.delete(`${r.vm}/${r.seq}`)
    const at = Date.now()
    if (r.t === 'pong') {
      this.last_reply_ms.set(r.vm, at)
      this.o.record({ t: 'ping', vm: r.vm, seq: r.seq, sent_ms: sent.sent_ms, reply_ms: at, host: r.host, outcome: 'reply' })
    } else {
      this.o.record({ t: 'ping', vm: r.vm, seq: r.seq, sent_ms: sent.sent_ms, reply_ms: null, host: null, outcome: 'unreachable' })
    }
  }

  /** Pings sent before `before_ms` that have no answer are lost. */
  private giveUp(before_ms: number): void {
    for (const [key, p] of this.outstanding) {
      if (p.sent_ms >= before_ms) continue
      this.outstanding.delete(key)
      this.o.record({ t: 'ping', vm: p.vm, seq: p.seq, sent_ms: p.sent_ms, reply_ms: null, host: null, outcome: 'lost' })
    }
  }
}
