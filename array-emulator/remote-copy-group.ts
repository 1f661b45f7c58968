/**
 * One Remote Copy group on one array, as a pure state machine (HPE 3PAR semantics).
 *
 *   step(input, now_ms) -> RcEffect[]
 *
 * No I/O, timers or clocks inside. A refused command or host write throws HvlabError and
 * changes nothing.
 *
 * Contract with the shell that runs the effects:
 * - Effects run in order. `write-local`, `preserve`, `rollback`, `persist` and
 *   `persist-blocks` are durable before the next effect starts, and the effects of one
 *   step finish before those of the next step start (so a `send-blocks` reads the
 *   blocks at exactly the point where it was emitted).
 * - `preserve` copies the current contents of blocks aside into the named snapshot
 *   (once per block per snapshot); `send-blocks` reads each block from the 'delta'
 *   snapshot if it holds that block, else from the volume — so a delta is always sent as
 *   of the consistent point where its cycle began, while host writes carry on (this is
 *   3PAR's periodic snapshot, done copy-on-write). `rollback` writes the 'rollback'
 *   copies back; `release` drops a snapshot.
 * - `persist` replaces the group's record; `persist-blocks` appends blocks to a set in
 *   it. `restoreRemoteCopyGroup` folds the record and the appends after it.
 *
 * Roles: natural Primary/Secondary, reversed Primary-Rev/Secondary-Rev. A "source"
 * (Primary, Primary-Rev) takes host writes and replicates; a "target" (Secondary,
 * Secondary-Rev) takes replication only.
 *
 * Replication. Every change the partner may not have is in the source's per-volume dirty
 * set. A resync *cycle* freezes the dirty sets at a consistent point, sends those blocks
 * (batches, bounded in flight), and ends with cycle-end/cycle-done; the target preserves
 * what it overwrites during a cycle so a failover can roll back to its last consistent
 * point. Sync mode: while the group is started, the link up and no block is dirty,
 * each host write goes to the partner and is acknowledged only after the partner's ack
 * (write order = one sequence per group). Anything else (link loss, stop, a resync under
 * way) marks blocks dirty and, under no_fail_wrt_on_err, acknowledges after the local
 * write; cycles then run back to back until nothing is dirty, and the group is Synced
 * again. Periodic mode: host writes are acknowledged locally and tracked; every
 * `period_ms` (or on `sync`) a cycle sends the delta since the last one.
 *
 * Full resyncs compare before they copy. When the partner may already hold some of the
 * dirty blocks — a volume admitted onto an existing copy, a sync primary restarted after a
 * crash (its in-flight writes unrecorded, so every block is suspect), the old primary's
 * list during recover — the volume is marked `compare`, and its next cycle's
 * `send-blocks` effects say so: the shell compares per-block hashes with the partner
 * (computed off the event loop) and sends only the blocks that differ. The partner's
 * rc-blocks-ack says how many it got; that is what `bytes_resynced_total` counts.
 *
 * Resync concurrency. A group may be told (`requireResyncPermits`) to run each cycle only
 * with a permit from the array-wide limiter: it emits `request-resync-permit`, starts the
 * cycle on the `resync-permit` input, and emits `release-resync-permit` when the cycle is
 * done or aborted (or at once, if the permit came when no cycle could start).
 *
 * Link sessions (incarnations). Each side numbers its sessions with the partner: the
 * number (`incarnation`) is raised by every link-up and every link failure, and made
 * durable (`persist`) before the rc-hello that announces it is sent, so it never repeats,
 * not even after a kill -9. A sync write is named by (incarnation, seq): `seq` only orders
 * writes within a session, so it need not be durable per write (after a crash it may
 * restart below what the partner last applied; the new session makes that harmless). The
 * target keeps the source's incarnation from its last hello and the last seq it applied
 * in that session: a hello with a new incarnation starts a new session (nothing applied
 * yet), and an rc-write from any other session, or out of order within this one, is
 * refused with an rc-write-nack (a stable code and a reason), never silently. Acks and
 * nacks carry the incarnation, so an answer from an earlier session (about a write that
 * was settled already) is ignored. A hello goes before anything else on a link, in order,
 * so a restarted primary's first write is always in a session its partner has just
 * reset. A side that hears a new incarnation from its partner also settles what it had in
 * flight to the partner's old session. Why this design: persisting a seq high-water mark
 * would cost a durable write per host write, and an id per process start (from the
 * shell) would not reset a session after a link failure within one process; a counter
 * raised on link events costs one record write per link-up or failure and stays pure.
 *
 * Link failure while connected. A sync write refused by the partner (rc-write-nack), or
 * waiting longer than `sync_write_timeout_ms` (one `set-timer` for the oldest waiting
 * write), or an input the shell could not take (`link-failed`), fails the link as a
 * link-down would, without waiting for the transport: the cycle is aborted, waiting
 * writes are tracked dirty and answered per the write-error policy (no_fail_wrt_on_err:
 * acknowledged on this array alone; fail_wrt_on_err: refused), the partner is "not
 * heard" (NotSynced) until it answers a hello with a new incarnation, and then the dirty
 * blocks are resynced. Status counts a sync write past its bound as overdue and the group
 * NotSynced even before the timer fires.
 *
 * Known limit: dirty sets are exact block sets (one entry per block), so a volume in a
 * group is bounded by `RC_VOLUME_BLOCKS_MAX`.
 */
import { HvlabError, type HvlabErrorCode } from '../shared/errors.js'
import type { PersistEffect, SendEffect, SetTimerEffect } from '../shared/machine/effect.js'
import type { RcGroupStatus, RcPeerMessage } from '../shared/protocol/storage-messages.js'
import { RC_PERIOD_MS_MAX } from '../shared/protocol/storage-limits.js'
import { rcEmit, type RcEmitEffect, type RcEventKind, type RcGroupDetailsOf } from '../shared/timeline/rc-events.js'
import { LIMITS_DEFAULT } from '../shared/topology.js'

export type RcRole = 'primary' | 'secondary' | 'primary-rev' | 'secondary-rev'
export type RcMode = 'sync' | 'periodic'
export type WriteErrorPolicy = 'no_fail_wrt_on_err' | 'fail_wrt_on_err'
export type VolumeSyncState = 'New' | 'Syncing' | 'Synced' | 'NotSynced' | 'Stopped' | 'Stale'
export type RcVerb = 'start' | 'stop' | 'sync' | 'failover' | 'recover' | 'restore' | 'reverse' | 'switchover'
type RoleOp = 'recover' | 'restore' | 'reverse' | 'switchover'

export const RC_VOLUME_BLOCKS_MAX = 1 << 20
export const RC_GROUP_VOLUMES_MAX = 64
export const PERIOD_MS_DEFAULT = 300_000

export interface RcGroupConfig {
  group: string
  /** The partner array's name: where `send` effects go. */
  partner: string
  /** The role this side is created with. */
  role: 'primary' | 'secondary'
  mode: RcMode
  block_size_bytes: number
  /** Periodic mode: time between the starts of two delta cycles. */
  period_ms: number
  write_error_policy: WriteErrorPolicy
  /** Restart replication by itself when the link comes back (else the group stops). */
  auto_recover: boolean
  /**
   * Peer Persistence-style group, failed over by the cluster (CLX) rather than by hand:
   * after a failover during a cut, once the link is back the side that failed over last
   * recovers the other by itself (else `recover` is the operator's).
   */
  auto_failover: boolean
  /** Resync batches sent and not yet acknowledged (resync concurrency). */
  batches_inflight_max: number
  batch_blocks_max: number
  /** Sync-mode host writes sent to the partner and not yet acknowledged. */
  sync_writes_inflight_max: number
}

export type RcGroupConfigInput = Pick<RcGroupConfig, 'group' | 'partner' | 'role' | 'mode' | 'block_size_bytes'> & Partial<RcGroupConfig>

/** Settings of the array, not of the group: not in its record, so a new topology applies at restart. */
export interface RcGroupOptions {
  /** A sync write waits this long for the partner's ack; then the link counts as failed. */
  sync_write_timeout_ms?: number
  /**
   * The group's journal was damaged (a torn line was skipped): a source cannot trust its
   * dirty sets and resyncs every volume by comparison; status says so until a cycle completes.
   */
  journal_damaged?: boolean
}

export const SYNC_WRITE_TIMEOUT_MS_DEFAULT = LIMITS_DEFAULT.rc_sync_write_timeout_ms

