/**
 * What the lab does to the frames one process sends one peer (issue 13's network faults,
 * per direction of a link, in user space: no root, no tc). A connection hands each frame to
 * its shaper, which writes it to the socket when the emulated wire would have delivered it:
 * - **latency**, plus **jitter** of up to ± that much, each frame's own;
 * - a **bandwidth** cap: a frame occupies the wire for its bits at the cap, one after the
 *   other, so bulk traffic (migration pages, replication) really slows down, and the sender
 *   feels it as backpressure: a frame held here counts as queued until it is written;
 * - **loss** as TCP shows it: a lost segment is sent again after the retransmission timeout
 *   (at least 200 ms, twice the round trip, doubling on each loss of the same frame), so a
 *   frame comes late, never not at all, and those behind it wait for it.
 * Frames keep their order (TCP delivers in order): no frame is written before the one
 * ahead of it. One timer at a time, for the frame at the head. A clear profile writes at
 * once, with nothing queued.
 *
 * A one-way partition is not shaped here: the receiving side ignores the peer (peer-mesh.ts),
 * so the pings and pongs that ws answers by itself are lost too.
 */
import type { Clock } from '../clock.js'

export interface LinkShape {
  /** One-way delay added to every frame, ms. */
  latency_ms: number
  /** Each frame's delay varies by up to ± this, ms (never below zero). */
  jitter_ms: number
  /** Bandwidth cap, Mbit/s; 0: none. */
  mbit: number
  /** Probability, 0–1, that a frame is lost on the wire and sent again. */
  loss: number
}

export const LINK_SHAPE_CLEAR: LinkShape = { latency_ms: 0, jitter_ms: 0, mbit: 0, loss: 0 }

/** Linux's smallest TCP retransmission timeout. */
export const RETRANSMIT_TIMEOUT_MS_MIN = 200
/** A frame lost this many times in a row is delivered anyway (p^6 is negligible for any loss a lab sets). */
const RETRANSMITS_MAX = 6

export const isClearShape = (s: LinkShape): boolean => s.latency_ms === 0 && s.jitter_ms === 0 && s.mbit === 0 && s.loss === 0

interface HeldFrame {
  release_ms: number
  write: () => void
}

export class LinkShaper {
  private shape: LinkShape = LINK_SHAPE_CLEAR
  private readonly queue: HeldFrame[] = []
  /** When the emulated wire is free for the next frame's bits. */
  private wire_free_ms = 0
  /** When the last frame queued is released: none is released before it (order). */
  private last_release_ms = 0
  private cancelTimer: (() => void) | undefined

  constructor(
    private readonly clock: Clock,
    private readonly random: () => number = Math.random,
  ) {}

  setShape(shape: LinkShape): void {
    this.shape = { ...shape }
  }

  get current(): LinkShape {
    return { ...this.shape }
  }

  /** Frames held, not yet written. */
  get held(): number {
    return this.queue.length
  }

  /** Writes a frame of `bytes` bytes (calls `write`) when the emulated wire delivers it. */
  push(bytes: number, write: () => void): void {
    if (isClearShape(this.shape) && this.queue.length === 0) return write()
    const now_ms = this.clock.now()
    const release_ms = Math.max(this.last_release_ms, this.arrivalMs(now_ms, bytes))
    this.last_release_ms = release_ms
    if (release_ms <= now_ms && this.queue.length === 0) return write()
    this.queue.push({ release_ms, write })
    if (this.queue.length === 1) this.arm(now_ms)
  }

  /** Drops every held frame unwritten (the connection is gone). */
  clear(): void {
    this.cancelTimer?.()
    this.cancelTimer = undefined
    this.queue.length = 0
  }

  /** When a frame of `bytes` pushed at `now_ms` reaches the peer, order aside. */
  private arrivalMs(now_ms: number, bytes: number): number {
    const s = this.shape
    const start_ms = Math.max(now_ms, this.wire_free_ms)
    this.wire_free_ms = start_ms + (s.mbit > 0 ? (bytes * 8) / (s.mbit * 1000) : 0)
    let delay_ms = Math.max(0, s.latency_ms + s.jitter_ms * (2 * this.random() - 1))
    let rto_ms = Math.max(RETRANSMIT_TIMEOUT_MS_MIN, 2 * (s.latency_ms + s.jitter_ms))
    for (let lost = 0; lost < RETRANSMITS_MAX && s.loss > 0 && this.random() < s.loss; lost++) {
      delay_ms += rto_ms
      rto_ms *= 2
    }
    return this.wire_free_ms + delay_ms
  }

  private arm(now_ms: number): void {
    const head = this.queue[0]!
    this.cancelTimer = this.clock.setTimer(Math.max(0, head.release_ms - now_ms), () => this.release())
  }

  private release(): void {
    this.cancelTimer = undefined
    const now_ms = this.clock.now()
    while (this.queue.length > 0 && this.queue[0]!.release_ms <= now_ms) this.queue.shift()!.write()
    if (this.queue.length > 0) this.arm(now_ms)
  }
}
