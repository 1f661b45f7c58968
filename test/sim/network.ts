/**
 * A seeded, simulated network and clock for the cluster state machines: every host's
 * Membership and the witness's Arbiter run in one process; messages are delayed, lost
 * or blocked by partitions; processes are killed and restarted from what they persisted.
 * Deterministic for a given seed (no Math.random, no real time).
 */
import type { ClusterCommand, ClusterEvent, Effect } from '../../shared/consensus/cluster-effects.js'
import { Membership, type MembershipConfig, type NodeRecord } from '../../agent/cluster/membership.js'
import type { ClusterMessage } from '../../shared/protocol/cluster-messages.js'
import { clusterMessages } from '../../shared/protocol/cluster-messages.js'
import { Arbiter, type ArbiterConfig, type ArbiterRecord } from '../../witness/arbiter.js'
import { mulberry32 } from '../../shared/seeded-random.js'

interface SimEvent {
  at_ms: number
  seq: number
  to: string
  incarnation: number
  kind: 'deliver' | 'tick' | 'call'
  message?: ClusterMessage
  /** For `call`: what runs (the role layer's timers and requests), unless cancelled. */
  call?: { fn: () => void; cancelled: boolean }
}

/** A binary min-heap of events by (at_ms, seq). */
class EventQueue {
  private heap: SimEvent[] = []
  get size(): number {
    return this.heap.length
  }
  push(e: SimEvent): void {
    const h = this.heap
    h.push(e)
    let i = h.length - 1
    while (i > 0) {
      const p = (i - 1) >> 1
      if (!before(h[i]!, h[p]!)) break
      ;[h[i], h[p]] = [h[p]!, h[i]!]
      i = p
    }
  }
  peek(): SimEvent | undefined {
    return this.heap[0]
  }
  pop(): SimEvent | undefined {
    const h = this.heap
    const top = h[0]
    const last = h.pop()
    if (h.length > 0 && last) {
      h[0] = last
      let i = 0
      for (;;) {
        const l = 2 * i + 1
        const r = l + 1
        let m = i
        if (l < h.length && before(h[l]!, h[m]!)) m = l
        if (r < h.length && before(h[r]!, h[m]!)) m = r
        if (m === i) break
        ;[h[i], h[m]] = [h[m]!, h[i]!]
        i = m
      }
    }
    return top
  }
}
const before = (a: SimEvent, b: SimEvent): boolean => a.at_ms < b.at_ms || (a.at_ms === b.at_ms && a.seq < b.seq)

export interface NetworkOptions {
  seed: number
  hosts: MembershipConfig[]
  witness: ArbiterConfig | null
  /** Message delay: uniform in [min, max], and with `spike_probability` up to `spike_ms_max`. */
  delay_ms_min: number
  delay_ms_max: number
  spike_probability: number
  spike_ms_max: number
  loss_probability: number
  /** Check every message against its wire schema (slow; for scripted scenarios). */
  validate_messages?: boolean
  /** Keep the emitted events (for scripted scenarios); at most this many. */
  events_kept_max?: number
}

export class SimNetwork {
  now_ms = 0
  readonly rng: () => number
  readonly hosts = new Map<string, Membership | null>()
  readonly records = new Map<string, NodeRecord | null>()
  witness: Arbiter | null = null
  witnessRecord: ArbiterRecord | undefined
  readonly events: ClusterEvent[] = []
  /** Called for every emitted event (invariant checks hook in here). */
  onEvent: ((e: ClusterEvent, net: SimNetwork) => void) | null = null
  /** Called after a host (re)started, and after one was killed (layers above the membership hook in here). */
  onHostStarted: ((name: string) => void) | null = null
  onHostKilled: ((name: string) => void) | null = null
  private readonly configs = new Map<string, MembershipConfig>()
  private readonly incarnations = new Map<string, number>()
  private readonly blocked = new Set<string>()
  private readonly queue = new EventQueue()
  private seq = 0
  steps = 0