export type RcInput =
  | { kind: 'command'; verb: RcVerb; force?: boolean }
  | { kind: 'admit'; volume: string; remote_volume: string; block_count: number }
  /** The operator takes `volume` (this array's name for it) out of the group on this array (dismissrcopyvv). */
  | { kind: 'dismiss'; volume: string }
  | { kind: 'host-write'; write_id: number; volume: string; block: number; data: Uint8Array }
  | { kind: 'link-up' }
  | { kind: 'link-down' }
  | { kind: 'peer'; message: RcPeerMessage; attachment?: Uint8Array }
  | { kind: 'timer'; token: string }
  /** The array-wide resync limiter lets this group run one cycle (after a request-resync-permit). */
  | { kind: 'resync-permit' }
  /** The shell could not take a partner's message (its input queue was full): the link counts as failed. */
  | { kind: 'link-failed'; code: HvlabErrorCode; reason: string }

export type Snapshot = 'delta' | 'rollback'

export type RcEffect =
  | (SendEffect<RcPeerMessage> & { readonly attachment?: Uint8Array })
  /**
   * Read these blocks of `volume` (from the 'delta' snapshot where it holds them) and send an rc-blocks.
   * With `compare`, first compare per-block hashes with the partner's copy (rc-hash-request) and send
   * only the blocks that differ; when none differ, answer the batch locally with an rc-blocks-ack
   * of 0 blocks. The partner's ack says how many blocks it got (that is what counts as resynced).
   */
  | {
      kind: 'send-blocks'
      to: string
      group: string
      cycle: number
      batch: number
      volume: string
      remote_volume: string
      blocks: number[]
      compare: boolean
    }
  /** Ask the array-wide resync limiter for a permit; it answers with a resync-permit input. */
  | { kind: 'request-resync-permit' }
  /** Give the permit back (the cycle ended, or the permit was not needed after all). */
  | { kind: 'release-resync-permit' }
  /** Write `data` (the blocks in list order, each one block long) to `volume`, durably. */
  | { kind: 'write-local'; volume: string; blocks: number[]; data: Uint8Array }
  | { kind: 'preserve'; snapshot: Snapshot; volume: string; blocks: number[] }
  | { kind: 'rollback'; volume: string; blocks: number[] }
  | { kind: 'release'; snapshot: Snapshot }
  | { kind: 'ack-host'; write_id: number }
  | { kind: 'fail-host'; write_id: number; code: HvlabErrorCode; reason: string }
  | PersistEffect<RcGroupRecord>
  | { kind: 'persist-blocks'; set: 'dirty' | 'rollback'; volume: string; blocks: number[] }
  | SetTimerEffect
  | RcEmitEffect

/** Runs of blocks: [first, count]. */
type Runs = [number, number][]

export interface RcGroupRecord {
  format: 1
  config: RcGroupConfig
  role: RcRole
  started: boolean
  seq: number
  cycle_seq: number
  generation: number
  /** This side's last link session (see "Link sessions"); absent in records written before it existed. */
  incarnation?: number
  last_sync_ms: number | null
  bytes_resynced_total: number
  volumes: {
    volume: string
    remote_volume: string
    block_count: number
    synced_once: boolean
    dirty: Runs
    rollback: Runs
    compare?: boolean
  }[]
  /**
   * Written only by a clean shutdown (no host I/O after it; writes still waiting for the
   * partner are in `dirty`): the restart need not suspect every block. The service
   * persists a record without it as soon as it has read it, so a crash later is a crash.
   */
  clean_shutdown?: true
}

interface VolumeState {
  volume: string
  remote_volume: string
  block_count: number
  /** Source: blocks the partner may not have. */
  dirty: Set<number>
  /** A cycle has completed for this volume at least once (else it is New). */
  synced_once: boolean
  /** Target: blocks preserved since the last consistent point. */
  rollback: Set<number>
  /**
   * Source: the partner may already hold some of the dirty blocks (a volume admitted onto
   * an existing copy, or a full resync after a restart): the next cycle compares per-block
   * hashes and sends only blocks that differ.
   */
  compare: boolean
}

interface Cycle {
  id: number
  consistent_at_ms: number
  volumes: Set<string>
  frozen: Map<string, Set<number>>
  unsent: Map<string, Set<number>>
  preserved: Map<string, Set<number>>
  inflight: Map<number, { volume: string; blocks: number[] }>
  /** Volumes whose blocks this cycle compares by hash before sending. */
  compare: Set<string>
  next_batch: number
  ended: boolean
}

interface PendingSyncWrite {
  write_id: number
  volume: string
  blocks: number[]
  sent_at_ms: number
}

interface LinkFailure {
  code: HvlabErrorCode
  reason: string
  at_ms: number
}

/** Reasons travel in nacks and status; a longer one is cut. */
const REASON_CHARS_MAX = 1024

const isSourceRole = (r: RcRole | undefined): boolean => r === 'primary' || r === 'primary-rev'
const isTargetRole = (r: RcRole | undefined): boolean => r === 'secondary' || r === 'secondary-rev'
const REVERSED: Record<RcRole, RcRole> = {
  primary: 'primary-rev',
  'primary-rev': 'primary',
  secondary: 'secondary-rev',
  'secondary-rev': 'secondary',
}

export function rcGroupConfig(input: RcGroupConfigInput): RcGroupConfig {
  const c: RcGroupConfig = {
    period_ms: PERIOD_MS_DEFAULT,
    write_error_policy: 'no_fail_wrt_on_err',
    auto_recover: true,
    auto_failover: false,
    batches_inflight_max: 4,
    // 1 MiB batches of 4 KiB blocks: a new VM's 16 MiB volume is compared in 16 rounds of
    // hashes, not 64 (creating 40 VMs: the lab's CPU 98 % -> 85 % of a core, issue 12).
    batch_blocks_max: 256,
    sync_writes_inflight_max: 256,
    ...input,
  }
  const positive = (name: keyof RcGroupConfig, max: number): void => {
    const v = c[name]
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 1 || v > max) {
      throw new HvlabError('HVLAB_E_USAGE', `remote copy group ${c.group}: ${name} must be an integer from 1 to ${max}, got ${String(v)}`)
    }
  }
  positive('block_size_bytes', 1024 * 1024)
  positive('period_ms', RC_PERIOD_MS_MAX)
  positive('batches_inflight_max', 1024)
  positive('batch_blocks_max', 256)
  positive('sync_writes_inflight_max', 65536)
  if (c.partner.length === 0) throw new HvlabError('HVLAB_E_USAGE', `remote copy group ${c.group}: name the partner array`)
  return c
}

export class RemoteCopyGroup {
  readonly config: RcGroupConfig
  private role: RcRole
  private started = false
  private readonly volumes = new Map<string, VolumeState>()
  private link_up = false
  private partner_role: RcRole | undefined
  /** Source: the last sync write's number (ordered within a session; never reset, not durable per write). */
  private seq = 0
  /** This side's link session with the partner (see "Link sessions"). */
  private incarnation = 0
  /** The partner's link session as its last hello said; undefined until one is heard. */
  private partner_incarnation: number | undefined
  /** Target: the last seq applied in the partner's current session. */
  private last_applied_seq = 0
  /** Source: sync writes sent and not yet answered, oldest first (Map order = seq order). */
  private readonly pending_sync = new Map<number, PendingSyncWrite>()
  private readonly sync_write_timeout_ms: number
  /** The timer armed for the oldest waiting sync write (at most one at a time). */
  private sync_wait_token: string | undefined
  private link_failures_total = 0
  private last_link_failure: LinkFailure | undefined
  private journal_damaged = false
  private cycle: Cycle | undefined
  private cycle_seq = 0
  private target_cycle: number | undefined
  private sync_due = false
  private switching = false
  private role_change_pending: RoleOp | undefined
  private period_token: string | undefined
  private timer_seq = 0
  private last_sync_ms: number | undefined
  private bytes_resynced_total = 0
  /** Raised by every failover; when both sides act as primary, the higher one wins. */
  private generation = 0
  private partner_generation = 0
  /** Cycles wait for a permit from the array-wide resync limiter (set by the shell). */
  private permits_required = false
  private has_permit = false
  private permit_requested = false

  constructor(config: RcGroupConfigInput, options: RcGroupOptions = {}) {
    this.config = rcGroupConfig(config)
    this.role = this.config.role
    this.sync_write_timeout_ms = options.sync_write_timeout_ms ?? SYNC_WRITE_TIMEOUT_MS_DEFAULT
    if (!Number.isSafeInteger(this.sync_write_timeout_ms) || this.sync_write_timeout_ms < 1) {
      throw new HvlabError(
        'HVLAB_E_USAGE',
        `remote copy group ${this.config.group}: sync_write_timeout_ms must be a positive integer, got ${String(options.sync_write_timeout_ms)}`,
      )
    }
    this.journal_damaged = options.journal_damaged === true
  }

