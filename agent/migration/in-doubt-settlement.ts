/**
 * Settles one migration left in doubt, as a pure state machine: `step(input, now_ms) →
 * effects`. The link dropped while the destination was resuming the VM, so the source
 * copy is paused and either side may be the one to run it. The shell (in-doubt-shell.ts)
 * carries the effects out through a MachineDriver (shared/machine/driver.ts) — asks over
 * the mesh, timers on the Clock, the timeline — and feeds back what happened; no I/O,
 * timers or clocks here. `set-timer` and `emit` are the shared kinds (shared/machine/effect.ts).
 *
 * The rule, so that two copies never run:
 *   - ask the destination for its VM inventory; it runs the VM as op `op` → `release`
 *     the copy here; it answers that it does not → `resume` here. An answer is final: the
 *     resume travelled on the old link, which is closed (the destination discarded the
 *     prepared VM), or ahead of the question on the same link (it is answered after it).
 *   - no answer (no connection, timeout, error) → ask again `ask_interval_ms` later;
 *     once the destination has been out of this host's cluster view for
 *     `roles_free_after_ms` it has stopped its VMs (it lost its quorum lease), and the
 *     VM resumes here.
 * "Out of the view for that long" is counted only while this host holds a quorum lease
 * and within one view epoch: the count starts again at every view change, and stops
 * while this host has no lease. Observations are samples, and a destination back in a
 * view between two of them (or in a view this host never saw, cut off with a stale one)
 * may have kept its VMs and got a new lease: counting across that would resume a second
 * copy (found by test/sim/in-doubt-settlement.test.ts). Holding a lease of epoch e proves
 * no newer view exists yet, and a destination absent from e has had no lease since
 * before e began.
 * Membership observations may come at any time; the decision to resume for an absent
 * destination is taken only when no question is outstanding (after a failed ask), so an
 * answer already on its way is never passed over.
 */
import type { EmitEffect, SetTimerEffect } from '../../shared/machine/effect.js'
import type { DetailsOf } from '../../shared/timeline/events.js'

export interface InDoubtSettlementConfig {
  /** This host (the source). */
  readonly host: string
  readonly vm: string
  readonly destination: string
  /** The start op the destination runs the VM as when the migration completed. */
  readonly op: number
  readonly ask_interval_ms: number
  readonly ask_timeout_ms: number
  readonly roles_free_after_ms: number
}

/** A VM in the destination's inventory. */
export interface InventoryEntry {
  readonly role: string
  readonly op: number
}

export type InDoubtInput =
  | { readonly kind: 'start' }
  /** The destination answered question `ask` with its inventory. */
  | { readonly kind: 'inventory'; readonly ask: number; readonly vms: readonly InventoryEntry[] }
  /** Question `ask` got no answer: no connection, a timeout, an error reply. */
  | { readonly kind: 'ask-failed'; readonly ask: number }
  /**
   * This host's cluster view now: whether the destination is a member, the view's epoch,
   * and whether this host holds a quorum lease of it.
   */
  | { readonly kind: 'membership'; readonly member: boolean; readonly epoch: number; readonly leased: boolean }
  | { readonly kind: 'timer' }

/** The timeline's `vm.migration-settled`: where the VM runs now, and why when the destination was not heard. */
export type InDoubtSettledDetails = DetailsOf<'vm.migration-settled'>

export interface InDoubtSettledEvent {
  readonly kind: 'vm.migration-settled'
  readonly details: InDoubtSettledDetails
}

export type InDoubtEffect =
  /** Ask the destination for its inventory, as question `ask`; no answer within `timeout_ms` → `ask-failed`. */
  | { readonly kind: 'ask'; readonly ask: number; readonly timeout_ms: number }
  /** Step the machine with `timer` at `at_ms` (its one timer: ask again). */
  | SetTimerEffect<undefined>
  | EmitEffect<InDoubtSettledEvent>
  /** The destination runs the VM: free the paused copy here (it departed). */
  | { readonly kind: 'release' }
  /** The destination does not run it and never will: resume the copy here. */
  | { readonly kind: 'resume' }

export type InDoubtStage = 'idle' | 'asking' | 'waiting' | 'released' | 'resumed'

export class InDoubtSettlement {
  private stage_: InDoubtStage = 'idle'
  private ask_seq = 0
  /** Since when the destination has been out of view `out_epoch`, seen with a lease (null: not counting). */
  private out_since_ms: number | null = null
  private out_epoch = 0

  constructor(readonly config: InDoubtSettlementConfig) {}

  get stage(): InDoubtStage {
    return this.stage_
  }

  /** Settled: `release` or `resume` was given; nothing more happens. */
  get settled(): boolean {
    return this.stage_ === 'released' || this.stage_ === 'resumed'
  }

  step(input: InDoubtInput, now_ms: number): InDoubtEffect[] {
    if (this.settled) return []
    switch (input.kind) {
      case 'start':
        return this.stage_ === 'idle' ? this.ask() : []
      case 'inventory':
        if (this.stage_ !== 'asking' || input.ask !== this.ask_seq) return [] // a stale answer
        return input.vms.some((v) => v.role === this.config.vm && v.op === this.config.op) ? this.release() : this.resumeHere(null)
      case 'ask-failed':
        if (this.stage_ !== 'asking' || input.ask !== this.ask_seq) return []
        return this.unanswered(now_ms)
      case 'membership':
        this.observe(input, now_ms)
        return []
      case 'timer':
        return this.stage_ === 'waiting' ? this.ask() : []
    }
  }

  /** Counts the destination's absence within one view epoch, with a lease; anything else starts the count again. */
  private observe(view: { member: boolean; epoch: number; leased: boolean }, now_ms: number): void {
    if (view.member || !view.leased) {
      this.out_since_ms = null
    } else if (this.out_since_ms === null || view.epoch !== this.out_epoch) {
      this.out_since_ms = now_ms
      this.out_epoch = view.epoch
    }
  }

  private ask(): InDoubtEffect[] {
    this.stage_ = 'asking'
    return [{ kind: 'ask', ask: ++this.ask_seq, timeout_ms: this.config.ask_timeout_ms }]
  }

  /** No answer: resume here once the destination has surely stopped its VMs, else ask again later. */
  private unanswered(now_ms: number): InDoubtEffect[] {
    const out = this.out_since_ms
    if (out !== null && now_ms - out >= this.config.roles_free_after_ms) {
      return this.resumeHere(`${this.config.destination} left the cluster and has stopped its vms`)
    }
    this.stage_ = 'waiting'
    return [{ kind: 'set-timer', at_ms: now_ms + this.config.ask_interval_ms }]
  }

  private release(): InDoubtEffect[] {
    this.stage_ = 'released'
    const { vm, destination } = this.config
    return [
      { kind: 'release' },
      { kind: 'emit', event: { kind: 'vm.migration-settled', details: { vm, to: destination, runs_on: destination } } },
    ]
  }

  private resumeHere(reason: string | null): InDoubtEffect[] {
    this.stage_ = 'resumed'
    const { vm, destination, host } = this.config
    const details: InDoubtSettledDetails =
      reason === null ? { vm, to: destination, runs_on: host } : { vm, to: destination, runs_on: host, reason }
    return [{ kind: 'resume' }, { kind: 'emit', event: { kind: 'vm.migration-settled', details } }]
  }
}
