/**
 * The shell around the array's Remote Copy groups: it keeps one `RemoteCopyGroup` per
 * group (restored from its journal after a restart), feeds it inputs one at a time —
 * operator verbs, host writes, the partner's messages, link up/down, timers — and carries
 * out the effects of each step strictly in order, every disk effect finished before the
 * next one starts and every step's effects finished before the next step. A host write
 * to a grouped volume is answered when the group says `ack-host` (sync mode: after the
 * partner has it durably) or `fail-host`.
 *
 * Full resyncs: a `send-blocks` marked `compare` hashes its blocks (in the hash pool,
 * off the event loop), asks the partner for its hashes of the same blocks
 * (rc-hash-request → rc-hash-list, one batch at a time) and sends only the blocks that
 * differ; if the comparison cannot be made, the whole batch is sent. The partner answers
 * hash requests in its group's order of inputs. Resync concurrency is bounded across all
 * groups of the array by one `ResyncLimiter` (`resync_groups_max`).
 *
 * Bounded inputs: each group's queue (group-input-queue.ts) refuses an input beyond
 * `inputs_queued_max` with HVLAB_E_BACKPRESSURE, answered to its sender: a host or the
 * operator gets the error; the partner gets an rc-write-nack for a refused rc-write, and
 * for any other message it could not take the group's link counts as failed (its next
 * session makes the partner resend what was lost). Sync writes wait at most
 * `sync_write_timeout_ms` for the partner (remote-copy-group.ts).
 *
 * Damaged journals: a group whose journal has an unreadable line (or a rollback snapshot
 * that cannot be framed) still opens. It is reported — a warning in the log, an
 * `rc.journal-damaged` event on the timeline, `journal_damaged` in its status until a
 * full resync completes — and what cannot be trusted is rebuilt: a source resyncs every
 * volume by comparison; a target's rollback set also takes every block its rollback
 * snapshot holds.
 */
import { join } from 'node:path'
import { scaled } from '../shared/clock.js'
import type { Logger } from '../shared/log.js'
import { HvlabError, describeError, isHvlabError } from '../shared/errors.js'
import { MachineDriver, type EffectHandlers } from '../shared/machine/driver.js'
import { flattenEventDetails } from '../shared/timeline/flatten.js'
import type { EmitEvent } from '../shared/timeline/events.js'
import { messageDef } from '../shared/protocol/messages.js'
import { LIMITS_DEFAULT } from '../shared/topology.js'
import type { MessageOf } from '../shared/protocol/messages.js'
import type { RcGroupStatus, RcPeerMessage } from '../shared/protocol/storage-messages.js'
import { differingBlocks, hashBlocks, hashBlocksSkippingZeros } from './block-hash.js'
import { BlockSnapshot } from './block-snapshot.js'
import { GroupInputQueue, type InputOrigin } from './group-input-queue.js'
import { GroupJournal, type BlockAppend, type GroupJournalContents } from './group-journal.js'
import { ResyncLimiter, RESYNC_GROUPS_MAX_DEFAULT } from './resync-limiter.js'
import {
  RemoteCopyGroup,
  SYNC_WRITE_TIMEOUT_MS_DEFAULT,
  rcWriteNackMessage,
  type RcEffect,
  type RcInput,
  type RcMode,
  type RcVerb,
  type WriteErrorPolicy,
} from './remote-copy-group.js'
import type { VolumeStore } from './volume-store.js'

export const RC_GROUPS_MAX = 256

export interface RemoteCopyServiceOptions {
  /** Where the groups' journals and rollback snapshots live. */
  dir: string
  store: VolumeStore
  /** The arrays this one may pair with (the topology's other arrays). */
  partners: readonly string[]
  /** The lab's timeScale: periods shrink with it. */
  timeScale: number
  now: () => number
  setTimer: (delay_ms: number, fn: () => void) => void
  /** Sends to a partner array; resolves false when it is not connected (the message is dropped). */
  send: (to: string, message: RcPeerMessage, attachment?: Uint8Array) => Promise<boolean>
  emit: EmitEvent
  log: Logger
  /** Counts bytes sent in resync/delta batches. */
  onResyncBytes?: (bytes: number) => void
  /** Counts blocks a compared batch did not send (the partner held them already). */
  onResyncBlocksSkipped?: (blocks: number) => void
  /**
   * Asks a partner array for the hashes of blocks it holds (full resync comparison);
   * resolves undefined when it is not connected. Without it, a full resync sends every block.
   */
  requestHashes?: (to: string, message: MessageOf<'rc-hash-request'>) => Promise<Uint8Array | undefined>
  /** Hashes blocks off the event loop (block-hash-pool.ts); without it they are hashed inline (tests). */
  hashBlocks?: (data: Uint8Array, block_size_bytes: number) => Promise<Uint8Array>
  /** Groups of this array that may run a resync/delta cycle at once. */
  resync_groups_max?: number
  /** A sync write waits this long for the partner's ack; then the group's link counts as failed (topology: rc_sync_write_timeout_ms). */
  sync_write_timeout_ms?: number
  /** Inputs from hosts and the operator, and from the partner, each waiting per group at most (topology: rc_group_inputs_queued_max). */
  inputs_queued_max?: number
}