  get currentRole(): RcRole {
    return this.role
  }

  /** From now on every cycle first asks for a resync permit (request-resync-permit effect). */
  requireResyncPermits(): void {
    this.permits_required = true
  }

  /**
   * A partner's rc-hash-request: checks that this side is a replication target holding
   * `volume` and that every block is on it; throws (with a reason) if not.
   */
  checkHashRequest(volume: string, block_list: readonly number[]): void {
    this.requireTarget('rc-hash-request')
    const v = this.requireVolume(volume)
    for (const b of block_list) {
      if (!Number.isSafeInteger(b) || b < 0 || b >= v.block_count)
        throw new HvlabError(
          'HVLAB_E_PROTOCOL',
          `rc-hash-request names block ${b} past the end of volume ${volume} (${v.block_count} blocks)`,
        )
    }
  }

  step(input: RcInput, now_ms: number): RcEffect[] {
    switch (input.kind) {
      case 'command':
        return this.command(input.verb, input.force === true, now_ms)
      case 'admit':
        return this.admit(input.volume, input.remote_volume, input.block_count, now_ms)
      case 'dismiss':
        return this.dismiss(input.volume)
      case 'host-write':
        return this.hostWrite(input.write_id, input.volume, input.block, input.data, now_ms)
      case 'link-up':
        return this.linkUp()
      case 'link-down':
        return this.linkDown()
      case 'peer':
        return this.peer(input.message, input.attachment, now_ms)
      case 'timer':
        return this.timer(input.token, now_ms)
      case 'resync-permit':
        return this.onPermit(now_ms)
      case 'link-failed':
        return this.linkFailed(input.code, input.reason, now_ms)
    }
  }

  // ------------------------------------------------------------------ host writes

  private hostWrite(write_id: number, volume: string, block: number, data: Uint8Array, now_ms: number): RcEffect[] {
    const v = this.requireVolume(volume)
    const g = this.config.group
    if (!isSourceRole(this.role)) {
      throw new HvlabError(
        'HVLAB_E_REFUSED',
        `write to volume ${volume} refused: remote copy group ${g} is ${this.role} on this array, so its volumes are read-only here; write through array ${this.config.partner}, or fail over first`,
      )
    }
    if (this.supersededByPartner()) {
      throw new HvlabError(
        'HVLAB_E_REFUSED',
        `write to volume ${volume} refused: group ${g} was failed over to array ${this.config.partner}, and this copy will be overwritten when it is recovered`,
      )
    }
    if (this.switching || this.role_change_pending) {
      throw new HvlabError(
        'HVLAB_E_STATE',
        `write to volume ${volume} refused: group ${g} is changing roles (${this.role_change_pending ?? 'switchover'}); retry on the new primary`,
      )
    }
    const blocks = this.blocksOf(v, block, data.length, 'write')
    if (this.started && !this.partnerOk() && this.config.write_error_policy === 'fail_wrt_on_err') {
      throw new HvlabError(
        'HVLAB_E_REFUSED',
        `write to volume ${volume} refused: the link to array ${this.config.partner} is down and group ${g} has policy fail_wrt_on_err; nothing was written`,
      )
    }
    if (this.replicatingSync()) {
      if (this.pending_sync.size >= this.config.sync_writes_inflight_max) {
        throw new HvlabError(
          'HVLAB_E_BACKPRESSURE',
          `write to volume ${volume} refused: ${this.pending_sync.size} synchronous writes of group ${g} are waiting for array ${this.config.partner}; retry shortly`,
        )
      }
      const seq = ++this.seq
      this.pending_sync.set(seq, { write_id, volume, blocks, sent_at_ms: now_ms })
      return [
        { kind: 'write-local', volume, blocks, data },
        {
          kind: 'send',
          to: this.config.partner,
          message: { t: 'rc-write', group: g, incarnation: this.incarnation, seq, volume: v.remote_volume, block, blocks: blocks.length },
          attachment: data,
        },
        ...this.armSyncWaitTimer(),
      ]
    }
    const effects = this.markDirty(v, blocks)
    const c = this.cycle
    const unsent = c?.unsent.get(volume)
    if (c && unsent) {
      const preserved = c.preserved.get(volume)!
      const toPreserve = blocks.filter((b) => unsent.has(b) && !preserved.has(b))
      for (const b of toPreserve) preserved.add(b)
      if (toPreserve.length > 0) effects.push({ kind: 'preserve', snapshot: 'delta', volume, blocks: toPreserve })
    }
    effects.push({ kind: 'write-local', volume, blocks, data }, { kind: 'ack-host', write_id })
    return effects
  }

  private markDirty(v: VolumeState, blocks: readonly number[]): RcEffect[] {
    const fresh = blocks.filter((b) => !v.dirty.has(b))
    for (const b of fresh) v.dirty.add(b)
    return fresh.length > 0 ? [{ kind: 'persist-blocks', set: 'dirty', volume: v.volume, blocks: fresh }] : []
  }

  // ------------------------------------------------------------------ verbs

  private command(verb: RcVerb, force: boolean, now_ms: number): RcEffect[] {
    if (this.role_change_pending) {
      throw new HvlabError(
        'HVLAB_E_STATE',
        `group ${this.config.group} is waiting for array ${this.config.partner} to confirm ${this.role_change_pending}; retry ${verb} when it has`,
      )
    }
    switch (verb) {
      case 'start':
        return this.start(now_ms)
      case 'stop':
        return this.stop()
      case 'sync':
        return this.syncNow(now_ms)
      case 'failover':
        return this.failover(force)
      case 'recover':
        return this.recover()
      case 'restore':
        return this.restore()
      case 'reverse':
        return this.reverse()
      case 'switchover':
        return this.switchover(now_ms)
    }
  }

  private requireSource(verb: string): void {
    if (!isSourceRole(this.role)) {
      throw new HvlabError(
        'HVLAB_E_STATE',
        `${verb} runs on the primary side of group ${this.config.group}; this array is ${this.role} — run it on array ${this.config.partner}`,
      )
    }
  }

  private start(now_ms: number): RcEffect[] {
    this.requireSource('start')
    if (this.started) return []
    this.started = true
    this.sync_due = true
    const effects: RcEffect[] = [this.persistEffect(), this.emit('rc.started', {})]
    effects.push(...this.hello(), ...this.schedulePeriod(now_ms), ...this.maybeStartCycle(now_ms))
    return effects
  }

  private stop(): RcEffect[] {
    this.requireSource('stop')
    if (!this.started) return []
    this.started = false
    this.period_token = undefined
    const effects = this.abortCycle()
    this.switching = false
    effects.push(this.persistEffect(), this.emit('rc.stopped', {}), ...this.hello())
    return effects
  }

  private syncNow(now_ms: number): RcEffect[] {
    this.requireSource('sync')
    if (!this.started || !this.partnerOk()) {
      throw new HvlabError(
        'HVLAB_E_STATE',
        `cannot sync group ${this.config.group}: it is ${this.started ? 'started but the link to array ' + this.config.partner + ' is down' : 'stopped; start it first'}`,
      )
    }
    this.sync_due = true
    return this.maybeStartCycle(now_ms)
  }

  private admit(volume: string, remote_volume: string, block_count: number, now_ms: number): RcEffect[] {
    this.requireSource('admit')
    const g = this.config.group
    if (this.volumes.has(volume)) throw new HvlabError('HVLAB_E_STATE', `volume ${volume} is already in group ${g}`)
    if (this.volumes.size >= RC_GROUP_VOLUMES_MAX)
      throw new HvlabError('HVLAB_E_REFUSED', `group ${g} already has ${RC_GROUP_VOLUMES_MAX} volumes (its limit)`)
    if (!Number.isSafeInteger(block_count) || block_count < 1 || block_count > RC_VOLUME_BLOCKS_MAX) {
      throw new HvlabError(
        'HVLAB_E_REFUSED',
        `volume ${volume} has ${block_count} blocks; a remote-copied volume has 1 to ${RC_VOLUME_BLOCKS_MAX}`,
      )
    }
    if (!this.partnerOk())
      throw new HvlabError(
        'HVLAB_E_STATE',
        `cannot admit ${volume} to group ${g}: array ${this.config.partner} is not reachable as its secondary; restore the link first`,
      )
    if (this.cycle)
      throw new HvlabError(
        'HVLAB_E_STATE',
        `cannot admit ${volume} to group ${g} while a sync is running; wait for it to finish or stop the group`,
      )
    const v = this.addVolume(volume, remote_volume, block_count)
    const all = Array.from({ length: block_count }, (_, i) => i) // New: a full sync…
    v.compare = true // …of only the blocks the secondary's copy (if it has one) lacks
    this.sync_due = true
    return [
      {
        kind: 'send',
        to: this.config.partner,
        message: { t: 'rc-admit-peer', group: g, volume: remote_volume, remote_volume: volume, block_count },
      },
      ...this.markDirty(v, all),
      this.persistEffect(),
      this.emit('rc.admitted', { volume, remote_volume }),
      ...this.maybeStartCycle(now_ms),
    ]
  }

