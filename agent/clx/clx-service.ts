/**
 * The CLX shell on a host: asks both arrays for a VM's remote-copy group status, lets the
 * pure `decideClx` choose, carries the verb out on the right array, waits until the copy
 * in the starting host's site is writable, and puts what it did on the timeline
 * (clx.switchover, clx.failover, clx.refused).
 *
 * An array that does not answer a status request within `status_timeout_ms` counts as
 * lost. Refusals throw HvlabError('HVLAB_E_REFUSED', message for a person).
 */
import { sleepOn, type Clock } from '../../shared/clock.js'
import { HvlabError, describeError } from '../../shared/errors.js'
import type { RcGroupStatus } from '../../shared/protocol/storage-messages.js'
import type { DetailsOf } from '../../shared/timeline/events.js'
import { expectReply, groupStatus, isUnreachable, type ArrayAdmin } from './array-admin.js'
import { decideClx, type ArrayView, type ClxDecision, type ClxOperation } from './clx-decision.js'

export const CLX_STATUS_TIMEOUT_MS_DEFAULT = 2_000
export const CLX_VERB_TIMEOUT_MS_DEFAULT = 10_000
/** How long a switchover may take to drain and swap roles before the start gives up. */
export const CLX_WRITABLE_WAIT_MS_DEFAULT = 30_000
export const CLX_POLL_MS_DEFAULT = 100

export type ClxEventKind = 'clx.switchover' | 'clx.failover' | 'clx.refused' | 'clx.checked'
export type ClxEventDetails = Record<string, string | number | boolean | null>

export interface ClxServiceOptions {
  /** This host's name (for messages and events). */
  host: string
  /** The lab's arrays and their sites (p.topology.arrays). */
  arrays: readonly { name: string; site: string }[]
  admin: ArrayAdmin
  clock: Clock
  emit<K extends ClxEventKind>(kind: K, details: DetailsOf<K>): void
  status_timeout_ms?: number
  verb_timeout_ms?: number
  writable_wait_ms?: number
  poll_ms?: number
}

export interface ClxResult {
  action: 'none' | 'switchover' | 'failover'
  vm: string
  group: string
  /** The array that holds the writable copy now (in the host's site). */
  array: string
  forced: boolean
  why: string
}

export class ClxService {
  private readonly status_timeout_ms: number
  private readonly verb_timeout_ms: number
  private readonly writable_wait_ms: number
  private readonly poll_ms: number

  constructor(private readonly o: ClxServiceOptions) {
    this.status_timeout_ms = o.status_timeout_ms ?? CLX_STATUS_TIMEOUT_MS_DEFAULT
    this.verb_timeout_ms = o.verb_timeout_ms ?? CLX_VERB_TIMEOUT_MS_DEFAULT
    this.writable_wait_ms = o.writable_wait_ms ?? CLX_WRITABLE_WAIT_MS_DEFAULT
    this.poll_ms = o.poll_ms ?? CLX_POLL_MS_DEFAULT
    for (const [name, v] of Object.entries({
      status_timeout_ms: this.status_timeout_ms,
      verb_timeout_ms: this.verb_timeout_ms,
      writable_wait_ms: this.writable_wait_ms,
      poll_ms: this.poll_ms,
    })) {
      if (!Number.isFinite(v) || v <= 0)
        throw new HvlabError('HVLAB_E_USAGE', `CLX ${name} must be a positive number of milliseconds, got ${v}`)
    }
  }

  /**
   * Before the VM starts on this host (in `hostSite`): makes the group's copy in that site
   * writable, or refuses. Resolves with what was done.
   */
  async prepareForStart(vm: string, group: string, hostSite: string, options: { force?: boolean } = {}): Promise<ClxResult> {
    const force = options.force === true
    const decision = await this.decide(vm, group, hostSite, force)
    return this.carryOut(vm, group, decision, 'start', force)
  }