interface GroupRuntime {
  group: RemoteCopyGroup
  journal: GroupJournal
  delta: BlockSnapshot
  rollback: BlockSnapshot
  queue: GroupInputQueue
  /** Steps the group and carries out its effects in order; `queue` decides when (one input at a time, bounded per origin). */
  driver: MachineDriver<RcInput, RcEffect>
  /** A link-failed input is queued and has not run yet (one is enough). */
  link_failure_queued: boolean
  /** The group was removed: inputs still queued for it (a timer, a late message) are refused. */
  removed?: boolean
}

interface PendingWrite {
  resolve: () => void
  reject: (e: Error) => void
}

export interface RcCreateRequest {
  group: string
  partner: string
  role: 'primary' | 'secondary'
  mode: RcMode
  period_ms?: number | undefined
  write_error_policy?: WriteErrorPolicy | undefined
  auto_recover?: boolean | undefined
  auto_failover?: boolean | undefined
}

export class RemoteCopyService {
  private readonly groups = new Map<string, GroupRuntime>()
  private readonly pending = new Map<number, PendingWrite>()
  private readonly partnersUp = new Set<string>()
  /** shutdown() ran: no more input. */
  private shutDown = false
  private writeSeq = 0
  private readonly log: Logger
  private readonly limiter: ResyncLimiter

  private constructor(private readonly o: RemoteCopyServiceOptions) {
    this.log = o.log.child({ component: 'remote-copy' })
    this.limiter = new ResyncLimiter(o.resync_groups_max ?? RESYNC_GROUPS_MAX_DEFAULT)
  }

  /** Groups resyncing now and groups waiting for their turn (array-wide limit). */
  resyncConcurrency(): { running: number; queued: number; groups_max: number } {
    return { running: this.limiter.running, queued: this.limiter.queued, groups_max: this.limiter.groups_max }
  }

  /**
   * A partner's rc-hash-request: the hashes of the named blocks as this array holds them,
   * taken in the group's order of inputs (after every batch received before it).
   */
  async hashRequest(from: string, m: MessageOf<'rc-hash-request'>): Promise<Uint8Array> {
    const rt = this.require(m.group)
    if (rt.group.config.partner !== from) {
      throw new HvlabError(
        'HVLAB_E_REFUSED',
        `array ${from} asked for block hashes of group ${m.group}, but its partner is ${rt.group.config.partner}`,
      )
    }
    return rt.queue.run('partner', async () => {
      rt.group.checkHashRequest(m.volume, m.block_list)
      return this.hash(await this.readBlocks(m.volume, m.block_list), this.o.store.block_size_bytes)
    })
  }

  /** Opens the service and restores every group persisted in `dir`. */
  static async open(o: RemoteCopyServiceOptions): Promise<RemoteCopyService> {
    const s = new RemoteCopyService(o)
    for (const name of await GroupJournal.groupsIn(o.dir)) await s.restore(name)
    return s
  }

  /** Restores one group from its journal; a damaged journal is reported and distrusted, not fatal. */
  private async restore(name: string): Promise<void> {
    const journal = await GroupJournal.open(this.o.dir, name)
    const saved = await journal.load()
    if (!saved) return
    const rollback = await BlockSnapshot.durable(this.rollbackPath(name), saved.record.config.block_size_bytes)
    const damaged = saved.damaged_lines > 0 || rollback.damaged
    const appended = damaged ? [...saved.appended, ...rollbackAppends(rollback)] : saved.appended
    const group = RemoteCopyGroup.fromRecord(saved.record, appended, {
      sync_write_timeout_ms: this.syncWriteTimeoutMs,
      journal_damaged: damaged,
    })
    // A clean-shutdown mark counts once: from now on a crash must be treated as one. The
    // sets rebuilt from a damaged journal are recorded at once, and the damage with it.
    if (saved.record.clean_shutdown || damaged) await journal.persist(group.record())
    if (damaged) this.reportDamagedJournal(name, saved, rollback)
    await this.adopt(group, journal, rollback)
    this.log.info({ group: name, role: group.currentRole }, 'remote copy group restored')
  }

