/**
 * A VM's default storage (seed 000, the multi-site CLX layout): a volume `<vm>-disk0` (and
 * `<vm>-disk1`… for its data disks) on the array of the VM's preferred owner's site, in a
 * remote-copy group `rc-<vm>` of its own (synchronous by default) paired with the other
 * site's array, admitted, started, and presented to the hosts of both sites. The group
 * holds every disk of the VM, so they fail over together and stay consistent together.
 *
 * Idempotent: every step looks first and does only what is missing, so running it again
 * after a crash (of the host, or of the CLI) finishes the job. If the group was failed over
 * or switched since, the steps run on whichever array is its source now.
 */
import { sleepOn, type Clock } from '../../shared/clock.js'
import { HvlabError, describeError } from '../../shared/errors.js'
import type { LabProcess } from '../../shared/lab-process.js'
import type { RcGroupStatus } from '../../shared/protocol/storage-messages.js'
import { expectReply, groupStatus, meshArrayAdmin, type ArrayAdmin, type ArrayAdminRequest } from './array-admin.js'

export const VM_DISK_REQUEST_TIMEOUT_MS_DEFAULT = 10_000
/** How long provisioning waits for the arrays to see each other / the copy to appear. */
export const VM_DISK_WAIT_MS_DEFAULT = 30_000
export const VM_DISK_POLL_MS = 100

export type VmStorageSpec =
  | {
      kind: 'replicated'
      /** The remote-copy group, `rc-<vm>`. */
      group: string
      /** The volume's name on both arrays, `<vm>-disk0`. */
      volume: string
      size_bytes: number
      /** Its data disks' volumes (`<vm>-disk1`…), each of `size_bytes`; absent: none. */
      data_volumes?: string[]
      mode: 'sync' | 'periodic'
      /** The natural roles: primary = the preferred owner's site's array. */
      arrays: { primary: string; secondary: string }
      /** Hosts the volume is presented to, on both arrays. */
      hosts: string[]
    }
  | { kind: 'local' }

export interface VmDiskRequest {
  vm: string
  /** The site of the VM's preferred owner: its array holds the primary copy. */
  preferredSite: string
  size_bytes: number
  /** Disks of `size_bytes` each (default 1). */
  disks?: number
  mode?: 'sync' | 'periodic'
  /** Periodic mode only: the period before timeScale. */
  period_ms?: number
}

export interface VmStorageContext {
  arrays: readonly { name: string; site: string }[]
  hosts: readonly { name: string; site: string }[]
  admin: ArrayAdmin
  clock: Clock
  request_timeout_ms?: number
  wait_ms?: number
}

/** The context of a lab process (a host): its topology and its mesh to the arrays. */
export function vmStorageContext(p: Pick<LabProcess, 'topology' | 'mesh' | 'clock'>): VmStorageContext {
  return { arrays: p.topology.arrays, hosts: p.topology.hosts, admin: meshArrayAdmin(p.mesh), clock: p.clock }
}

export const vmDiskVolume = (vm: string, disk = 0): string => `${vm}-disk${disk}`
/** A VM's region of a CSV for its disk `disk`: disk 0's is named after the VM, a data disk's `<vm>-diskN`. */
export const vmDiskRegion = (vm: string, disk = 0): string => (disk === 0 ? vm : vmDiskVolume(vm, disk))
export const vmDiskGroup = (vm: string): string => `rc-${vm}`

export async function provisionVmDisk(ctx: VmStorageContext, r: VmDiskRequest): Promise<Extract<VmStorageSpec, { kind: 'replicated' }>> {
  const run = new Provisioning(ctx, r)
  return run.go()
}

const isSource = (s: RcGroupStatus | undefined): boolean => s?.role === 'primary' || s?.role === 'primary-rev'

class Provisioning {
  private readonly timeout_ms: number
  private readonly wait_ms: number
  private readonly group: string
  /** Disk 0's volume first, then the data disks'. */
  private readonly volumes: string[]
  private readonly mode: 'sync' | 'periodic'
  private readonly primary: string
  private readonly secondary: string
  private readonly hosts: string[]