  /**
   * Takes a volume out of the group on this array; it stays on the array as it is. Only
   * while the group is stopped and quiet (no cycle, no sync write waiting, no role change):
   * then nothing in flight names the volume. Each side dismisses its own copy.
   */
  private dismiss(volume: string): RcEffect[] {
    const g = this.config.group
    const v = this.requireVolume(volume)
    if (this.started)
      throw new HvlabError(
        'HVLAB_E_STATE',
        `cannot dismiss ${volume} from group ${g}: the group is started; stop it first: \`hvlab rcopy stop ${g}\``,
      )
    if (this.cycle || this.pending_sync.size > 0 || this.switching || this.role_change_pending)
      throw new HvlabError(
        'HVLAB_E_STATE',
        `cannot dismiss ${volume} from group ${g} while a sync or role change is finishing; retry in a moment`,
      )
    this.volumes.delete(volume)
    return [this.persistEffect(), this.emit('rc.volume-dismissed', { volume, remote_volume: v.remote_volume })]
  }

  /** Why this side of the group may not be removed now, or null (the service removes it: remote-copy-service.ts). */
  removalRefusal(): HvlabError | null {
    const g = this.config.group
    if (this.started)
      return new HvlabError('HVLAB_E_STATE', `cannot remove group ${g}: it is started; stop it first: \`hvlab rcopy stop ${g}\``)
    if (this.cycle || this.pending_sync.size > 0 || this.switching || this.role_change_pending)
      return new HvlabError('HVLAB_E_STATE', `cannot remove group ${g} while a sync or role change is finishing; retry in a moment`)
    return null
  }

  private failover(force: boolean): RcEffect[] {
    const g = this.config.group
    if (!isTargetRole(this.role)) {
      throw new HvlabError('HVLAB_E_STATE', `failover runs on the secondary side of group ${g}; this array is already ${this.role}`)
    }
    if (this.started && this.link_up && isSourceRole(this.partner_role)) {
      throw new HvlabError(
        'HVLAB_E_STATE',
        `array ${this.config.partner} is up and replicating group ${g}; use switchover for a planned move, or stop the group first`,
      )
    }
    const incomplete = [...this.volumes.values()].filter((v) => !v.synced_once).map((v) => v.volume)
    if (incomplete.length > 0 && !force) {
      throw new HvlabError(
        'HVLAB_E_STATE',
        `volumes ${incomplete.join(', ')} of group ${g} never completed a sync, so this copy is incomplete; fail over with force to use it anyway`,
      )
    }
    const effects: RcEffect[] = []
    for (const v of this.volumes.values()) {
      if (v.rollback.size > 0) effects.push({ kind: 'rollback', volume: v.volume, blocks: [...v.rollback].sort((a, b) => a - b) })
      v.rollback.clear()
      v.dirty.clear()
    }
    effects.push({ kind: 'release', snapshot: 'rollback' })
    const from = this.role
    this.role = this.role === 'secondary' ? 'primary-rev' : 'primary'
    this.generation = Math.max(this.generation, this.partner_generation) + 1
    this.started = false
    this.target_cycle = undefined
    effects.push(
      this.persistEffect(),
      this.emit('rc.failover', { from, to: this.role, rolled_back: effects.filter((e) => e.kind === 'rollback').length > 0 }),
      ...this.hello(),
    )
    return effects
  }

  private recover(): RcEffect[] {
    this.requireSource('recover')
    if (!this.link_up || !this.partner_role) {
      throw new HvlabError(
        'HVLAB_E_STATE',
        `cannot recover group ${this.config.group}: array ${this.config.partner} is not reachable; restore the link first`,
      )
    }
    if (!isSourceRole(this.partner_role)) {
      throw new HvlabError(
        'HVLAB_E_STATE',
        `nothing to recover in group ${this.config.group}: array ${this.config.partner} is already ${this.partner_role}; use start`,
      )
    }
    if (this.partner_generation >= this.generation) {
      throw new HvlabError(
        'HVLAB_E_STATE',
        `recover runs on the array that failed over; in group ${this.config.group} that is array ${this.config.partner}, not this one`,
      )
    }
    return this.beginRoleChange('recover')
  }

  private restore(): RcEffect[] {
    if (this.role !== 'primary-rev') {
      throw new HvlabError(
        'HVLAB_E_STATE',
        `restore runs on the Primary-Rev side of group ${this.config.group}; this array is ${this.role}`,
      )
    }
    this.requireInSync('restore')
    this.role = 'secondary'
    this.started = true
    this.period_token = undefined
    return [...this.beginRoleChange('restore'), this.persistEffect()]
  }

  private reverse(): RcEffect[] {
    if (!this.link_up || !this.partner_role) {
      throw new HvlabError(
        'HVLAB_E_STATE',
        `cannot reverse group ${this.config.group}: array ${this.config.partner} is not reachable; both arrays must agree`,
      )
    }
    this.role = REVERSED[this.role]
    return [...this.beginRoleChange('reverse'), this.persistEffect(), this.emit('rc.reversed', { role: this.role })]
  }

  private switchover(now_ms: number): RcEffect[] {
    if (this.role !== 'primary') {
      throw new HvlabError(
        'HVLAB_E_STATE',
        `switchover runs on the Primary side of group ${this.config.group}; this array is ${this.role}${this.role === 'primary-rev' ? ' — use restore' : ''}`,
      )
    }
    if (!this.started || !this.partnerOk()) {
      throw new HvlabError(
        'HVLAB_E_STATE',
        `cannot switch over group ${this.config.group}: it must be started with array ${this.config.partner} reachable`,
      )
    }
    this.switching = true
    this.sync_due = true
    return [this.emit('rc.switchover-started', {}), ...this.maybeStartCycle(now_ms), ...this.maybeCompleteSwitchover()]
  }

  private maybeCompleteSwitchover(): RcEffect[] {
    if (!this.switching || !this.inSync()) return []
    this.switching = false
    this.role = 'secondary-rev'
    this.period_token = undefined
    return [...this.beginRoleChange('switchover'), this.persistEffect()]
  }

  private beginRoleChange(op: RoleOp): RcEffect[] {
    this.role_change_pending = op
    return [{ kind: 'send', to: this.config.partner, message: { t: 'rc-role-change', group: this.config.group, op } }]
  }

  private requireInSync(verb: string): void {
    if (!this.started || !this.partnerOk() || !this.inSync()) {
      throw new HvlabError(
        'HVLAB_E_STATE',
        `cannot ${verb} group ${this.config.group}: it is not in sync (${this.bytesBehind()} bytes behind${this.partnerOk() ? '' : ', link down'}); stop host writes, sync, and retry`,
      )
    }
  }

  // ------------------------------------------------------------------ link

  private linkUp(): RcEffect[] {
    if (this.link_up) return []
    this.link_up = true
    return [this.emit('rc.link-up', {}), ...this.newSession()]
  }

  /** A new link session: durable before the hello that announces it (see "Link sessions"). */
  private newSession(): RcEffect[] {
    this.incarnation++
    return [this.persistEffect(), ...this.hello()]
  }

  /**
   * The link failed while connected (see "Link failure while connected"): like a link-down,
   * then a new session, announced at once; the partner is not heard until it answers.
   */
  private linkFailed(code: HvlabErrorCode, reason: string, now_ms: number): RcEffect[] {
    if (!this.link_up) return [] // the link-down settled everything already
    this.link_failures_total++
    this.last_link_failure = { code, reason: reason.slice(0, REASON_CHARS_MAX), at_ms: now_ms }
    this.partner_role = undefined
    const effects: RcEffect[] = [this.emit('rc.link-failed', { code, reason, pending_sync_writes: this.pending_sync.size })]
    effects.push(...this.abortCycle(), ...this.settlePendingSyncWrites(`the link to array ${this.config.partner} failed (${code})`))
    return [...effects, ...this.newSession()]
  }