  private reportDamagedJournal(group: string, saved: GroupJournalContents, rollback: BlockSnapshot): void {
    const details = { group, lines_skipped: saved.damaged_lines, rollback_snapshot_damaged: rollback.damaged }
    this.log.warn(
      details,
      'remote copy group journal is damaged; opened without the unreadable part: a source resyncs every volume by comparison',
    )
    this.o.emit('rc.journal-damaged', details)
  }

  private get syncWriteTimeoutMs(): number {
    return this.o.sync_write_timeout_ms ?? SYNC_WRITE_TIMEOUT_MS_DEFAULT
  }

  private rollbackPath(group: string): string {
    return join(this.o.dir, `${group}.rollback`)
  }

  groupNames(): string[] {
    return [...this.groups.keys()].sort()
  }

  /** The group holding `volume` on this array, if any. */
  groupOfVolume(volume: string): string | undefined {
    for (const [name, rt] of this.groups) if (rt.group.status().volumes.some((v) => v.volume === volume)) return name
    return undefined
  }

  status(group?: string): RcGroupStatus[] {
    const now_ms = this.o.now()
    if (group !== undefined) return [this.require(group).group.status(now_ms)]
    return this.groupNames().map((g) => this.groups.get(g)!.group.status(now_ms))
  }

  async create(r: RcCreateRequest): Promise<RcGroupStatus> {
    if (this.groups.has(r.group))
      throw new HvlabError(
        'HVLAB_E_STATE',
        `remote copy group ${r.group} already exists on this array; \`hvlab rcopy status ${r.group}\` shows it`,
      )
    if (!this.o.partners.includes(r.partner)) {
      throw new HvlabError(
        'HVLAB_E_USAGE',
        `${r.partner} is not another array of this lab; partners: ${this.o.partners.join(', ') || '(none)'}`,
      )
    }
    if (this.groups.size >= RC_GROUPS_MAX)
      throw new HvlabError('HVLAB_E_REFUSED', `this array already has ${RC_GROUPS_MAX} remote copy groups (its limit)`)
    const period_ms = r.period_ms === undefined ? undefined : scaled(r.period_ms, this.o.timeScale)
    const group = new RemoteCopyGroup(
      {
        group: r.group,
        partner: r.partner,
        role: r.role,
        mode: r.mode,
        block_size_bytes: this.o.store.block_size_bytes,
        ...(period_ms === undefined ? {} : { period_ms }),
        ...(r.write_error_policy === undefined ? {} : { write_error_policy: r.write_error_policy }),
        ...(r.auto_recover === undefined ? {} : { auto_recover: r.auto_recover }),
        ...(r.auto_failover === undefined ? {} : { auto_failover: r.auto_failover }),
      },
      { sync_write_timeout_ms: this.syncWriteTimeoutMs },
    )
    const journal = await GroupJournal.open(this.o.dir, r.group)
    await journal.persist(group.record())
    const rt = await this.adopt(group, journal, await BlockSnapshot.durable(this.rollbackPath(r.group), group.config.block_size_bytes))
    this.o.emit('rc.created', { group: r.group, role: r.role, partner: r.partner, mode: r.mode })
    return rt.group.status(this.o.now())
  }

  async admit(group: string, volume: string, remote_volume: string): Promise<RcGroupStatus> {
    const rt = this.require(group)
    const other = this.groupOfVolume(volume)
    if (other !== undefined) throw new HvlabError('HVLAB_E_STATE', `volume ${volume} is already in remote copy group ${other}`)
    const { block_count } = this.o.store.get(volume)
    await this.input(rt, { kind: 'admit', volume, remote_volume, block_count }, 'caller')
    return rt.group.status(this.o.now())
  }

