/**
 * The destination side of one live migration, as a pure state machine:
 * `step(input, now_ms) → effects`. The shell (migration-service.ts) applies the batches,
 * answers the source's requests with the `reply`/`refuse` effects and reports what the
 * source or the link did as inputs. Batches are applied off the event loop, in the order
 * they arrived; the shell feeds a round's end as it arrives (and sends its reply once every
 * batch before it is applied), the blackout only once every batch before it is applied, and
 * a batch that cannot be applied comes back as `failed`.
 *
 * Stages:
 *   idle      → begin: allocate memory for the skeleton VM, reply ready.
 *   receiving → page batches arrive in order (round 0, 1, …; seq 0, 1, … in a round);
 *               each round ends with a request the destination acknowledges once all
 *               of its batches are applied; the blackout request brings the last round
 *               and the device state.
 *   prepared  → memory and device state are complete; waiting for resume. A blackout
 *               request that asks to resume (the storage needs no hand-over) goes on to
 *               running in the same step (never with verify: the hash is of paused memory).
 *   running   → resumed here and announced (the VM's new location).
 *   aborted   → the source aborted, the link went, or the source broke the protocol:
 *               the skeleton VM and its memory are discarded. The source still runs it.
 *
 * Nothing the source sends out of order is applied: a wrong round, a missing or repeated
 * batch, or a resume before the blackout aborts the migration with a reason.
 */
import { HvlabError } from '../../shared/errors.js'
import type { EmitEffect } from '../../shared/machine/effect.js'
import type { StorageMode } from '../../shared/protocol/migration-messages.js'
import { migrationEvent, type MigrationDetailsOf, type MigrationEvent, type MigrationEventKind } from './migration-events.js'

export const DESTINATION_STAGES = ['idle', 'receiving', 'prepared', 'running', 'aborted'] as const
export type DestinationStage = (typeof DESTINATION_STAGES)[number]

export interface MigrationDestinationConfig {
  /** This host. */
  readonly host: string
  /** The source host (the authenticated peer). */
  readonly source: string
}

export type DestinationInput =
  | {
      readonly kind: 'begin'
      readonly migration_id: string
      readonly vm: string
      readonly page_count: number
      readonly storage: StorageMode
      readonly verify: boolean
    }
  /** A page batch of `entries` pages (from its header). */
  | { readonly kind: 'pages'; readonly round: number; readonly seq: number; readonly entries: number }
  | { readonly kind: 'round-end'; readonly round: number; readonly batches: number }
  | {
      readonly kind: 'blackout'
      readonly round: number
      readonly batches: number
      readonly device_state_bytes: number
      /** Resume at once, once prepared. */
      readonly resume?: boolean
    }
  | { readonly kind: 'resume' }
  | { readonly kind: 'abort'; readonly reason: string }
  | { readonly kind: 'link-lost'; readonly reason: string }
  /** The shell could not apply a batch (malformed) or allocate memory. */
  | { readonly kind: 'failed'; readonly reason: string }

export type DestinationReply =
  | { readonly t: 'migration-ready' }
  | { readonly t: 'migration-round-ack'; readonly round: number; readonly batches: number; readonly pages: number }
  /** The shell adds the memory hash when the migration verifies. */
  | { readonly t: 'migration-prepared'; readonly verify: boolean }
  | { readonly t: 'migration-running'; readonly host: string }

export type DestinationEffect =
  | { readonly kind: 'allocate-memory'; readonly page_count: number }
  /** Apply the batch that came with the `pages` input, after the batches before it. */
  | { readonly kind: 'apply-batch' }
  | { readonly kind: 'load-device-state' }
  | { readonly kind: 'resume-guest' }
  /** Tell the virtual switch the VM is here now (like a gratuitous ARP). */
  | { readonly kind: 'announce-location'; readonly host: string }
  | { readonly kind: 'discard-vm' }
  | { readonly kind: 'reply'; readonly reply: DestinationReply }
  | { readonly kind: 'refuse'; readonly code: 'HVLAB_E_STATE' | 'HVLAB_E_PROTOCOL'; readonly reason: string }
  | EmitEffect<MigrationEvent>

export class MigrationDestination {
  readonly config: MigrationDestinationConfig
  private stage_: DestinationStage = 'idle'
  private migration_id = ''
  private vm = ''
  private verify_ = false
  private round = 0
  private seq = 0
  private round_pages = 0
  private pages_total = 0
  private reason = ''

  constructor(config: MigrationDestinationConfig) {
    this.config = config
  }

  get stage(): DestinationStage {
    return this.stage_
  }

  /** The source asked for memory hashes (`--verify`). */
  get verify(): boolean {
    return this.verify_
  }

  /** Why it aborted ('' otherwise). */
  get abort_reason(): string {
    return this.reason
  }

  /** Pages applied over all rounds (a page sent in two rounds counts twice). */
  get pages_applied(): number {
    return this.pages_total
  }

