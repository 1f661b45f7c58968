/**
 * The guest service: every running VM answers `guest-ping` with `guest-pong`, echoing the
 * sequence number and a value read from guest memory — a reply counter the guest keeps in
 * its last page and bumps once per reply. The counter travels with the memory, so a client
 * that sees the value keep rising across a live migration sees that memory moved intact.
 *
 * The counter is kept three times in that page (1 KiB apart) and read as the median: the
 * guest workload writes 64-byte chunks at random offsets, which can hit one copy but never
 * two at once, and every reply rewrites all three (like ECC memory scrubbing).
 *
 * A paused guest (the blackout of a live migration, a quick migration) does not answer, as
 * a real one would not: its pings are held (bounded in number and time) and answered once
 * it resumes here. If it leaves instead (released to the destination), each held ping gets
 * `guest-unavailable not-here` and the virtual switch sends it on to the VM's new host —
 * what a real switch plus a TCP retransmit look like to a client: delayed, not lost. A
 * guest paused longer than `hold_ms` (a migration in doubt) gets `paused-too-long`.
 */
import type { Clock } from '../../shared/clock.js'
import { HvlabError } from '../../shared/errors.js'
import type { LabProcess } from '../../shared/lab-process.js'
import type { GuestPing, GuestReply } from '../../shared/protocol/guest-messages.js'
import type { GuestMemory } from './guest-memory.js'
import { PAGE_SIZE_BYTES } from '../../shared/protocol/page-size.js'

/** How long a ping waits for a paused guest before it is answered `paused-too-long`. */
export const GUEST_HOLD_MS = 5_000
/** Pings held at once (all VMs of this host); beyond it a ping is answered `paused-too-long` at once. */
export const GUEST_HELD_MAX = 4_096
/** How often held pings look at their VM again while any are held. */
export const GUEST_HOLD_POLL_MS = 1
/** Where the three copies of the reply counter sit in the guest's last page. */
const COUNTER_OFFSETS_IN_PAGE = [0, 1024, 2048] as const

/** What the guest service needs of a VM. */
export interface GuestVmView {
  readonly state: 'running' | 'stopped'
  readonly paused: boolean
  readonly memory: GuestMemory
}

export interface GuestServiceDeps {
  host: string
  clock: Clock
  /** The VM of that name if it runs on this host. */
  find(vm: string): GuestVmView | undefined
  hold_ms?: number
  held_max?: number
}

/** The guest's reply counter as it is in memory now (the median of its three copies). */
export function readGuestCounter(memory: GuestMemory): number {
  const base = (memory.page_count - 1) * PAGE_SIZE_BYTES
  const copies = COUNTER_OFFSETS_IN_PAGE.map((o) => new DataView(memory.read(base + o, 4).buffer).getUint32(0, true)).sort((a, b) => a - b)
  return copies[1]!
}

/** One reply by the guest: bumps the counter in memory (all three copies, marking the page dirty) and returns the new value. */
export function bumpGuestCounter(memory: GuestMemory): number {
  const next = (readGuestCounter(memory) + 1) >>> 0
  const bytes = new Uint8Array(4)
  new DataView(bytes.buffer).setUint32(0, next, true)
  const base = (memory.page_count - 1) * PAGE_SIZE_BYTES
  for (const o of COUNTER_OFFSETS_IN_PAGE) memory.write(base + o, bytes)
  return next
}

interface Held {
  ping: GuestPing
  since_ms: number
  resolve: (r: GuestReply) => void
}

export class GuestService {
  private readonly held: Held[] = []
  private cancelPoll: (() => void) | undefined
  private readonly hold_ms: number
  private readonly held_max: number

  constructor(private readonly deps: GuestServiceDeps) {
    this.hold_ms = deps.hold_ms ?? GUEST_HOLD_MS
    this.held_max = deps.held_max ?? GUEST_HELD_MAX
    if (!(this.hold_ms > 0) || !Number.isInteger(this.held_max) || this.held_max < 1) {
      throw new HvlabError(
        'HVLAB_E_INTERNAL',
        `guest service: hold_ms must be > 0 and held_max a positive integer (got ${this.hold_ms}, ${this.held_max})`,
      )
    }
  }

  /** Pings waiting for a paused guest now. */
  get heldCount(): number {
    return this.held.length
  }

  /** Answers at once if the guest runs (or is not here); holds the ping while the guest is paused. */
  ping(ping: GuestPing): Promise<GuestReply> {
    const now = this.deps.clock.now()
    const answer = this.tryAnswer(ping, now, now)
    if (answer !== null) return Promise.resolve(answer)
    if (this.held.length >= this.held_max) return Promise.resolve(this.unavailable(ping, 'paused-too-long'))
    return new Promise((resolve) => {
      this.held.push({ ping, since_ms: now, resolve })
      this.schedulePoll()
    })
  }

  /** Answers every held ping `paused-too-long` and stops polling (the process stops). */
  close(): void {
    this.cancelPoll?.()
    this.cancelPoll = undefined
    for (const h of this.held.splice(0)) h.resolve(this.unavailable(h.ping, 'paused-too-long'))
  }

  /** The reply now, or null while the guest is paused and the hold has not run out. */
  private tryAnswer(ping: GuestPing, since_ms: number, now_ms: number): GuestReply | null {
    const vm = this.deps.find(ping.vm)
    if (vm === undefined || vm.state !== 'running') return this.unavailable(ping, 'not-here')
    if (!vm.paused) return { t: 'guest-pong', vm: ping.vm, seq: ping.seq, value: bumpGuestCounter(vm.memory), host: this.deps.host }
    if (now_ms - since_ms >= this.hold_ms) return this.unavailable(ping, 'paused-too-long')
    return null
  }

  private unavailable(ping: GuestPing, reason: 'not-here' | 'paused-too-long'): GuestReply {
    return { t: 'guest-unavailable', vm: ping.vm, seq: ping.seq, host: this.deps.host, reason }
  }

  private schedulePoll(): void {
    if (this.cancelPoll !== undefined) return
    this.cancelPoll = this.deps.clock.setTimer(GUEST_HOLD_POLL_MS, () => {
      this.cancelPoll = undefined
      this.poll()
    })
  }

  /** Held pings in arrival order: answered as soon as their guest runs, is gone, or the hold ran out. */
  private poll(): void {
    const now = this.deps.clock.now()
    const still: Held[] = []
    for (const h of this.held.splice(0)) {
      const answer = this.tryAnswer(h.ping, h.since_ms, now)
      if (answer === null) still.push(h)
      else h.resolve(answer)
    }
    this.held.push(...still)
    if (this.held.length > 0) this.schedulePoll()
  }
}

/** Wires the guest service into a host process: the controller's switch sends `guest-ping` on the host's controller link. */
export function startGuestService(p: LabProcess, find: (vm: string) => GuestVmView | undefined): GuestService {
  const service = new GuestService({ host: p.name, clock: p.clock, find })
  p.serveOperator('guest-ping', (m) => service.ping(m))
  p.addStatus(() => ({ guest: { held_pings: service.heldCount } }))
  return service
}