  /** Takes `volume` out of `group` on this array (dismissrcopyvv); refused while the group is started. */
  async dismiss(group: string, volume: string): Promise<RcGroupStatus> {
    const rt = this.require(group)
    await this.input(rt, { kind: 'dismiss', volume }, 'caller')
    return rt.group.status(this.o.now())
  }

  /**
   * Removes `group` from this array (removercopygroup): refused while it is started. Its
   * volumes leave it and stay on the array; its journal and rollback snapshot are deleted,
   * so it stays gone after a restart. Returns the volumes it held.
   */
  async remove(group: string): Promise<string[]> {
    const rt = this.require(group)
    return rt.queue.run('caller', async () => {
      if (rt.removed) throw this.notFound(group)
      const why = rt.group.removalRefusal()
      if (why !== null) throw why
      const status = rt.group.status(this.o.now())
      rt.removed = true
      this.groups.delete(group)
      for (const g of this.limiter.release(group)) this.grant(g)
      await rt.journal.remove()
      await rt.rollback.release()
      this.o.emit('rc.group-removed', { group, role: status.role, volumes: status.volumes.map((v) => v.volume) })
      return status.volumes.map((v) => v.volume)
    })
  }

  async verb(group: string, verb: RcVerb, force: boolean): Promise<RcGroupStatus> {
    const rt = this.require(group)
    await this.input(rt, { kind: 'command', verb, force }, 'caller')
    return rt.group.status(this.o.now())
  }

  /**
   * A host's write to a grouped volume: resolves when the group acknowledges it, throws
   * when the group refuses or fails it. The caller has checked masking and fencing.
   */
  async hostWrite(group: string, volume: string, block: number, data: Uint8Array): Promise<void> {
    const rt = this.require(group)
    const write_id = ++this.writeSeq
    const acked = new Promise<void>((resolve, reject) => this.pending.set(write_id, { resolve, reject }))
    acked.catch(() => undefined) // observed below; a refusal in step() must not leave it unhandled
    try {
      await this.input(rt, { kind: 'host-write', write_id, volume, block, data }, 'caller')
    } catch (e) {
      this.pending.delete(write_id)
      throw e
    }
    return acked
  }

  /** A message from a lab peer; `from` is its authenticated name. */
  peerMessage(from: string, message: RcPeerMessage, attachment: Uint8Array | undefined): void {
    const rt = this.groups.get(message.group)
    if (!rt) {
      this.log.warn(
        { from, t: message.t, group: message.group },
        'message for a remote copy group this array does not have; create the group on both arrays',
      )
      return
    }
    if (rt.group.config.partner !== from) {
      this.log.warn(
        { from, t: message.t, group: message.group, partner: rt.group.config.partner },
        'remote copy message from an array that is not the group’s partner; dropped',
      )
      return
    }
    const needsAttachment = messageDef(message.t)?.attachment === 'required'
    void this.peerInput(rt, message, needsAttachment ? attachment : undefined)
  }

  linkUp(partner: string): void {
    const flapped = this.partnersUp.has(partner)
    this.partnersUp.add(partner)
    for (const rt of this.groupsWith(partner)) {
      // A new connection while we thought the old one up: the partner restarted; whatever was in flight is lost.
      if (flapped) void this.input(rt, { kind: 'link-down' }, 'internal').catch((e: unknown) => this.stepFailed(rt, 'link-down', e))
      void this.input(rt, { kind: 'link-up' }, 'internal').catch((e: unknown) => this.stepFailed(rt, 'link-up', e))
    }
  }

  linkDown(partner: string): void {
    if (!this.partnersUp.delete(partner)) return
    for (const rt of this.groupsWith(partner))
      void this.input(rt, { kind: 'link-down' }, 'internal').catch((e: unknown) => this.stepFailed(rt, 'link-down', e))
  }

  /**
   * A clean shutdown: no input after it; each group, once its queue is idle, persists a
   * record marked clean (writes still waiting for the partner counted dirty), so a sync
   * primary restarted from it need not suspect every block. Then closes like `close`.
   * Call it after host I/O has stopped (the process's links are down).
   */
  async shutdown(): Promise<void> {
    this.shutDown = true
    for (const rt of this.groups.values()) await rt.queue.run('internal', () => rt.journal.persist(rt.group.record(true)))
    await this.close()
  }

  /** Releases the journals as they are (what a crash leaves; tests restart from it). */
  async close(): Promise<void> {
    for (const rt of this.groups.values()) {
      await rt.queue.run('internal', async () => {
        await rt.journal.close()
        await rt.rollback.close()
      })
    }
  }