  private linkDown(): RcEffect[] {
    if (!this.link_up) return []
    this.link_up = false
    this.partner_role = undefined
    const effects: RcEffect[] = [this.emit('rc.link-down', { pending_sync_writes: this.pending_sync.size })]
    effects.push(...this.abortCycle(), ...this.settlePendingSyncWrites('the link to array ' + this.config.partner + ' went down'))
    if (this.switching) {
      this.switching = false
      effects.push(this.emit('rc.switchover-aborted', { reason: 'link down' }))
    }
    if (this.role_change_pending) {
      effects.push(this.emit('rc.role-change-unconfirmed', { op: this.role_change_pending }))
      this.role_change_pending = undefined
    }
    if (isSourceRole(this.role) && this.started && !this.config.auto_recover) {
      this.started = false
      this.period_token = undefined
      effects.push(this.persistEffect(), this.emit('rc.stopped', { reason: 'link down, auto_recover off' }))
    }
    return effects
  }

  /** Sync writes the partner never acknowledged: tracked as dirty, then answered per policy. */
  private settlePendingSyncWrites(why: string, discarded = false): RcEffect[] {
    const effects: RcEffect[] = []
    for (const w of this.pending_sync.values()) {
      effects.push(...this.markDirty(this.requireVolume(w.volume), w.blocks))
    }
    for (const w of this.pending_sync.values()) {
      if (discarded) {
        effects.push({ kind: 'fail-host', write_id: w.write_id, code: 'HVLAB_E_REFUSED', reason: `${why}; this write is discarded` })
      } else if (this.config.write_error_policy === 'fail_wrt_on_err') {
        effects.push({
          kind: 'fail-host',
          write_id: w.write_id,
          code: 'HVLAB_E_REFUSED',
          reason: `${why} before the secondary had the write (policy fail_wrt_on_err); the data may be on the primary only`,
        })
      } else {
        effects.push({ kind: 'ack-host', write_id: w.write_id })
      }
    }
    this.pending_sync.clear()
    return effects
  }

  private hello(): RcEffect[] {
    if (!this.link_up) return []
    return [
      {
        kind: 'send',
        to: this.config.partner,
        message: {
          t: 'rc-hello',
          group: this.config.group,
          role: this.role,
          started: this.started,
          generation: this.generation,
          incarnation: this.incarnation,
        },
      },
    ]
  }

  /** Arms the timer for the oldest waiting sync write, unless one is armed already. */
  private armSyncWaitTimer(): RcEffect[] {
    const oldest = this.oldestPendingSyncWrite()
    if (this.sync_wait_token !== undefined || !oldest) return []
    this.sync_wait_token = `rc-sync-wait:${this.config.group}:${++this.timer_seq}`
    return [{ kind: 'set-timer', at_ms: oldest.sent_at_ms + this.sync_write_timeout_ms, token: this.sync_wait_token }]
  }

  private onSyncWaitTimer(now_ms: number): RcEffect[] {
    this.sync_wait_token = undefined
    const oldest = this.oldestPendingSyncWrite()
    if (!oldest) return []
    if (now_ms < oldest.sent_at_ms + this.sync_write_timeout_ms) return this.armSyncWaitTimer()
    const waited_ms = now_ms - oldest.sent_at_ms
    return this.linkFailed(
      'HVLAB_E_TIMEOUT',
      `array ${this.config.partner} did not acknowledge a synchronous write within ${this.sync_write_timeout_ms} ms (waited ${waited_ms} ms)`,
      now_ms,
    )
  }

  private oldestPendingSyncWrite(): PendingSyncWrite | undefined {
    for (const w of this.pending_sync.values()) return w
    return undefined
  }

  private overdueSyncWrites(now_ms: number | undefined): number {
    if (now_ms === undefined) return 0
    let n = 0
    for (const w of this.pending_sync.values()) if (now_ms >= w.sent_at_ms + this.sync_write_timeout_ms) n++
    return n
  }

  // ------------------------------------------------------------------ peer messages

  private peer(m: RcPeerMessage, attachment: Uint8Array | undefined, now_ms: number): RcEffect[] {
    if (m.group !== this.config.group)
      throw new HvlabError('HVLAB_E_PROTOCOL', `message ${m.t} for group ${m.group} reached group ${this.config.group}`)
    switch (m.t) {
      case 'rc-hello':
        this.partner_generation = m.generation
        return this.onHello(m.role, m.started, m.incarnation, now_ms)
      case 'rc-admit-peer':
        this.requireTarget(m.t)
        if (this.volumes.has(m.volume)) return []
        this.addVolume(m.volume, m.remote_volume, m.block_count)
        return [this.persistEffect(), this.emit('rc.admitted', { volume: m.volume, remote_volume: m.remote_volume })]
      case 'rc-write':
        return this.onRcWrite(m, attachment)
      case 'rc-write-ack':
        return this.onRcWriteAck(m.incarnation, m.seq)
      case 'rc-write-nack':
        return this.onRcWriteNack(m, now_ms)
      case 'rc-cycle-begin':
        this.requireTarget(m.t)
        this.target_cycle = m.cycle
        return [this.emit('rc.sync-started', { cycle: m.cycle })]
      case 'rc-blocks':
        return this.onBlocks(m.cycle, m.batch, m.volume, m.block_list, attachment)
      case 'rc-blocks-ack':
        return this.onBlocksAck(m.cycle, m.batch, m.blocks)
      case 'rc-cycle-end':
        return this.onCycleEnd(m.cycle, m.consistent_at_ms)
      case 'rc-cycle-done':
        return this.onCycleDone(m.cycle, now_ms)
      case 'rc-role-change':
        return this.onRoleChange(m.op, now_ms)
      case 'rc-role-change-ack':
        return this.onRoleChangeAck(m.op, m.role, now_ms)
      case 'rc-dirty-set':
        return this.onDirtySet(m.volume, m.block_count, attachment)
    }
  }

  private requireTarget(what: string): void {
    if (!isTargetRole(this.role)) {
      throw new HvlabError(
        'HVLAB_E_STATE',
        `${what} refused: group ${this.config.group} is ${this.role} on this array, not a replication target`,
      )
    }
  }

  private onHello(role: RcRole, started: boolean, incarnation: number, now_ms: number): RcEffect[] {
    // The first hello since the link came up, or of a new partner session, is answered: the
    // partner may have sent its own before this side existed or listened (a group created
    // on one array first), or it is waiting to hear this side again after a link failure.
    const new_session = incarnation !== this.partner_incarnation
    const reply = this.partner_role === undefined || new_session ? this.hello() : []
    if (new_session) reply.push(...this.partnerSessionChanged(incarnation))
    this.partner_role = role
    if (isTargetRole(this.role)) {
      if (isSourceRole(role)) this.started = started
      return reply
    }
    if (isSourceRole(role)) {
      const both = this.emit('rc.both-primary', {
        local: this.role,
        partner: role,
        generation: this.generation,
        partner_generation: this.partner_generation,
      })
      // auto_failover (as Peer Persistence does after a failover): once the link is back, the
      // side that failed over last keeps its data and recovers the other, which becomes its
      // secondary and receives the blocks either side changed since the split. The other
      // side's writes after the split (acknowledged only on it) are rolled back — the price
      // of no_fail_wrt_on_err; its hosts were fenced from it since this hello.
      if (
        this.config.auto_failover &&
        this.config.auto_recover &&
        this.generation > this.partner_generation &&
        this.role_change_pending === undefined
      ) {
        return [...reply, both, this.emit('rc.auto-recover', { partner: this.config.partner }), ...this.beginRoleChange('recover')]
      }
      return [...reply, both]
    }
    if (!this.started) return reply
    this.sync_due = true
    return [...reply, ...this.schedulePeriod(now_ms), ...this.maybeStartCycle(now_ms)]
  }

  /**
   * The partner started a new link session: what it expected of this side's old session is
   * gone (a source settles its writes in flight and aborts its cycle; they are resent), and
   * its own writes are numbered afresh.
   */
  private partnerSessionChanged(incarnation: number): RcEffect[] {
    this.partner_incarnation = incarnation
    this.last_applied_seq = 0
    if (!isSourceRole(this.role)) return []
    return [...this.abortCycle(), ...this.settlePendingSyncWrites(`array ${this.config.partner} started a new link session`)]
  }

  /** A refused rc-write is answered with a nack (its stable code) and changes nothing. */
  private onRcWrite(m: Extract<RcPeerMessage, { t: 'rc-write' }>, data: Uint8Array | undefined): RcEffect[] {
    try {
      return this.applyRcWrite(m, data)
    } catch (e) {
      if (!(e instanceof HvlabError)) throw e
      return [this.rcWriteNack(m.incarnation, m.seq, e.code, e.message)]
    }
  }