  constructor(
    private readonly ctx: VmStorageContext,
    private readonly r: VmDiskRequest,
  ) {
    this.timeout_ms = ctx.request_timeout_ms ?? VM_DISK_REQUEST_TIMEOUT_MS_DEFAULT
    this.wait_ms = ctx.wait_ms ?? VM_DISK_WAIT_MS_DEFAULT
    if (!Number.isSafeInteger(r.size_bytes) || r.size_bytes < 1) {
      throw new HvlabError(
        'HVLAB_E_USAGE',
        `the disk of vm ${r.vm} needs a size in bytes (a positive integer), got ${String(r.size_bytes)}`,
      )
    }
    this.group = vmDiskGroup(r.vm)
    this.volumes = Array.from({ length: r.disks ?? 1 }, (_, disk) => vmDiskVolume(r.vm, disk))
    this.mode = r.mode ?? 'sync'
    const here = ctx.arrays.filter((a) => a.site === r.preferredSite)
    const there = ctx.arrays.filter((a) => a.site !== r.preferredSite)
    if (here.length !== 1 || there.length !== 1) {
      throw new HvlabError(
        'HVLAB_E_TOPOLOGY',
        `a replicated disk for vm ${r.vm} needs exactly one array in site ${r.preferredSite} and one in another site; the topology has ${here.length} and ${there.length}; use --storage local or csv:NAME instead`,
      )
    }
    this.primary = here[0]!.name
    this.secondary = there[0]!.name
    const sites = new Set([here[0]!.site, there[0]!.site])
    this.hosts = ctx.hosts.filter((h) => sites.has(h.site)).map((h) => h.name)
  }

  async go(): Promise<Extract<VmStorageSpec, { kind: 'replicated' }>> {
    const source = await this.ensureGroup()
    const target = source === this.primary ? this.secondary : this.primary
    for (const volume of this.volumes) await this.ensureVolume(source, volume)
    for (const volume of this.volumes) await this.ensureAdmitted(source, volume)
    await this.ensureStarted(source)
    for (const array of [source, target]) for (const volume of this.volumes) await this.ensurePresented(array, volume)
    return {
      kind: 'replicated',
      group: this.group,
      volume: this.volumes[0]!,
      size_bytes: this.r.size_bytes,
      mode: this.mode,
      arrays: { primary: this.primary, secondary: this.secondary },
      hosts: [...this.hosts],
      ...(this.volumes.length > 1 ? { data_volumes: this.volumes.slice(1) } : {}),
    }
  }

  /** Creates whatever side of the group is missing; returns the array that is its source now. */
  private async ensureGroup(): Promise<string> {
    const [p, s] = await Promise.all([this.status(this.primary), this.status(this.secondary)])
    if (p && s) {
      if (isSource(p) === isSource(s)) {
        throw new HvlabError(
          'HVLAB_E_STATE',
          `remote copy group ${this.group} is ${p.role} on ${this.primary} and ${s.role} on ${this.secondary}; exactly one must be the source — fix it with hvlab rcopy, then run this again`,
        )
      }
      return isSource(p) ? this.primary : this.secondary
    }
    if (p && !isSource(p))
      throw new HvlabError(
        'HVLAB_E_STATE',
        `remote copy group ${this.group} on ${this.primary} is ${p.role}, but ${this.secondary} has no side of it; fix it with hvlab rcopy, then run this again`,
      )
    if (s && isSource(s))
      throw new HvlabError(
        'HVLAB_E_STATE',
        `remote copy group ${this.group} on ${this.secondary} is ${s.role}, but ${this.primary} has no side of it; fix it with hvlab rcopy, then run this again`,
      )
    // auto_failover: the cluster's CLX fails this group over, and it recovers by itself once the arrays see each other again
    const base = {
      group: this.group,
      mode: this.mode,
      auto_failover: true,
      ...(this.r.period_ms === undefined ? {} : { period_ms: this.r.period_ms }),
    }
    if (!s) await this.ask(this.secondary, { t: 'rc-create', ...base, partner: this.primary, role: 'secondary' }, 'rc-status')
    if (!p) await this.ask(this.primary, { t: 'rc-create', ...base, partner: this.secondary, role: 'primary' }, 'rc-status')
    return this.primary
  }