  constructor(readonly options: NetworkOptions) {
    this.rng = mulberry32(options.seed)
    for (const c of options.hosts) {
      this.configs.set(c.name, c)
      this.records.set(c.name, null)
      this.incarnations.set(c.name, 0)
      this.hosts.set(c.name, null)
      this.startHost(c.name)
    }
    if (options.witness) {
      this.incarnations.set(options.witness.name, 0)
      this.witness = new Arbiter(options.witness)
    }
  }

  get witnessName(): string | null {
    return this.options.witness?.name ?? null
  }

  // ---- faults -------------------------------------------------------------------

  isAlive(name: string): boolean {
    return name === this.witnessName ? this.witness !== null : this.hosts.get(name) != null
  }

  kill(name: string): void {
    this.incarnations.set(name, (this.incarnations.get(name) ?? 0) + 1)
    if (name === this.witnessName) this.witness = null
    else {
      this.hosts.set(name, null)
      this.onHostKilled?.(name)
    }
  }

  restart(name: string): void {
    if (this.isAlive(name)) return
    this.incarnations.set(name, (this.incarnations.get(name) ?? 0) + 1)
    if (name === this.witnessName) {
      const cfg = this.options.witness
      if (cfg) this.witness = this.witnessRecord ? Arbiter.restore(cfg, this.witnessRecord) : new Arbiter(cfg)
    } else this.startHost(name)
  }

  private startHost(name: string): void {
    const cfg = this.configs.get(name)
    if (!cfg) throw new Error(`unknown host ${name}`)
    const rec = this.records.get(name) ?? null
    const host = rec ? Membership.restore(cfg, rec, this.now_ms) : new Membership(cfg, null, this.now_ms)
    this.hosts.set(name, host)
    this.apply(name, host.start(this.now_ms))
    this.onHostStarted?.(name)
  }

  private key(a: string, b: string): string {
    return a < b ? `${a}|${b}` : `${b}|${a}`
  }

  block(a: string, b: string): void {
    this.blocked.add(this.key(a, b))
  }

  /** Everything not allowed by `canTalk` is blocked. */
  partition(canTalk: (a: string, b: string) => boolean): void {
    this.blocked.clear()
    const all = this.allNames()
    for (const a of all) for (const b of all) if (a < b && !canTalk(a, b)) this.block(a, b)
  }

  /** Split into groups; nodes in no group can talk to nobody. */
  split(groups: string[][]): void {
    this.partition((a, b) => groups.some((g) => g.includes(a) && g.includes(b)))
  }

  heal(): void {
    this.blocked.clear()
  }

  linked(a: string, b: string): boolean {
    return a === b || !this.blocked.has(this.key(a, b))
  }

  allNames(): string[] {
    const names = [...this.hosts.keys()]
    if (this.witnessName) names.push(this.witnessName)
    return names
  }

  // ---- running --------------------------------------------------------------------

  command(name: string, command: ClusterCommand): void {
    const host = this.hosts.get(name)
    if (!host) throw new Error(`host ${name} is not running`)
    this.apply(name, host.step({ kind: 'command', command }, this.now_ms))
  }

  /** Runs until `until_ms`, calling `afterStep` after every event processed. */
  runUntil(until_ms: number, afterStep?: (net: SimNetwork) => void): void {
    for (;;) {
      const r = this.stepNext(until_ms)
      if (r === 'none') break
      if (r === 'stepped') afterStep?.(this)
    }
    this.now_ms = until_ms
  }

  /**
   * Processes the next event due by `until_ms` (for callers that must do work between
   * steps, like settling promises): 'stepped', 'skipped' (its target died or it was
   * cancelled) or 'none' (nothing due; the clock is left where it is).
   */
  stepNext(until_ms: number): 'stepped' | 'skipped' | 'none' {
    const next = this.queue.peek()
    if (!next || next.at_ms > until_ms) return 'none'
    this.queue.pop()
    this.now_ms = next.at_ms
    if (this.incarnations.get(next.to) !== next.incarnation || next.call?.cancelled) return 'skipped'
    this.deliver(next)
    this.steps++
    return 'stepped'
  }