  // ------------------------------------------------------------------ internals

  private async adopt(group: RemoteCopyGroup, journal: GroupJournal, rollback: BlockSnapshot): Promise<GroupRuntime> {
    const rt: GroupRuntime = {
      group,
      journal,
      delta: BlockSnapshot.inMemory(group.config.block_size_bytes),
      rollback,
      queue: new GroupInputQueue(group.config.group, this.o.inputs_queued_max ?? LIMITS_DEFAULT.rc_group_inputs_queued_max),
      driver: new MachineDriver<RcInput, RcEffect>({
        step: (input) => this.step(rt, input),
        handlers: this.handlers(() => rt),
      }),
      link_failure_queued: false,
    }
    group.requireResyncPermits()
    this.groups.set(group.config.group, rt)
    if (this.partnersUp.has(group.config.partner)) await this.input(rt, { kind: 'link-up' }, 'internal')
    return rt
  }

  private groupsWith(partner: string): GroupRuntime[] {
    return [...this.groups.values()].filter((rt) => rt.group.config.partner === partner)
  }

  private require(group: string): GroupRuntime {
    const rt = this.groups.get(group)
    if (!rt) throw this.notFound(group)
    return rt
  }

  private notFound(group: string): HvlabError {
    return new HvlabError('HVLAB_E_NOT_FOUND', `remote copy group ${group} does not exist on this array; \`hvlab rcopy create\` makes one`)
  }

  private async peerInput(rt: GroupRuntime, message: RcPeerMessage, attachment: Uint8Array | undefined): Promise<void> {
    try {
      if (message.t === 'rc-admit-peer') await rt.queue.run('partner', () => this.ensureVolume(message.volume, message.block_count))
      await this.input(rt, { kind: 'peer', message, ...(attachment ? { attachment } : {}) }, 'partner')
    } catch (e) {
      if (isHvlabError(e) && e.code === 'HVLAB_E_BACKPRESSURE') await this.refusedPartnerInput(rt, message, e)
      else this.stepFailed(rt, message.t, e)
    }
  }

  /**
   * A partner's message this group's queue could not take is answered: an rc-write with
   * its nack; anything else fails the group's link (the partner resends in the next session).
   */
  private async refusedPartnerInput(rt: GroupRuntime, message: RcPeerMessage, e: HvlabError): Promise<void> {
    this.stepFailed(rt, message.t, e)
    if (message.t === 'rc-write') {
      await this.o.send(rt.group.config.partner, rcWriteNackMessage(message.group, message.incarnation, message.seq, e.code, e.message))
      return
    }
    if (rt.link_failure_queued) return
    rt.link_failure_queued = true
    await this.input(
      rt,
      { kind: 'link-failed', code: e.code, reason: `array ${rt.group.config.partner}'s ${message.t} was dropped: ${e.message}` },
      'internal',
    )
      .catch((err: unknown) => this.stepFailed(rt, 'link-failed', err))
      .finally(() => (rt.link_failure_queued = false))
  }

  private stepFailed(rt: GroupRuntime, what: string, e: unknown): void {
    this.log.warn({ group: rt.group.config.group, input: what, err: describeError(e) }, 'remote copy group refused an input')
  }

  /** The secondary's copy of an admitted volume: created here if the operator did not. */
  private async ensureVolume(volume: string, block_count: number): Promise<void> {
    const size_bytes = block_count * this.o.store.block_size_bytes
    if (!this.o.store.has(volume)) {
      await this.o.store.create(volume, size_bytes)
      this.o.emit('array.volume-created', { volume, size_bytes, reason: 'remote copy secondary' })
      return
    }
    const have = this.o.store.get(volume)
    if (have.block_count < block_count) await this.o.store.grow(volume, size_bytes)
    else if (have.block_count > block_count) {
      throw new HvlabError(
        'HVLAB_E_STATE',
        `volume ${volume} here has ${have.block_count} blocks but its primary has ${block_count}; a secondary volume must be the same size`,
      )
    }
  }

  /**
   * One input, then its effects in order; resolves when they are all done, rejects with a
   * refusal or a failed effect (its caller answers whoever sent it, or logs it: stepFailed).
   */
  private input(rt: GroupRuntime, input: RcInput, origin: InputOrigin): Promise<void> {
    return rt.queue.run(origin, () => rt.driver.feedSettled(input))
  }