  private async ensureVolume(array: string, volume: string): Promise<void> {
    const listing = await this.ask(array, { t: 'volume-list' }, 'volume-listing')
    const v = listing.volumes.find((x) => x.volume === volume)
    if (!v) {
      await this.ask(array, { t: 'volume-create', volume, size_bytes: this.r.size_bytes }, 'volume-listing')
      return
    }
    const bs = listing.block_size_bytes
    if (Math.ceil(v.size_bytes / bs) !== Math.ceil(this.r.size_bytes / bs)) {
      throw new HvlabError(
        'HVLAB_E_STATE',
        `volume ${volume} already exists on ${array} with ${v.size_bytes} bytes, not ${this.r.size_bytes}; remove it or ask for its size`,
      )
    }
  }

  private async ensureAdmitted(source: string, volume: string): Promise<void> {
    const s = await this.status(source)
    if (s?.volumes.some((v) => v.volume === volume)) return
    // The arrays must see each other first (the group's hellos cross after rc-create).
    await this.until(
      `arrays ${source} and its partner to link group ${this.group}`,
      async () => (await this.status(source))?.link_up === true,
    )
    await this.retrying(`admitting ${volume} to ${this.group}`, () =>
      this.ask(source, { t: 'rc-admit', group: this.group, volume, remote_volume: volume }, 'rc-status'),
    )
  }

  private async ensureStarted(source: string): Promise<void> {
    if ((await this.status(source))?.started) return
    await this.ask(source, { t: 'rc-verb', group: this.group, verb: 'start' }, 'rc-status')
  }

  /**
   * The copy on the target appears when its array gets the admit; retried until it has.
   * Every host at once: one round trip per array instead of one per host (the array
   * writes its table once for the presentations that arrive together: lun-masking.ts).
   */
  private async ensurePresented(array: string, volume: string): Promise<void> {
    await Promise.all(
      this.hosts.map((host) =>
        this.retrying(`presenting ${volume} on ${array} to ${host}`, () =>
          this.ask(array, { t: 'lun-present', volume, host, initiators: [] }, 'lun-presentations'),
        ),
      ),
    )
  }

  // ---------------------------------------------------------------- plumbing

  private status(array: string): Promise<RcGroupStatus | undefined> {
    return groupStatus(this.ctx.admin, array, this.group, this.timeout_ms)
  }

  private async ask<T extends 'rc-status' | 'volume-listing' | 'lun-presentations'>(array: string, m: ArrayAdminRequest, t: T) {
    return expectReply(array, m.t, await this.ctx.admin.request(array, m, this.timeout_ms), t)
  }

  /** Retries `f` on HVLAB_E_STATE / HVLAB_E_NOT_FOUND (the partner not there yet) until wait_ms. */
  private async retrying<R>(what: string, f: () => Promise<R>): Promise<R> {
    const deadline_ms = this.ctx.clock.now() + this.wait_ms
    for (;;) {
      try {
        return await f()
      } catch (e) {
        const transient = e instanceof HvlabError && (e.code === 'HVLAB_E_STATE' || e.code === 'HVLAB_E_NOT_FOUND')
        if (!transient || this.ctx.clock.now() >= deadline_ms) {
          throw new HvlabError(
            e instanceof HvlabError ? e.code : 'HVLAB_E_INTERNAL',
            `provisioning the disk of vm ${this.r.vm} failed while ${what}: ${describeError(e)}; run the same command again to finish`,
            { cause: e },
          )
        }
      }
      await this.sleep()
    }
  }

  private async until(what: string, ok: () => Promise<boolean>): Promise<void> {
    const deadline_ms = this.ctx.clock.now() + this.wait_ms
    while (!(await ok())) {
      if (this.ctx.clock.now() >= deadline_ms) {
        throw new HvlabError(
          'HVLAB_E_TIMEOUT',
          `provisioning the disk of vm ${this.r.vm}: waited ${this.wait_ms} ms for ${what}; check that both arrays are up, then run the same command again`,
        )
      }
      await this.sleep()
    }
  }

  private sleep(): Promise<void> {
    return sleepOn(this.ctx.clock, VM_DISK_POLL_MS)
  }
}
