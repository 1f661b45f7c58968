/**
 * A seeded, simulated network and clock for the cluster state machines: every host's
 * Membership and the witness's Arbiter run in one process; messages are delayed, lost
 * or blocked by partitions; processes are killed and restarted from what they persisted.
 * Deterministic for a given seed (no Math.random, no real time).
 *
 * Each machine runs through the production cluster driver (shared/machine/cluster-driver.ts)
 * with synchronous handlers: a persist is kept at once, a set-timer is a tick event on the
 * simulated clock, so one step and all its effects happen within one simulated event.
 *
 * Each process reads its own clock: the simulated time plus an offset and a drift drawn
 * from the seed within `clock_skew_ms` (any two clocks stay within it for `clock_span_ms`).
 * A paused process (SIGSTOP) runs nothing until it wakes; what reached it meanwhile (its
 * timers, messages) runs then, in order.
 */
import type { ClusterCommand, ClusterEvent } from '../../shared/consensus/cluster-effects.js'
import { clusterDriver, type ClusterDriver } from '../../shared/machine/cluster-driver.js'
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
  /** For `call` and `tick`: what runs (the machine's tick, the role layer's timers and requests), unless cancelled. */
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
  /** Largest difference between two processes' clocks (0: one clock for all). */
  clock_skew_ms?: number
  /** How long the bound must hold with drift (default 60 s). */
  clock_span_ms?: number
}

/** One process's clock: local = offset + now × (1 + drift). */
interface SimClock {
  offset_ms: number
  drift: number
}

/** The view decided for an epoch, as its first learner announced it. */
export interface DecidedView {
  epoch: number
  members: readonly string[]
  /** The hosts it left out of the view before it. */
  removed: readonly string[]
  leases_end_ms: number
  removed_lease_end_ms: number
  by: string
}

/**
 * The faulty network of the random schedules: delays up to 20 ms, 2 % of messages delayed
 * up to 300 ms more, 1 % lost, and every clock within `clock_skew_ms` of the others.
 */
export function faultyNetwork(clock_skew_ms: number): Partial<NetworkOptions> {
  return { delay_ms_min: 1, delay_ms_max: 20, spike_probability: 0.02, spike_ms_max: 300, loss_probability: 0.01, clock_skew_ms }
}