  /** How many times `name` was killed or restarted (events for an older incarnation are dropped). */
  incarnation(name: string): number {
    return this.incarnations.get(name) ?? 0
  }

  /**
   * Runs `fn` at `at_ms` in host `name`'s incarnation `incarnation` (default: the current
   * one); dropped if that incarnation has ended by then. Returns a cancel function.
   */
  schedule(name: string, at_ms: number, fn: () => void, incarnation = this.incarnation(name)): () => void {
    const call = { fn, cancelled: false }
    this.queue.push({ at_ms: Math.max(at_ms, this.now_ms), seq: this.seq++, to: name, incarnation, kind: 'call', call })
    return () => {
      call.cancelled = true
    }
  }

  runFor(duration_ms: number, afterStep?: (net: SimNetwork) => void): void {
    this.runUntil(this.now_ms + duration_ms, afterStep)
  }

  private deliver(e: SimEvent): void {
    if (e.call) return e.call.fn()
    if (e.to === this.witnessName) {
      if (this.witness && e.message) this.applyWitness(this.witness.step({ kind: 'message', message: e.message }, this.now_ms))
      return
    }
    const host = this.hosts.get(e.to)
    if (!host) return
    const input = e.kind === 'tick' ? ({ kind: 'timer', token: 'tick' } as const) : ({ kind: 'message', message: e.message! } as const)
    this.apply(e.to, host.step(input, this.now_ms))
  }

  private apply(from: string, effects: Effect<NodeRecord>[]): void {
    for (const fx of effects) {
      switch (fx.kind) {
        case 'persist':
          this.records.set(from, fx.record)
          break
        case 'set-timer':
          this.queue.push({ at_ms: fx.at_ms, seq: this.seq++, to: from, incarnation: this.incarnations.get(from) ?? 0, kind: 'tick' })
          break
        case 'send':
          this.transmit(from, fx.to, fx.message)
          break
        case 'emit':
          this.record(fx.event)
          break
      }
    }
  }

  private applyWitness(effects: Effect<ArbiterRecord>[]): void {
    const name = this.witnessName ?? ''
    for (const fx of effects) {
      if (fx.kind === 'persist') this.witnessRecord = fx.record
      else if (fx.kind === 'send') this.transmit(name, fx.to, fx.message)
      else if (fx.kind === 'emit') this.record(fx.event)
    }
  }

  private record(event: ClusterEvent): void {
    const kept = this.options.events_kept_max ?? 0
    if (this.events.length < kept) this.events.push(event)
    this.onEvent?.(event, this)
  }

  private transmit(from: string, to: string, message: ClusterMessage): void {
    if (this.options.validate_messages) validate(message)
    if (!this.linked(from, to)) return
    const o = this.options
    if (this.rng() < o.loss_probability) return
    let delay = o.delay_ms_min + this.rng() * (o.delay_ms_max - o.delay_ms_min)
    if (this.rng() < o.spike_probability) delay += this.rng() * o.spike_ms_max
    this.queue.push({
      at_ms: this.now_ms + delay,
      seq: this.seq++,
      to,
      incarnation: this.incarnations.get(to) ?? 0,
      kind: 'deliver',
      message,
    })
  }
}

function validate(message: ClusterMessage): void {
  const def = clusterMessages.find((d) => d.t === message.t)
  if (!def) throw new Error(`message type ${message.t} is not declared in cluster-messages.ts`)
  const r = def.schema.safeParse(message)
  if (!r.success) throw new Error(`invalid ${message.t}: ${JSON.stringify(r.error.issues[0])}`)
}