  private rcWriteNack(incarnation: number, seq: number, code: HvlabErrorCode, reason: string): RcEffect {
    return { kind: 'send', to: this.config.partner, message: rcWriteNackMessage(this.config.group, incarnation, seq, code, reason) }
  }

  private applyRcWrite(m: Extract<RcPeerMessage, { t: 'rc-write' }>, data: Uint8Array | undefined): RcEffect[] {
    const g = this.config.group
    this.requireTarget('rc-write')
    const v = this.requireVolume(m.volume)
    if (m.incarnation !== this.partner_incarnation) {
      throw new HvlabError(
        'HVLAB_E_PROTOCOL',
        `rc-write ${m.seq} of group ${g} belongs to link session ${m.incarnation} of array ${this.config.partner}, but its current session is ${String(this.partner_incarnation)}; nothing was written`,
      )
    }
    if (m.seq <= this.last_applied_seq) {
      throw new HvlabError(
        'HVLAB_E_PROTOCOL',
        `rc-write ${m.seq} of group ${g} is out of order (last applied ${this.last_applied_seq} in session ${m.incarnation}); nothing was written`,
      )
    }
    const blocks = this.blocksOf(v, m.block, data?.length ?? 0, 'rc-write')
    this.last_applied_seq = m.seq
    return [
      { kind: 'write-local', volume: m.volume, blocks, data: data! },
      { kind: 'send', to: this.config.partner, message: { t: 'rc-write-ack', group: g, incarnation: m.incarnation, seq: m.seq } },
    ]
  }

  private onRcWriteAck(incarnation: number, seq: number): RcEffect[] {
    const w = incarnation === this.incarnation ? this.pending_sync.get(seq) : undefined
    if (!w) return [] // settled already (a link failure or flap), or an earlier session's
    this.pending_sync.delete(seq)
    return [{ kind: 'ack-host', write_id: w.write_id }, ...this.maybeCompleteSwitchover()]
  }

  private onRcWriteNack(m: Extract<RcPeerMessage, { t: 'rc-write-nack' }>, now_ms: number): RcEffect[] {
    if (m.incarnation !== this.incarnation || !this.pending_sync.has(m.seq)) return [] // settled already
    return this.linkFailed(m.code, `array ${this.config.partner} refused synchronous write ${m.seq}: ${m.reason}`, now_ms)
  }

  private onBlocks(cycle: number, batch: number, volume: string, block_list: number[], data: Uint8Array | undefined): RcEffect[] {
    this.requireTarget('rc-blocks')
    const v = this.requireVolume(volume)
    if (cycle !== this.target_cycle)
      throw new HvlabError(
        'HVLAB_E_PROTOCOL',
        `rc-blocks for cycle ${cycle} of group ${this.config.group}, but cycle ${String(this.target_cycle)} is open`,
      )
    const bs = this.config.block_size_bytes
    if (!data || data.length !== block_list.length * bs) {
      throw new HvlabError(
        'HVLAB_E_PROTOCOL',
        `rc-blocks of group ${this.config.group} carries ${data?.length ?? 0} bytes for ${block_list.length} blocks of ${bs}`,
      )
    }
    for (const b of block_list)
      if (b >= v.block_count)
        throw new HvlabError('HVLAB_E_PROTOCOL', `rc-blocks names block ${b} past the end of volume ${volume} (${v.block_count} blocks)`)
    const effects: RcEffect[] = []
    if (v.synced_once) {
      const fresh = block_list.filter((b) => !v.rollback.has(b))
      for (const b of fresh) v.rollback.add(b)
      if (fresh.length > 0) {
        effects.push(
          { kind: 'persist-blocks', set: 'rollback', volume, blocks: fresh },
          { kind: 'preserve', snapshot: 'rollback', volume, blocks: fresh },
        )
      }
    }
    effects.push(
      { kind: 'write-local', volume, blocks: block_list, data },
      {
        kind: 'send',
        to: this.config.partner,
        message: { t: 'rc-blocks-ack', group: this.config.group, cycle, batch, blocks: block_list.length },
      },
    )
    return effects
  }

  private onCycleEnd(cycle: number, consistent_at_ms: number): RcEffect[] {
    this.requireTarget('rc-cycle-end')
    if (cycle !== this.target_cycle)
      throw new HvlabError(
        'HVLAB_E_PROTOCOL',
        `rc-cycle-end for cycle ${cycle} of group ${this.config.group}, but cycle ${String(this.target_cycle)} is open`,
      )
    this.target_cycle = undefined
    for (const v of this.volumes.values()) {
      v.synced_once = true
      v.rollback.clear()
    }
    this.journal_damaged = false
    this.last_sync_ms = consistent_at_ms
    return [
      { kind: 'release', snapshot: 'rollback' },
      this.persistEffect(),
      { kind: 'send', to: this.config.partner, message: { t: 'rc-cycle-done', group: this.config.group, cycle } },
      this.emit('rc.synced', { cycle, consistent_at_ms }),
    ]
  }

  private onRoleChange(op: RoleOp, now_ms: number): RcEffect[] {
    const expected: Record<RoleOp, RcRole[]> = {
      recover: ['primary', 'primary-rev'],
      restore: ['secondary-rev'],
      switchover: ['secondary'],
      reverse: ['primary', 'secondary', 'primary-rev', 'secondary-rev'],
    }
    if (!expected[op].includes(this.role)) {
      throw new HvlabError(
        'HVLAB_E_STATE',
        `array ${this.config.partner} asked group ${this.config.group} to ${op}, but this side is ${this.role}`,
      )
    }
    const g = this.config.group
    const effects: RcEffect[] = []
    const from = this.role
    if (op === 'recover') {
      if (this.partner_generation <= this.generation) {
        throw new HvlabError(
          'HVLAB_E_STATE',
          `array ${this.config.partner} asked to recover group ${g}, but it did not fail over after this array did`,
        )
      }
      effects.push(
        ...this.abortCycle(),
        ...this.settlePendingSyncWrites(`group ${g} was recovered from array ${this.config.partner}`, true),
      )
      for (const v of this.volumes.values()) {
        effects.push({
          kind: 'send',
          to: this.config.partner,
          message: { t: 'rc-dirty-set', group: g, volume: v.remote_volume, block_count: v.block_count },
          attachment: encodeBitmap(v.dirty, v.block_count),
        })
        v.dirty.clear()
        v.compare = false
      }
      this.role = this.role === 'primary' ? 'secondary-rev' : 'secondary'
      this.generation = this.partner_generation
      this.started = true
    } else if (op === 'restore') {
      this.role = 'primary'
      this.started = true
    } else if (op === 'switchover') {
      this.role = 'primary-rev'
      this.started = true
    } else {
      this.role = REVERSED[this.role]
    }
    this.period_token = undefined
    this.partner_role = undefined // told again by the ack's sender's hello
    effects.push(
      this.persistEffect(),
      { kind: 'send', to: this.config.partner, message: { t: 'rc-role-change-ack', group: g, op, role: this.role } },
      this.emit('rc.role-changed', { op, from, to: this.role }),
      ...this.hello(),
    )
    if (isSourceRole(this.role) && this.started) {
      this.sync_due = true
      effects.push(...this.schedulePeriod(now_ms))
    }
    return effects
  }

  private onRoleChangeAck(op: RoleOp, partnerRole: RcRole, now_ms: number): RcEffect[] {
    if (this.role_change_pending !== op) return []
    this.role_change_pending = undefined
    this.partner_role = partnerRole
    const effects: RcEffect[] = [this.emit('rc.role-changed', { op, to: this.role, partner: partnerRole })]
    if (op === 'recover') {
      // Started before the hello: the partner (now Secondary-Rev) takes its started flag from it.
      this.started = true
      this.sync_due = true
      effects.push(this.persistEffect(), ...this.hello(), ...this.schedulePeriod(now_ms), ...this.maybeStartCycle(now_ms))
    } else {
      effects.push(...this.hello())
    }
    return effects
  }