  private step(rt: GroupRuntime, input: RcInput): readonly RcEffect[] {
    if (this.shutDown) throw new HvlabError('HVLAB_E_CLOSED', `array is shutting down; group ${rt.group.config.group} takes no more input`)
    if (rt.removed) throw this.notFound(rt.group.config.group)
    return rt.group.step(input, this.o.now())
  }

  /** Every disk effect resolves once durable, so the next effect waits for it. */
  private handlers(of: () => GroupRuntime): EffectHandlers<RcEffect> {
    const store = this.o.store
    return {
      send: async (e) => void (await this.o.send(e.to, e.message, e.attachment)),
      'send-blocks': (e) => this.sendBlocks(of(), e),
      'request-resync-permit': () => {
        if (this.limiter.request(of().group.config.group)) this.grant(of().group.config.group)
      },
      'release-resync-permit': () => {
        for (const g of this.limiter.release(of().group.config.group)) this.grant(g)
      },
      'write-local': async (e) => {
        const bs = store.block_size_bytes
        for (const [first, count, offset] of runsOf(e.blocks))
          await store.write(e.volume, first, e.data.subarray(offset * bs, (offset + count) * bs))
      },
      preserve: (e) => this.preserve(of(), e),
      rollback: (e) => this.rollBack(of(), e),
      release: (e) => (e.snapshot === 'delta' ? of().delta : of().rollback).release(),
      'ack-host': (e) => {
        const w = this.pending.get(e.write_id)
        this.pending.delete(e.write_id)
        w?.resolve()
      },
      'fail-host': (e) => {
        const w = this.pending.get(e.write_id)
        this.pending.delete(e.write_id)
        w?.reject(new HvlabError(e.code, e.reason))
      },
      persist: (e) => of().journal.persist(e.record),
      'persist-blocks': (e) => of().journal.append(e),
      'set-timer': (e) => {
        const rt = of()
        const token = e.token
        this.o.setTimer(Math.max(0, e.at_ms - this.o.now()), () => {
          void this.input(rt, { kind: 'timer', token }, 'internal').catch((err: unknown) => this.stepFailed(rt, 'timer', err))
        })
      },
      emit: (e) => this.o.emit(e.event, flattenEventDetails(e.details)),
    }
  }

  private async sendBlocks(rt: GroupRuntime, e: Extract<RcEffect, { kind: 'send-blocks' }>): Promise<void> {
    const parts = await this.blocksAsSent(rt, e.volume, e.blocks)
    let blocks = e.blocks
    let data = Buffer.concat(parts)
    if (e.compare) {
      const differ = await this.compareWithPartner(e, data)
      if (differ !== undefined && differ.length === 0) {
        // Nothing to send: the batch is answered here, after this step's effects.
        void this.input(
          rt,
          { kind: 'peer', message: { t: 'rc-blocks-ack', group: e.group, cycle: e.cycle, batch: e.batch, blocks: 0 } },
          'internal',
        ).catch((err: unknown) => this.stepFailed(rt, 'rc-blocks-ack', err))
        return
      }
      if (differ !== undefined) {
        const index = new Map(e.blocks.map((b, i) => [b, i]))
        blocks = differ
        data = Buffer.concat(differ.map((b) => parts[index.get(b)!]!))
      }
    }
    this.o.onResyncBytes?.(data.length)
    await this.o.send(
      e.to,
      { t: 'rc-blocks', group: e.group, cycle: e.cycle, batch: e.batch, volume: e.remote_volume, block_list: blocks },
      data,
    )
  }

  /**
   * Each of `blocks` as a sync sends it: the copy the delta snapshot preserved for the cycle,
   * else the volume's current contents. The volume is read a run of consecutive blocks at a
   * time (one read per run, not per block: a new 16 MiB volume's first sync made 4,096 reads
   * of 4 KiB, and creating VMs spent most of an array's CPU there, issue 12).
   */
  private async blocksAsSent(rt: GroupRuntime, volume: string, blocks: readonly number[]): Promise<Buffer[]> {
    const current = await this.currentBlocks(volume, blocks)
    return blocks.map((b) => rt.delta.get(volume, b) ?? current.get(b)!)
  }