  /**
   * Before a live or quick migration to `targetSite` starts: resolves when the migration may
   * go ahead (the group is Synced with both arrays healthy, or the target site already holds
   * the writable copy), else throws HVLAB_E_REFUSED naming the cause and what clears it (the
   * VM keeps running on the source). Never changes the storage. `destination`: the host the
   * VM moves to (for messages; default this host).
   */
  async checkForLiveMigration(
    vm: string,
    group: string,
    targetSite: string,
    destination: string = this.o.host,
    operation: Exclude<ClxOperation, 'start'> = 'live-migration',
  ): Promise<{ action: 'none' | 'switchover'; why: string }> {
    const d = await this.decide(vm, group, targetSite, false, destination, operation)
    if (d.action === 'none' || d.action === 'switchover') {
      this.o.emit('clx.checked', { vm, group, host: this.o.host, for: operation, action: d.action })
      return { action: d.action, why: d.why }
    }
    const kind = operation === 'live-migration' ? 'live migration' : 'quick migration'
    const message =
      d.action === 'refuse'
        ? d.message
        : `cannot move vm ${vm} to ${destination} by ${kind}: it needs both arrays healthy and remote copy group ${group} Synced, but ${d.why}`
    this.refused(vm, group, d.action === 'refuse' ? d.reason : 'primary-lost', operation, message)
  }

  /**
   * The storage step inside a live migration's blackout (the guest is paused): switches
   * the group over to `targetSite`'s array. Refuses anything but a planned, zero-loss
   * switchover (or nothing, when that site already holds the writable copy).
   */
  async switchoverInBlackout(vm: string, group: string, targetSite: string, destination: string = this.o.host): Promise<ClxResult> {
    const d = await this.decide(vm, group, targetSite, false, destination)
    if (d.action === 'failover') {
      this.refused(
        vm,
        group,
        'primary-lost',
        'live-migration',
        `live migration of vm ${vm} cancelled in its blackout: ${d.why}; a live migration only switches over`,
      )
    }
    return this.carryOut(vm, group, d, 'live-migration', false)
  }

  // ---------------------------------------------------------------- decision

  private async decide(
    vm: string,
    group: string,
    site: string,
    force: boolean,
    host: string = this.o.host,
    operation: ClxOperation = 'start',
  ): Promise<ClxDecision> {
    const { local, remote } = this.arraysFor(site)
    const [lv, rv] = await Promise.all([this.view(local, group), this.view(remote, group)])
    const input = { vm, group, host, host_site: site, local: lv, remote: rv, force, operation }
    const d = decideClx(input)
    if (d.action === 'refuse' && d.reason === 'syncing') {
      const group_bytes = await this.groupBytes(rv.reachable ? rv : lv)
      if (group_bytes !== undefined) return decideClx({ ...input, group_bytes })
    }
    return d
  }

  private arraysFor(site: string): { local: string; remote: string } {
    const local = this.o.arrays.filter((a) => a.site === site)
    const remote = this.o.arrays.filter((a) => a.site !== site)
    if (local.length !== 1 || remote.length !== 1) {
      throw new HvlabError(
        'HVLAB_E_TOPOLOGY',
        `CLX needs exactly one array in site ${site} and one in another site; the topology has ${local.length} in ${site} and ${remote.length} elsewhere (${this.o.arrays.map((a) => `${a.name}@${a.site}`).join(', ') || 'no arrays'})`,
      )
    }
    return { local: local[0]!.name, remote: remote[0]!.name }
  }

  private async view(array: string, group: string): Promise<ArrayView> {
    try {
      return { array, reachable: true, status: await groupStatus(this.o.admin, array, group, this.status_timeout_ms) }
    } catch (e) {
      if (isUnreachable(e)) return { array, reachable: false, error: describeError(e) }
      throw e
    }
  }

  /** The group's size, for "73% synced"; best effort. */
  private async groupBytes(view: ArrayView): Promise<number | undefined> {
    if (!view.reachable || !view.status) return undefined
    try {
      const listing = expectReply(
        view.array,
        'volume-list',
        await this.o.admin.request(view.array, { t: 'volume-list' }, this.status_timeout_ms),
        'volume-listing',
      )
      const names = new Set(view.status.volumes.map((v) => v.volume))
      return listing.volumes.filter((v) => names.has(v.volume)).reduce((n, v) => n + v.size_bytes, 0)
    } catch {
      return undefined
    }
  }