  private onDirtySet(volume: string, block_count: number, bitmap: Uint8Array | undefined): RcEffect[] {
    if (this.role_change_pending !== 'recover')
      throw new HvlabError('HVLAB_E_PROTOCOL', `rc-dirty-set for group ${this.config.group} arrived outside a recover`)
    const v = this.requireVolume(volume)
    if (block_count !== v.block_count || !bitmap || bitmap.length !== Math.ceil(block_count / 8)) {
      throw new HvlabError('HVLAB_E_PROTOCOL', `rc-dirty-set for volume ${volume} does not match its ${v.block_count} blocks`)
    }
    const blocks = decodeBitmap(bitmap, block_count)
    // The old primary's list is what it may have changed, not what differs (after a crash
    // of a sync primary it is every block): compare before sending.
    if (blocks.length > 0) v.compare = true
    return this.markDirty(v, blocks)
  }

  // ------------------------------------------------------------------ cycles

  private timer(token: string, now_ms: number): RcEffect[] {
    if (token === this.sync_wait_token) return this.onSyncWaitTimer(now_ms)
    if (token !== this.period_token) return []
    this.period_token = undefined
    if (!isSourceRole(this.role) || !this.started) return []
    this.sync_due = true
    return [...this.schedulePeriod(now_ms), ...this.maybeStartCycle(now_ms)]
  }

  private schedulePeriod(now_ms: number): RcEffect[] {
    if (this.config.mode !== 'periodic' || this.period_token !== undefined) return []
    this.period_token = `rc-period:${this.config.group}:${++this.timer_seq}`
    return [{ kind: 'set-timer', at_ms: now_ms + this.config.period_ms, token: this.period_token }]
  }

  private maybeStartCycle(now_ms: number): RcEffect[] {
    if (!isSourceRole(this.role) || !this.started || !this.partnerOk() || this.cycle || this.role_change_pending) return []
    if (this.config.mode === 'periodic' && !this.sync_due) return []
    if (![...this.volumes.values()].some((v) => v.dirty.size > 0)) {
      this.sync_due = false
      return []
    }
    if (this.permits_required && !this.has_permit) {
      if (this.permit_requested) return []
      this.permit_requested = true
      return [{ kind: 'request-resync-permit' }]
    }
    this.sync_due = false
    const c: Cycle = {
      id: ++this.cycle_seq,
      consistent_at_ms: now_ms,
      volumes: new Set(this.volumes.keys()),
      frozen: new Map(),
      unsent: new Map(),
      preserved: new Map(),
      inflight: new Map(),
      compare: new Set([...this.volumes.values()].filter((v) => v.compare).map((v) => v.volume)),
      next_batch: 0,
      ended: false,
    }
    for (const v of this.volumes.values()) {
      c.frozen.set(v.volume, v.dirty)
      c.unsent.set(v.volume, new Set(v.dirty))
      c.preserved.set(v.volume, new Set())
      v.dirty = new Set()
    }
    this.cycle = c
    return [
      {
        kind: 'send',
        to: this.config.partner,
        message: { t: 'rc-cycle-begin', group: this.config.group, cycle: c.id, consistent_at_ms: now_ms },
      },
      this.emit('rc.sync-started', { cycle: c.id, blocks: [...c.frozen.values()].reduce((n, s) => n + s.size, 0) }),
      ...this.pump(),
    ]
  }

  private pump(): RcEffect[] {
    const c = this.cycle
    if (!c || c.ended) return []
    const effects: RcEffect[] = []
    for (const [volume, unsent] of c.unsent) {
      while (unsent.size > 0 && c.inflight.size < this.config.batches_inflight_max) {
        const blocks: number[] = []
        for (const b of unsent) {
          blocks.push(b)
          if (blocks.length === this.config.batch_blocks_max) break
        }
        for (const b of blocks) unsent.delete(b)
        blocks.sort((a, b) => a - b)
        const batch = ++c.next_batch
        c.inflight.set(batch, { volume, blocks })
        const v = this.requireVolume(volume)
        effects.push({
          kind: 'send-blocks',
          to: this.config.partner,
          group: this.config.group,
          cycle: c.id,
          batch,
          volume,
          remote_volume: v.remote_volume,
          blocks,
          compare: c.compare.has(volume),
        })
      }
    }
    if (c.inflight.size === 0 && [...c.unsent.values()].every((s) => s.size === 0)) {
      c.ended = true
      effects.push({
        kind: 'send',
        to: this.config.partner,
        message: { t: 'rc-cycle-end', group: this.config.group, cycle: c.id, consistent_at_ms: c.consistent_at_ms },
      })
    }
    return effects
  }

  private onBlocksAck(cycle: number, batch: number, received: number | undefined): RcEffect[] {
    const c = this.cycle
    const sent = c?.id === cycle ? c.inflight.get(batch) : undefined
    if (!c || !sent) return [] // from an aborted cycle
    c.inflight.delete(batch)
    this.bytes_resynced_total += Math.min(received ?? sent.blocks.length, sent.blocks.length) * this.config.block_size_bytes
    return this.pump()
  }

  private onPermit(now_ms: number): RcEffect[] {
    this.permit_requested = false
    this.has_permit = true
    const effects = this.maybeStartCycle(now_ms)
    return this.cycle ? effects : [...effects, ...this.releasePermit()]
  }

  private releasePermit(): RcEffect[] {
    if (!this.has_permit) return []
    this.has_permit = false
    return [{ kind: 'release-resync-permit' }]
  }

  private onCycleDone(cycle: number, now_ms: number): RcEffect[] {
    const c = this.cycle
    if (!c || c.id !== cycle || !c.ended) return []
    this.cycle = undefined
    for (const name of c.volumes) {
      const v = this.volumes.get(name)
      if (v) v.synced_once = true
    }
    for (const name of c.compare) {
      const v = this.volumes.get(name)
      if (v) v.compare = false
    }
    this.last_sync_ms = c.consistent_at_ms
    if (![...this.volumes.values()].some((v) => v.compare)) this.journal_damaged = false
    return [
      { kind: 'release', snapshot: 'delta' },
      ...this.releasePermit(),
      this.persistEffect(),
      this.emit('rc.synced', { cycle, consistent_at_ms: c.consistent_at_ms, bytes_behind: this.bytesBehind() }),
      ...this.maybeStartCycle(now_ms),
      ...this.maybeCompleteSwitchover(),
    ]
  }

  /** Stops the running cycle; its blocks go back into the dirty sets. */
  private abortCycle(): RcEffect[] {
    const c = this.cycle
    if (!c) return []
    this.cycle = undefined
    for (const [name, frozen] of c.frozen) {
      const v = this.volumes.get(name)
      if (v) for (const b of frozen) v.dirty.add(b)
    }
    return [{ kind: 'release', snapshot: 'delta' }, ...this.releasePermit(), this.emit('rc.sync-interrupted', { cycle: c.id })]
  }

  // ------------------------------------------------------------------ state

  /** Both sides act as primary and the partner failed over more recently: this copy is the stale one. */
  private supersededByPartner(): boolean {
    return this.link_up && isSourceRole(this.role) && isSourceRole(this.partner_role) && this.partner_generation > this.generation
  }

  private partnerOk(): boolean {
    return this.link_up && isTargetRole(this.partner_role)
  }

  private replicatingSync(): boolean {
    return (
      this.config.mode === 'sync' &&
      this.started &&
      this.partnerOk() &&
      !this.cycle &&
      [...this.volumes.values()].every((v) => v.dirty.size === 0 && v.synced_once)
    )
  }

  private inSync(): boolean {
    return !this.cycle && this.pending_sync.size === 0 && [...this.volumes.values()].every((v) => v.dirty.size === 0 && v.synced_once)
  }

  private volumeBlocksBehind(v: VolumeState): number {
    const c = this.cycle
    if (!c) return v.dirty.size
    const behind = new Set(v.dirty)
    for (const b of c.unsent.get(v.volume) ?? []) behind.add(b)
    for (const f of c.inflight.values()) if (f.volume === v.volume) for (const b of f.blocks) behind.add(b)
    return behind.size
  }

  private bytesBehind(): number {
    let blocks = 0
    for (const v of this.volumes.values()) blocks += this.volumeBlocksBehind(v)
    for (const w of this.pending_sync.values()) blocks += w.blocks.length
    return blocks * this.config.block_size_bytes
  }

  /** With `now_ms`, a sync write past its bound makes the volumes NotSynced even before its timer fires. */
  volumeState(volume: string, now_ms?: number): VolumeSyncState {
    const v = this.requireVolume(volume)
    if (isSourceRole(this.role)) {
      if (this.cycle?.volumes.has(volume)) return 'Syncing'
      if (!v.synced_once) return 'New'
      if (!this.started) return 'Stopped'
      if (!this.partnerOk() || this.overdueSyncWrites(now_ms) > 0) return 'NotSynced'
      return v.dirty.size > 0 && this.config.mode === 'sync' ? 'Syncing' : 'Synced'
    }
    if (!v.synced_once) return this.target_cycle !== undefined && this.link_up ? 'Syncing' : 'New'
    if (this.target_cycle !== undefined || v.rollback.size > 0) return this.link_up ? 'Syncing' : 'Stale'
    if (!this.started) return 'Stopped'
    if (!this.link_up) return 'NotSynced'
    return 'Synced'
  }