  /** The current contents of `blocks`, one view (not a copy) per block, read a run at a time. */
  private async currentBlocks(volume: string, blocks: readonly number[]): Promise<Map<number, Buffer>> {
    const bs = this.o.store.block_size_bytes
    const current = new Map<number, Buffer>()
    for (const [first, count] of runsOf(blocks)) {
      const run = await this.o.store.read(volume, first, count)
      for (let i = 0; i < count; i++) current.set(first + i, run.subarray(i * bs, (i + 1) * bs))
    }
    return current
  }

  private async preserve(rt: GroupRuntime, e: Extract<RcEffect, { kind: 'preserve' }>): Promise<void> {
    const snapshot = e.snapshot === 'delta' ? rt.delta : rt.rollback
    const current = await this.currentBlocks(e.volume, e.blocks)
    await snapshot.preserve(e.volume, e.blocks, (b) => current.get(b)!)
  }

  private async rollBack(rt: GroupRuntime, e: Extract<RcEffect, { kind: 'rollback' }>): Promise<void> {
    for (const b of e.blocks) {
      const old = rt.rollback.get(e.volume, b)
      if (old) await this.o.store.write(e.volume, b, old)
      else
        this.log.warn(
          { group: rt.group.config.group, volume: e.volume, block: b },
          'no preserved copy of a block to roll back (its cycle had completed); keeping the current contents',
        )
    }
  }

  /** Tells a group (after the current step) that it may run its cycle now. */
  private grant(group: string): void {
    const rt = this.groups.get(group)
    if (!rt) {
      for (const g of this.limiter.release(group)) this.grant(g)
      return
    }
    void this.input(rt, { kind: 'resync-permit' }, 'internal').catch((err: unknown) => {
      this.stepFailed(rt, 'resync-permit', err)
      for (const g of this.limiter.release(group)) this.grant(g)
    })
  }

  /**
   * The blocks of a batch whose hash differs from the partner's copy; undefined when the
   * comparison could not be made (not connected, no hash service, an error): then the
   * whole batch is sent, which is always safe.
   */
  private async compareWithPartner(e: Extract<RcEffect, { kind: 'send-blocks' }>, data: Buffer): Promise<number[] | undefined> {
    if (!this.o.requestHashes) return undefined
    try {
      const [local, remote] = await Promise.all([
        this.hash(data, this.o.store.block_size_bytes),
        this.o.requestHashes(e.to, { t: 'rc-hash-request', group: e.group, cycle: e.cycle, volume: e.remote_volume, block_list: e.blocks }),
      ])
      if (remote === undefined) return undefined
      const differ = differingBlocks(e.blocks, local, remote)
      this.o.onResyncBlocksSkipped?.(e.blocks.length - differ.length)
      return differ
    } catch (err) {
      this.log.warn(
        { group: e.group, volume: e.volume, blocks: e.blocks.length, err: describeError(err) },
        'could not compare block hashes with the partner; sending the whole batch',
      )
      return undefined
    }
  }

  /** Blocks of zeros (a new volume's unwritten ones) are not hashed: block-hash.ts. */
  private hash(data: Uint8Array, block_size_bytes: number): Promise<Uint8Array> {
    return hashBlocksSkippingZeros(data, block_size_bytes, (nonZero) =>
      this.o.hashBlocks ? this.o.hashBlocks(nonZero, block_size_bytes) : Promise.resolve(hashBlocks({ data: nonZero, block_size_bytes })),
    )
  }

  private async readBlocks(volume: string, blocks: readonly number[]): Promise<Buffer> {
    const parts: Buffer[] = []
    for (const [first, count] of runsOf(blocks)) parts.push(await this.o.store.read(volume, first, count))
    return Buffer.concat(parts)
  }
}

/** A rollback snapshot's blocks as appends to the rollback set (to rebuild it after journal damage). */
function rollbackAppends(rollback: BlockSnapshot): BlockAppend[] {
  return [...rollback.blocksByVolume()].map(([volume, blocks]) => ({ kind: 'persist-blocks', set: 'rollback', volume, blocks }))
}

/** Consecutive runs of a block list: [first block, count, index of the first in the list]. */
export function runsOf(blocks: readonly number[]): [number, number, number][] {
  const runs: [number, number, number][] = []
  blocks.forEach((b, i) => {
    const last = runs[runs.length - 1]
    if (last && last[0] + last[1] === b && last[1] < 256) last[1]++
    else runs.push([b, 1, i])
  })
  return runs
}