  // ---------------------------------------------------------------- action

  private async carryOut(
    vm: string,
    group: string,
    d: ClxDecision,
    context: 'start' | 'live-migration',
    force: boolean,
  ): Promise<ClxResult> {
    switch (d.action) {
      case 'none':
        return { action: 'none', vm, group, array: d.array, forced: false, why: d.why }
      case 'refuse':
        return this.refused(vm, group, d.reason, context, d.message, d.forceable && !force)
      case 'switchover': {
        await this.verb(d.run_on, group, d.verb, false)
        const s = await this.waitWritable(d.local_array, group, `${d.verb} of remote copy group ${group} from ${d.run_on}`)
        this.o.emit('clx.switchover', {
          vm,
          group,
          host: this.o.host,
          from_array: d.run_on,
          to_array: d.local_array,
          verb: d.verb,
          role: s.role,
          context,
        })
        return { action: 'switchover', vm, group, array: d.local_array, forced: false, why: d.why }
      }
      case 'failover': {
        if (d.stop_first_on !== undefined) {
          await this.verb(d.stop_first_on, group, 'stop', false)
          await this.waitFor(
            d.run_on,
            group,
            (s) => !s.started || !s.link_up,
            `array ${d.run_on} to see group ${group} stopped on ${d.stop_first_on}`,
          )
        }
        await this.verb(d.run_on, group, 'failover', d.force)
        const s = await this.waitWritable(d.run_on, group, `failover of remote copy group ${group} on ${d.run_on}`)
        this.o.emit('clx.failover', { vm, group, host: this.o.host, array: d.run_on, role: s.role, forced: d.force, why: d.why, context })
        return { action: 'failover', vm, group, array: d.run_on, forced: d.force, why: d.why }
      }
    }
  }

  private refused(vm: string, group: string, reason: string, context: string, message: string, forceable = false): never {
    this.o.emit('clx.refused', { vm, group, host: this.o.host, reason, context, forceable, message })
    throw new HvlabError('HVLAB_E_REFUSED', message)
  }

  private async verb(array: string, group: string, verb: 'switchover' | 'restore' | 'failover' | 'stop', force: boolean): Promise<void> {
    try {
      const reply = await this.o.admin.request(array, { t: 'rc-verb', group, verb, ...(force ? { force } : {}) }, this.verb_timeout_ms)
      expectReply(array, 'rc-verb', reply, 'rc-status')
    } catch (e) {
      throw new HvlabError(
        isUnreachable(e) ? 'HVLAB_E_TIMEOUT' : 'HVLAB_E_REFUSED',
        `CLX could not run ${verb} of remote copy group ${group} on array ${array}: ${describeError(e)}; check hvlab rcopy status ${group} and retry`,
        { cause: e },
      )
    }
  }

  private waitWritable(array: string, group: string, what: string): Promise<RcGroupStatus> {
    return this.waitFor(
      array,
      group,
      (s) => s.role === 'primary' || s.role === 'primary-rev',
      `${what} to make the copy on ${array} writable`,
    )
  }

  /** Polls the group's status on `array` until `ok`, for at most writable_wait_ms. */
  private async waitFor(array: string, group: string, ok: (s: RcGroupStatus) => boolean, what: string): Promise<RcGroupStatus> {
    const deadline_ms = this.o.clock.now() + this.writable_wait_ms
    let last = 'no answer yet'
    for (;;) {
      try {
        const s = await groupStatus(this.o.admin, array, group, this.status_timeout_ms)
        if (s && ok(s)) return s
        last = s
          ? `${s.role}, ${s.started ? 'started' : 'stopped'}, link ${s.link_up ? 'up' : 'down'}, ${s.bytes_behind} bytes behind`
          : 'no such group'
      } catch (e) {
        last = describeError(e)
      }
      if (this.o.clock.now() >= deadline_ms) {
        throw new HvlabError(
          'HVLAB_E_TIMEOUT',
          `waited ${this.writable_wait_ms} ms for ${what}; last seen on ${array}: ${last}; check hvlab rcopy status ${group}`,
        )
      }
      await sleepOn(this.o.clock, this.poll_ms)
    }
  }
}