  /** The group as the operator reads it; with `now_ms`, sync writes past their bound count as overdue (stuck). */
  status(now_ms?: number): RcGroupStatus {
    const bs = this.config.block_size_bytes
    const s: RcGroupStatus = {
      group: this.config.group,
      partner: this.config.partner,
      role: this.role,
      mode: this.config.mode,
      started: this.started,
      link_up: this.link_up,
      bytes_behind: isSourceRole(this.role) ? this.bytesBehind() : 0,
      bytes_resynced_total: this.bytes_resynced_total,
      generation: this.generation,
      volumes: [...this.volumes.values()].map((v) => ({
        volume: v.volume,
        remote_volume: v.remote_volume,
        state: this.volumeState(v.volume, now_ms),
        bytes_behind: isSourceRole(this.role) ? this.volumeBlocksBehind(v) * bs : 0,
      })),
      write_error_policy: this.config.write_error_policy,
      incarnation: this.incarnation,
      link_failures_total: this.link_failures_total,
    }
    if (this.partner_role !== undefined) s.partner_role = this.partner_role
    if (this.last_sync_ms !== undefined) s.last_sync_ms = this.last_sync_ms
    if (this.config.mode === 'periodic') s.period_ms = this.config.period_ms
    if (this.config.mode === 'sync') {
      s.sync_write_timeout_ms = this.sync_write_timeout_ms
      s.sync_writes_waiting = this.pending_sync.size
      s.sync_writes_overdue = this.overdueSyncWrites(now_ms)
    }
    if (this.last_link_failure) s.last_link_failure = { ...this.last_link_failure }
    if (this.journal_damaged) s.journal_damaged = true
    return s
  }

  /** The state to persist; `clean_shutdown` only from a clean shutdown (see RcGroupRecord). */
  record(clean_shutdown = false): RcGroupRecord {
    const pendingBlocks = new Map<string, number[]>()
    for (const w of this.pending_sync.values()) pendingBlocks.set(w.volume, [...(pendingBlocks.get(w.volume) ?? []), ...w.blocks])
    return {
      format: 1,
      config: { ...this.config },
      role: this.role,
      started: this.started,
      seq: this.seq,
      cycle_seq: this.cycle_seq,
      generation: this.generation,
      incarnation: this.incarnation,
      last_sync_ms: this.last_sync_ms ?? null,
      bytes_resynced_total: this.bytes_resynced_total,
      volumes: [...this.volumes.values()].map((v) => {
        const dirty = new Set(v.dirty)
        for (const b of this.cycle?.frozen.get(v.volume) ?? []) dirty.add(b)
        for (const b of pendingBlocks.get(v.volume) ?? []) dirty.add(b)
        return {
          volume: v.volume,
          remote_volume: v.remote_volume,
          block_count: v.block_count,
          synced_once: v.synced_once,
          dirty: toRuns(dirty),
          rollback: toRuns(v.rollback),
          compare: v.compare,
        }
      }),
      ...(clean_shutdown ? { clean_shutdown: true as const } : {}),
    }
  }

  /**
   * Rebuilds a group from its last record and the block appends after it (after a restart).
   * With `journal_damaged`, a source resyncs every volume by comparison, as after a crash.
   */
  static fromRecord(
    record: RcGroupRecord,
    appended: readonly Extract<RcEffect, { kind: 'persist-blocks' }>[] = [],
    options: RcGroupOptions = {},
  ): RemoteCopyGroup {
    if (record.format !== 1)
      throw new HvlabError('HVLAB_E_INTERNAL', `remote copy group record has unknown format ${String(record.format)}`)
    const g = new RemoteCopyGroup(record.config, options)
    g.role = record.role
    g.started = record.started
    g.seq = record.seq
    g.cycle_seq = record.cycle_seq
    g.generation = record.generation
    g.incarnation = record.incarnation ?? 0
    g.last_sync_ms = record.last_sync_ms ?? undefined
    g.bytes_resynced_total = record.bytes_resynced_total
    for (const r of record.volumes) {
      const v = g.addVolume(r.volume, r.remote_volume, r.block_count)
      v.synced_once = r.synced_once
      v.dirty = fromRuns(r.dirty)
      v.rollback = fromRuns(r.rollback)
      v.compare = r.compare === true
    }
    for (const a of appended) {
      const v = g.volumes.get(a.volume)
      if (v) for (const b of a.blocks) (a.set === 'dirty' ? v.dirty : v.rollback).add(b)
    }
    // Sync writes in flight at a crash were not recorded: a source that may have had
    // some resyncs every volume in full — comparing hashes, so only what differs is sent.
    // After a clean shutdown the record says exactly what the partner may lack, unless the
    // journal after it was damaged.
    const crashed = g.config.mode === 'sync' && record.clean_shutdown !== true
    if (isSourceRole(g.role) && (crashed || g.journal_damaged)) {
      for (const v of g.volumes.values()) {
        for (let b = 0; b < v.block_count; b++) v.dirty.add(b)
        v.compare = true
      }
    }
    return g
  }

  // ------------------------------------------------------------------ helpers

  private addVolume(volume: string, remote_volume: string, block_count: number): VolumeState {
    const v: VolumeState = { volume, remote_volume, block_count, dirty: new Set(), synced_once: false, rollback: new Set(), compare: false }
    this.volumes.set(volume, v)
    return v
  }

  private requireVolume(volume: string): VolumeState {
    const v = this.volumes.get(volume)
    if (!v) throw new HvlabError('HVLAB_E_NOT_FOUND', `volume ${volume} is not in remote copy group ${this.config.group}`)
    return v
  }

  private blocksOf(v: VolumeState, block: number, bytes: number, what: string): number[] {
    const bs = this.config.block_size_bytes
    if (bytes === 0 || bytes % bs !== 0) {
      throw new HvlabError(
        'HVLAB_E_REFUSED',
        `${what} to volume ${v.volume} refused: ${bytes} bytes is not a whole number of ${bs}-byte blocks; nothing was written`,
      )
    }
    const n = bytes / bs
    if (!Number.isSafeInteger(block) || block < 0 || block + n > v.block_count) {
      throw new HvlabError(
        'HVLAB_E_REFUSED',
        `${what} to blocks ${block}..${block + n - 1} of volume ${v.volume} refused: it has blocks 0..${v.block_count - 1}; nothing was written`,
      )
    }
    return Array.from({ length: n }, (_, i) => block + i)
  }

  private persistEffect(): RcEffect {
    return { kind: 'persist', record: this.record() }
  }

  private emit<K extends RcEventKind>(event: K, details: RcGroupDetailsOf<K>): RcEffect {
    return rcEmit(event, { group: this.config.group, role: this.role }, details)
  }
}

/** The answer to a refused rc-write (by the group, or by the shell when its queue was full). */
export function rcWriteNackMessage(
  group: string,
  incarnation: number,
  seq: number,
  code: HvlabErrorCode,
  reason: string,
): Extract<RcPeerMessage, { t: 'rc-write-nack' }> {
  return { t: 'rc-write-nack', group, incarnation, seq, code, reason: reason.slice(0, REASON_CHARS_MAX) }
}

export function encodeBitmap(blocks: ReadonlySet<number>, block_count: number): Uint8Array {
  const out = new Uint8Array(Math.ceil(block_count / 8))
  for (const b of blocks) if (b < block_count) out[b >> 3]! |= 1 << (b & 7)
  return out
}

export function decodeBitmap(bitmap: Uint8Array, block_count: number): number[] {
  const out: number[] = []
  for (let b = 0; b < block_count; b++) if ((bitmap[b >> 3]! >> (b & 7)) & 1) out.push(b)
  return out
}

function toRuns(blocks: ReadonlySet<number>): Runs {
  const sorted = [...blocks].sort((a, b) => a - b)
  const runs: Runs = []
  for (const b of sorted) {
    const last = runs[runs.length - 1]
    if (last && last[0] + last[1] === b) last[1]++
    else runs.push([b, 1])
  }
  return runs
}

function fromRuns(runs: Runs): Set<number> {
  const s = new Set<number>()
  for (const [first, count] of runs) for (let i = 0; i < count; i++) s.add(first + i)
  return s
}