export class SimNetwork {
  now_ms = 0
  readonly rng: () => number
  readonly hosts = new Map<string, Membership | null>()
  readonly records = new Map<string, NodeRecord | null>()
  witness: Arbiter | null = null
  witnessRecord: ArbiterRecord | undefined
  private witnessDriver: ClusterDriver<ArbiterRecord> | null = null
  private readonly drivers = new Map<string, ClusterDriver<NodeRecord>>()
  readonly events: ClusterEvent[] = []
  /** Every view decided so far, by epoch. */
  readonly decided = new Map<number, DecidedView>()
  private readonly clocks = new Map<string, SimClock>()
  private readonly paused_until = new Map<string, number>()
  /** Called for every emitted event (invariant checks hook in here). */
  onEvent: ((e: ClusterEvent, net: SimNetwork) => void) | null = null
  /** Called after a host (re)started, and after one was killed (layers above the membership hook in here). */
  /** Called for every message a process sends (before loss, partitions and delay). */
  onTransmit: ((from: string, to: string, message: ClusterMessage) => void) | null = null
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
    for (const c of options.hosts) this.clocks.set(c.name, this.drawClock())
    if (options.witness) this.clocks.set(options.witness.name, this.drawClock())
    for (const c of options.hosts) {
      this.configs.set(c.name, c)
      this.records.set(c.name, null)
      this.incarnations.set(c.name, 0)
      this.hosts.set(c.name, null)
      this.startHost(c.name)
    }
    if (options.witness) {
      this.incarnations.set(options.witness.name, 0)
      this.startWitness(new Arbiter(options.witness, 0))
    }
  }

  /**
   * An offset within ±skew/4 and a drift that moves the clock at most skew/4 over the span:
   * any two clocks stay within the skew. No draw (and the same rng sequence as before) at 0.
   */
  private drawClock(): SimClock {
    const skew_ms = this.options.clock_skew_ms ?? 0
    if (skew_ms <= 0) return { offset_ms: 0, drift: 0 }
    const quarter_ms = skew_ms / 4
    const span_ms = this.options.clock_span_ms ?? 60_000
    return { offset_ms: (this.rng() * 2 - 1) * quarter_ms, drift: ((this.rng() * 2 - 1) * quarter_ms) / span_ms }
  }

  /** What `name`'s clock reads now. */
  localNow(name: string): number {
    return this.localAt(name, this.now_ms)
  }

  private localAt(name: string, at_ms: number): number {
    const c = this.clocks.get(name)
    return c ? c.offset_ms + at_ms * (1 + c.drift) : at_ms
  }

  /** The simulated time at which `name`'s clock reads `local_ms`. */
  private globalAt(name: string, local_ms: number): number {
    const c = this.clocks.get(name)
    return c ? (local_ms - c.offset_ms) / (1 + c.drift) : local_ms
  }

  get witnessName(): string | null {
    return this.options.witness?.name ?? null
  }

  // ---- faults -------------------------------------------------------------------

  isAlive(name: string): boolean {
    return name === this.witnessName ? this.witness !== null : this.hosts.get(name) != null
  }

  /** Freezes `name` (SIGSTOP) for `for_ms`: it runs nothing until then, then everything that reached it. */
  pause(name: string, for_ms: number): void {
    this.paused_until.set(name, Math.max(this.paused_until.get(name) ?? 0, this.now_ms + for_ms))
  }

  isPaused(name: string): boolean {
    return (this.paused_until.get(name) ?? 0) > this.now_ms
  }

  kill(name: string): void {
    this.incarnations.set(name, (this.incarnations.get(name) ?? 0) + 1)
    if (name === this.witnessName) {
      this.witness = null
      this.witnessDriver = null
    } else {
      this.hosts.set(name, null)
      this.drivers.delete(name)
      this.onHostKilled?.(name)
    }
  }

  restart(name: string): void {
    if (this.isAlive(name)) return
    this.incarnations.set(name, (this.incarnations.get(name) ?? 0) + 1)
    if (name === this.witnessName) {
      const cfg = this.options.witness
      if (cfg) this.startWitness(new Arbiter(cfg, this.now_ms, this.witnessRecord))
    } else this.startHost(name)
  }

  private startWitness(witness: Arbiter): void {
    const name = this.witnessName ?? ''
    this.witness = witness
    this.witnessDriver = clusterDriver<ArbiterRecord>((input) => witness.step(input, this.localNow(name)), {
      armTimer: () => () => {}, // the Arbiter keeps no timer
      send: (to, message) => this.transmit(name, to, message),
      persist: (record) => void (this.witnessRecord = record),
      emit: (event) => this.record(event),
      onTimer: () => {},
      onFatal: (e) => {
        throw e
      },
    })
  }

  private startHost(name: string): void {
    const cfg = this.configs.get(name)
    if (!cfg) throw new Error(`unknown host ${name}`)
    const rec = this.records.get(name) ?? null
    const now_ms = this.localNow(name)
    const host = rec ? Membership.restore(cfg, rec, now_ms) : new Membership(cfg, null, now_ms)
    this.hosts.set(name, host)
    const driver = this.hostDriver(name, host)
    this.drivers.set(name, driver)
    void driver.run(host.start(now_ms))
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
    const driver = this.drivers.get(name)
    if (!driver) throw new Error(`host ${name} is not running`)
    driver.feed({ kind: 'command', command })
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
    const wake_ms = this.paused_until.get(next.to) ?? 0
    if (wake_ms > this.now_ms) {
      // Frozen: it runs when the process wakes, after what reached it before (a later seq).
      this.queue.push({ ...next, at_ms: wake_ms, seq: this.seq++ })
      return 'skipped'
    }
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
      if (this.witnessDriver && e.message) this.witnessDriver.feed({ kind: 'message', message: e.message })
      return
    }
    const driver = this.drivers.get(e.to)
    if (driver && e.message) driver.feed({ kind: 'message', message: e.message })
  }

  /** A host's driver: its persists are kept in `records`, its tick is a `tick` event of its incarnation. */
  private hostDriver(name: string, host: Membership): ClusterDriver<NodeRecord> {
    const driver = clusterDriver<NodeRecord>((input) => host.step(input, this.localNow(name)), {
      armTimer: (at_ms, fn) => {
        const call = { fn, cancelled: false }
        const at = Math.max(this.now_ms, this.globalAt(name, at_ms))
        this.queue.push({ at_ms: at, seq: this.seq++, to: name, incarnation: this.incarnations.get(name) ?? 0, kind: 'tick', call })
        return () => {
          call.cancelled = true
        }
      },
      send: (to, message) => this.transmit(name, to, message),
      persist: (record) => void this.records.set(name, record),
      emit: (event) => this.record(event),
      onTimer: (token) => driver.feed({ kind: 'timer', token }),
      onFatal: (e) => {
        throw e
      },
    })
    return driver
  }

  private record(event: ClusterEvent): void {
    if (event.kind === 'cluster.view-changed') this.noteDecided(event)
    const kept = this.options.events_kept_max ?? 0
    if (this.events.length < kept) this.events.push(event)
    this.onEvent?.(event, this)
  }

  private noteDecided(event: ClusterEvent): void {
    const d = event.details as Omit<DecidedView, 'by'>
    if (this.decided.has(d.epoch)) return
    const { epoch, members, removed, leases_end_ms, removed_lease_end_ms } = d
    this.decided.set(epoch, { epoch, members, removed, leases_end_ms, removed_lease_end_ms, by: event.source })
  }

  private transmit(from: string, to: string, message: ClusterMessage): void {
    if (this.options.validate_messages) validate(message)
    this.onTransmit?.(from, to, message)
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