  step(input: DestinationInput, now_ms: number): DestinationEffect[] {
    if (!Number.isFinite(now_ms)) throw new HvlabError('HVLAB_E_INTERNAL', `migration destination: now_ms ${now_ms} is not a time`)
    switch (input.kind) {
      case 'begin':
        return this.onBegin(input)
      case 'pages':
        return this.onPages(input)
      case 'round-end':
        return this.onRoundEnd(input)
      case 'blackout':
        return this.onBlackout(input)
      case 'resume':
        return this.onResume()
      case 'abort':
        return this.abort(`the source aborted: ${input.reason}`)
      case 'link-lost':
        return this.abort(`the link to ${this.config.source} was lost: ${input.reason}`)
      case 'failed':
        return this.abort(input.reason)
    }
  }

  private emit<K extends MigrationEventKind>(kind: K, details: MigrationDetailsOf<K>): DestinationEffect {
    return {
      kind: 'emit',
      event: migrationEvent(kind, { migration_id: this.migration_id, vm: this.vm, source: this.config.source }, details),
    }
  }

  /** Refuses a request that does not fit the stage; the migration cannot go on. */
  private protocolBreach(what: string): DestinationEffect[] {
    const reason = `migration ${this.migration_id} of vm ${this.vm}: ${what}`
    const effects = this.abort(reason)
    return [
      ...effects,
      { kind: 'refuse', code: 'HVLAB_E_PROTOCOL', reason: `${reason}; the destination discarded it — start the migration again` },
    ]
  }

  private onBegin(input: Extract<DestinationInput, { kind: 'begin' }>): DestinationEffect[] {
    if (this.stage_ !== 'idle') {
      return [
        {
          kind: 'refuse',
          code: 'HVLAB_E_STATE',
          reason: `migration ${this.migration_id} of vm ${this.vm} already began on ${this.config.host}`,
        },
      ]
    }
    this.stage_ = 'receiving'
    this.migration_id = input.migration_id
    this.vm = input.vm
    this.verify_ = input.verify
    this.round = 0
    this.seq = 0
    return [
      this.emit('migration.incoming', { pages: input.page_count, storage: input.storage }),
      { kind: 'allocate-memory', page_count: input.page_count },
      { kind: 'reply', reply: { t: 'migration-ready' } },
    ]
  }

  private onPages(input: Extract<DestinationInput, { kind: 'pages' }>): DestinationEffect[] {
    if (this.stage_ !== 'receiving') return this.stage_ === 'aborted' ? [] : this.protocolBreach(`pages arrived while ${this.stage_}`)
    if (input.round !== this.round || input.seq !== this.seq) {
      return this.protocolBreach(`batch ${input.round}/${input.seq} arrived where ${this.round}/${this.seq} was due`)
    }
    this.seq++
    this.round_pages += input.entries
    this.pages_total += input.entries
    return [{ kind: 'apply-batch' }]
  }

  private checkRound(round: number, batches: number): string | null {
    if (round !== this.round) return `round ${round} ended, but round ${this.round} is running`
    if (batches !== this.seq) return `round ${round} ended with ${batches} batches sent but ${this.seq} received`
    return null
  }

  private onRoundEnd(input: Extract<DestinationInput, { kind: 'round-end' }>): DestinationEffect[] {
    if (this.stage_ !== 'receiving') return this.protocolBreach(`a round ended while ${this.stage_}`)
    const wrong = this.checkRound(input.round, input.batches)
    if (wrong) return this.protocolBreach(wrong)
    const reply: DestinationReply = { t: 'migration-round-ack', round: input.round, batches: input.batches, pages: this.round_pages }
    this.round++
    this.seq = 0
    this.round_pages = 0
    return [{ kind: 'reply', reply }]
  }

  private onBlackout(input: Extract<DestinationInput, { kind: 'blackout' }>): DestinationEffect[] {
    if (this.stage_ !== 'receiving') return this.protocolBreach(`the blackout began while ${this.stage_}`)
    const wrong = this.checkRound(input.round, input.batches)
    if (wrong) return this.protocolBreach(wrong)
    if (input.device_state_bytes < 1) return this.protocolBreach('the blackout brought no device state')
    if (input.resume === true && this.verify_)
      return this.protocolBreach('the blackout asked to resume at once, but memory is to be verified first')
    this.stage_ = 'prepared'
    if (input.resume === true) return [{ kind: 'load-device-state' }, ...this.onResume()]
    return [{ kind: 'load-device-state' }, { kind: 'reply', reply: { t: 'migration-prepared', verify: this.verify_ } }]
  }

  private onResume(): DestinationEffect[] {
    if (this.stage_ !== 'prepared') return this.protocolBreach(`resume arrived while ${this.stage_}`)
    this.stage_ = 'running'
    return [
      { kind: 'resume-guest' },
      { kind: 'announce-location', host: this.config.host },
      this.emit('migration.resumed', { host: this.config.host }),
      { kind: 'reply', reply: { t: 'migration-running', host: this.config.host } },
    ]
  }

  /** Before the VM runs here: discard it. Once it runs, it is ours; nothing to undo. */
  private abort(reason: string): DestinationEffect[] {
    if (this.stage_ === 'running' || this.stage_ === 'aborted') return []
    const hadVm = this.stage_ !== 'idle'
    this.stage_ = 'aborted'
    this.reason = reason
    return [...(hadVm ? [{ kind: 'discard-vm' } as const] : []), this.emit('migration.aborted', { reason })]
  }
}
