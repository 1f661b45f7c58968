/**
 * A standalone Hyper-V host's replica server (seed 002): once enabled (`hvlab replica
 * server enable`), it takes the replication of VMs from the primary servers it allows,
 * one replica VM each (replica-vm.ts) under `data/<server>/replica/vms/<vm>/`. A primary
 * begins (or, after a move or a restart, begins again) with `replica-begin`, resyncs when
 * asked, then ships a log every cycle. Every request from a primary is checked against
 * the allow list first: an unauthorised primary is refused with HVLAB_E_REPLICA_NOT_ALLOWED.
 *
 * Every replica kept on its storage opens when the server starts (openAll), its primary
 * down or not: a disaster is when a failover is wanted. The server also keeps the VMs that
 * run from their disks here, failed over here or created here (`hvlab vm create --on`,
 * state `created-here`): it starts them again when it restarts unless they were stopped,
 * and says which of them send their changes on (`sending`: to the cluster, or to another
 * standalone host).
 */
import { readdir, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { HvlabError } from '../../shared/errors.js'
import type { MessageOf } from '../../shared/protocol/messages.js'
import type { PeerConnection } from '../../shared/transport/peer-connection.js'
import type { ReplicaServerAuthorization } from './replica-server-settings.js'
import type { GuestLoadSetting } from '../../shared/protocol/guest-load.js'
import { REPLICA_DISK_BYTES_MAX } from '../../shared/protocol/replica-limits.js'
import type { Extension, PrimaryHandover, ReplicaSideStatus, ReplicationSetting, Reverse } from '../../shared/protocol/replica-messages.js'
import type { DiskImage } from './disk-image.js'
import type { ExtendedReplication } from './extended-replication.js'
import { readExport, type ExportHeader } from './replica-export.js'
import type { ReplicaGeometry } from './replica-store.js'
import { ReplicaVm, type ReplicaVmOptions } from './replica-vm.js'
import { readReplicaVmRecord } from './replica-vm-record.js'
import type { ReplicaVmRunner } from './replica-vm-runner.js'

/** Who may replicate which VM here: `check` throws HVLAB_E_REPLICA_NOT_ALLOWED (replica-server-settings.ts: the allow list). */
export type ReplicaAuthorization = Pick<ReplicaServerAuthorization, 'settings' | 'check'>

/** What runs a replica VM after a failover (replica-vm-runner.ts). */
export type ReplicaRunner = Pick<ReplicaVmRunner, 'run' | 'runIsolated' | 'stop' | 'running'>

export interface ReplicaServerOptions {
  /** Extended replication's forwarder (none: this server forwards no replica). */
  readonly extended?: ExtendedReplication
  /** The topology's lab acceleration of recovery points (replica-vm.ts); undefined: hourly. */
  readonly recovery_point_every_ms?: number
  /** Where a replica's disk lies (default: disk.img on this server's storage); such a disk is the VM's own, so it holds a copy. */
  readonly image?: (g: ReplicaGeometry) => Promise<DiskImage>
}

export class ReplicaServer<A extends ReplicaAuthorization = ReplicaServerAuthorization> {
  private readonly vms = new Map<string, ReplicaVm>()
  private readonly opening = new Map<string, Promise<ReplicaVm>>()

  constructor(
    readonly name: string,
    private readonly dir: string,
    private readonly time_scale: number,
    readonly auth: A,
    private readonly runner: ReplicaRunner,
    private readonly options: ReplicaServerOptions = {},
  ) {}

  /** Opens every replica kept on this server's storage (its primary may never come back: a disaster). */
  async openAll(): Promise<void> {
    let names: string[]
    try {
      names = await readdir(join(this.dir, 'vms'))
    } catch {
      return // none yet
    }
    for (const name of names) {
      const dir = join(this.dir, 'vms', name)
      const r = await readReplicaVmRecord(dir)
      if (r === undefined || r.vm !== name) continue
      const { vm, block_size_bytes, disk_blocks, disks, ...rest } = r
      const geometry = { vm, block_size_bytes, disk_blocks, ...(disks === undefined ? {} : { disks }) }
      const opened = await ReplicaVm.open({ dir, geometry, ...this.timing(), ...rest })
      this.vms.set(vm, opened)
      if (opened.extension !== null && opened.state === 'replicating') this.options.extended?.start(opened, opened.extension)
      if (opened.startsWithServer) this.runner.run(vm, opened.memory_mib, opened.store, opened.load, 'automatic-start')
    }
  }

  /**
   * Starts the replica VM here from its replica (latest, or the recovery point of
   * `recovery_cycle`); `reverse` (a planned failover from the cluster): its changes
   * replicate back there; `replication` (a planned failover from a standalone host): its
   * changes replicate to that host.
   */
  async failover(
    name: string,
    recovery_cycle: number | null,
    load: GuestLoadSetting | undefined,
    reverse: Reverse | null = null,
    replication: ReplicationSetting | null = null,
  ): Promise<void> {
    const vm = this.replica(name)
    if (replication?.to === this.name)
      throw new HvlabError('HVLAB_E_USAGE', `vm ${name} cannot replicate to ${this.name} from ${this.name}`)
    if (this.runner.running(testVmName(name))) this.runner.stop(testVmName(name), 'test failover ended') // the test copy gives way to the real one
    await vm.failover(recovery_cycle, reverse, replication)
    this.options.extended?.stop(vm) // the replica runs here now: its forwarding ends
    this.runner.run(name, vm.memory_mib, vm.store, load)
    await vm.ranWith(load)
  }

  /** The VM that failed over here unplanned and runs here replicates back to the cluster from now on (`reverse`). */
  async replicateBack(name: string, reverse: Reverse): Promise<void> {
    const vm = this.replica(name)
    if (!this.runner.running(name))
      throw new HvlabError('HVLAB_E_STATE', `vm ${name} does not run on ${this.name}; only a VM running here replicates back from here`)
    await vm.replicateBack(reverse)
  }

  /** A fail-back's first step here: the failed-over VM shuts down (its last changes then replicate back). */
  async stopForFailBack(name: string): Promise<void> {
    const vm = this.replica(name)
    if (!vm.sendsChanges)
      throw new HvlabError('HVLAB_E_STATE', `vm ${name} does not replicate from ${this.name}; nothing to fail over or back`)
    if (this.runner.running(name)) this.runner.stop(name, 'fail-back')
    await vm.stoppedHere()
  }

  /** `hvlab vm stop` of a VM that runs here (created here, or failed over unplanned): it stays off, a restart of this server too. */
  async stopHere(name: string): Promise<void> {
    const vm = this.runningHere(name)
    if (vm.reverse !== null)
      throw new HvlabError(
        'HVLAB_E_STATE',
        `vm ${name} replicates from ${this.name} to the cluster; \`hvlab replica failover ${name} --planned\` stops it here and starts it there`,
      )
    if (this.runner.running(name)) this.runner.stop(name, 'stopped')
    await vm.stoppedHere()
  }

  /** `hvlab vm start` of a VM that runs here, stopped: it starts with the guest load it last had. */
  async startHere(name: string): Promise<void> {
    const vm = this.runningHere(name)
    if (this.runner.running(name)) return
    this.runner.run(name, vm.memory_mib, vm.store, vm.load, 'start')
    await vm.ranWith(vm.load)
  }

  /** `hvlab vm remove` of a VM created here, stopped: it and its disk go. */
  async removeHere(name: string): Promise<void> {
    const vm = this.runningHere(name)
    if (vm.state !== 'created-here')
      throw new HvlabError('HVLAB_E_STATE', `vm ${name} failed over to ${this.name}; it is removed in the cluster (\`hvlab vm remove\`)`)
    if (this.runner.running(name)) throw new HvlabError('HVLAB_E_STATE', `vm ${name} runs on ${this.name}; \`hvlab vm stop ${name}\` first`)
    await this.drop(name)
  }

  /** The guest load of a VM running here changed (`hvlab vm load`): it starts with it again. */
  async loadChanged(name: string, load: GuestLoadSetting): Promise<void> {
    const vm = this.vms.get(name)
    if (vm?.runsHere === true) await vm.ranWith(load)
  }

  /** A VM that runs from its disk here (created here, or failed over), whether started or stopped. */
  private runningHere(name: string): ReplicaVm {
    const vm = this.replica(name)
    if (!vm.runsHere) throw new HvlabError('HVLAB_E_STATE', `${this.name} holds a replica of vm ${name}; the VM runs on its primary`)
    return vm
  }

  /** A fail-back's last step here: the VM no longer runs here, and its replica is its primary's replica again. */
  async failBack(name: string): Promise<void> {
    if (this.runner.running(name))
      throw new HvlabError('HVLAB_E_STATE', `vm ${name} still runs on ${this.name}; its fail-back stops it first`)
    const vm = this.replica(name)
    await vm.failBack()
    if (vm.extension !== null) this.options.extended?.start(vm, vm.extension) // forwarded again, as it was before the failover
  }

  /**
   * The cluster runs `name` again (it failed back unplanned while this server was cut off;
   * its broker says so, HVLAB_E_REPLICA_RUNS_ELSEWHERE): the copy here is the older one. It
   * stops, and its disk is its primary's replica again, as after a fail-back: the next
   * replication here compares it block by block, so only what differs travels.
   */
  async retire(name: string): Promise<void> {
    const vm = this.replica(name)
    if (!vm.sendsChanges) return
    if (this.runner.running(name)) this.runner.stop(name, 'runs in the cluster')
    await vm.failBack()
  }

  /** The VMs running here (failed over, or created here) whose changes replicate to the cluster (reverse replication). */
  get reversed(): readonly ReplicaVm[] {
    return [...this.vms.values()].filter((v) => v.runsHere && v.reverse !== null && !v.broken)
  }

  /** The VMs running here whose changes replicate from here: to the cluster, or to a standalone host. */
  get sending(): readonly ReplicaVm[] {
    return [...this.vms.values()].filter((v) => v.sendsChanges)
  }

  /** `hvlab replica enable|disable` of a VM that runs here and is no cluster role's: it replicates to standalone host `setting.to` (null: no longer). */
  async replicateTo(name: string, setting: ReplicationSetting | null): Promise<void> {
    if (setting?.to === this.name) throw new HvlabError('HVLAB_E_USAGE', `vm ${name} runs on ${this.name}; replicate it to another server`)
    const vm = this.runningHere(name)
    const missing = setting?.disks?.find((k) => k >= vm.store.disks)
    if (missing !== undefined)
      throw new HvlabError(
        'HVLAB_E_USAGE',
        `vm ${name} has ${vm.store.disks} disk(s), 0–${vm.store.disks - 1}; it has no disk ${missing} to replicate`,
      )
    await vm.replicateTo(setting)
  }

  /**
   * A VM of this host's own (`hvlab vm create NAME --on HOST`): a new, blank disk of
   * `geometry` on this host's storage, and the VM started on it at once with `load`. It is
   * kept as the replicas are (`created-here`), so it can replicate to the cluster
   * (`replicateBack`) and fail over there the way a failed-over VM fails back.
   */
  async createHere(geometry: ReplicaGeometry, memory_mib: number, load: GuestLoadSetting | undefined): Promise<void> {
    const name = geometry.vm
    if (this.vms.has(name) || this.opening.has(name) || this.runner.running(name) || this.runner.running(testVmName(name)))
      throw new HvlabError('HVLAB_E_STATE', `this host has a vm named ${name} already; name the new one otherwise`)
    const dir = join(this.dir, 'vms', name)
    const o = { dir, geometry, recovery_points: 0, ...this.timing(), memory_mib, from: this.name, state: 'created-here' as const }
    const opened = ReplicaVm.open({ ...o, has_copy: true })
    this.opening.set(name, opened)
    try {
      const vm = await opened
      this.runner.run(name, memory_mib, vm.store, load, 'create')
      this.vms.set(name, vm)
      await vm.ranWith(load)
    } catch (e) {
      await rm(dir, { recursive: true, force: true }) // not started (no memory for it): nothing of it stays
      throw e
    } finally {
      this.opening.delete(name)
    }
  }

  /**
   * An unplanned failover into the cluster holding this replica (reverse-replica-server.ts):
   * the disk, the VM's own, returns to the recovery point of `recovery_cycle` (null: it stays
   * at the latest cycle applied, never half a shipment), then the replica is dropped; the
   * cluster starts the VM from that disk.
   */
  async handOver(name: string, recovery_cycle: number | null): Promise<void> {
    await this.replica(name).failover(recovery_cycle)
    await this.drop(name)
  }

  /** Drops the replica of `name` and its folder (a reverse replica after the fail-back: its disk was the VM's own, which stays). */
  async drop(name: string): Promise<void> {
    this.vms.delete(name)
    await rm(join(this.dir, 'vms', name), { recursive: true, force: true })
  }

  /**
   * Initial replication by media: the replica of `name` takes its initial copy from the
   * export file at `path` (checked whole before anything is written). The VM's primary must
   * have begun replicating it here first (`replica enable … --initial export|seed`), so the
   * replica exists with its settings; the export must be of that VM and its disk's geometry.
   */
  async importCopy(name: string, path: string): Promise<{ blocks_imported: number; exported_at_ms: number }> {
    const vm = this.vms.get(name)
    if (vm === undefined || vm.broken)
      throw new HvlabError(
        'HVLAB_E_STATE',
        `no replication of vm ${name} has begun on ${this.name}; \`hvlab replica enable ${name} --to ${this.name} --initial export\` first`,
      )
    let exported_at_ms = 0
    const blocks_imported = await vm.importCopy(async (apply) => {
      let blocks = 0
      const header = await readExport(
        path,
        (h) => checkExportFits(h, vm.geometry),
        async (part) => {
          blocks += part.length
          await apply(part)
        },
      )
      exported_at_ms = header.exported_at_ms
      return blocks
    })
    return { blocks_imported, exported_at_ms }
  }

  /** Extended replication: forward the replica of `name` to a third server (or no longer). */
  async extend(name: string, extension: Extension | null): Promise<void> {
    const extended = this.options.extended
    if (extended === undefined) throw new HvlabError('HVLAB_E_STATE', `${this.name} cannot forward replicas`)
    if (extension?.to === this.name) throw new HvlabError('HVLAB_E_USAGE', `${this.name} cannot forward vm ${name}'s replica to itself`)
    const vm = this.replica(name)
    await vm.extend(extension)
    if (extension === null) extended.stop(vm)
    else extended.start(vm, extension)
  }

  /** A test failover: `VM-test` runs here on a copy of the replica, isolated, while replication goes on. */
  async testFailover(name: string, load: GuestLoadSetting | undefined): Promise<void> {
    const vm = this.replica(name)
    const test_vm = testVmName(name)
    if (this.runner.running(test_vm))
      throw new HvlabError('HVLAB_E_STATE', `a test failover of vm ${name} runs already (${test_vm}); \`--stop\` ends it`)
    this.runner.runIsolated(test_vm, vm.memory_mib, await vm.testCopy(), vm.store.disks, load)
  }

  stopTestFailover(name: string): void {
    this.replica(name)
    const test_vm = testVmName(name)
    if (!this.runner.running(test_vm)) throw new HvlabError('HVLAB_E_STATE', `no test failover of vm ${name} runs on ${this.name}`)
    this.runner.stop(test_vm, 'test failover ended')
  }

  private replica(name: string): ReplicaVm {
    const vm = this.vms.get(name)
    if (vm === undefined || vm.broken)
      throw new HvlabError(
        'HVLAB_E_NOT_FOUND',
        `${this.name} holds no replica of vm ${name}; \`hvlab replica status\` lists what replicates where`,
      )
    return vm
  }

  get vmCount(): number {
    return this.vms.size
  }

  /** Answers a primary's replication requests on connection `c` (each checked against the allow list). */
  servePrimary(c: PeerConnection, clock: { now(): number }): void {
    const from = c.remoteName
    c.onRequest('replica-begin-request', async ({ message: m }) => {
      this.auth.check(this.name, from, m.vm)
      const { vm, handover, previous } = await this.begin(m, from)
      const { applied_cycle } = vm.status()
      return { message: { t: 'replica-begin-reply', vm: m.vm, applied_cycle, has_copy: vm.hasCopy, handover, previous } }
    })
    c.onRequest('replica-primary-end', async ({ message: m }) => {
      this.auth.check(this.name, from, m.vm)
      await this.begun(m.vm, from).primaryEnded({ from, cycle: m.cycle, moves: m.moves })
      return { message: { t: 'ok' } }
    })
    c.onRequest('replica-log-part', async ({ message: m, attachment }) => {
      this.auth.check(this.name, from, m.vm)
      const vm = this.vms.get(m.vm)
      if (vm === undefined || vm.broken || vm.from !== from) return { message: notBegun(m) }
      return { message: await vm.onPart(m, attachment, clock.now()) }
    })
    c.onRequest('replica-hashes-request', ({ message: m }) => {
      this.auth.check(this.name, from, m.vm)
      const hashes = this.begun(m.vm, from).hashes(m.first_block, m.blocks)
      return { message: { t: 'replica-hashes-reply', vm: m.vm, first_block: m.first_block, blocks: m.blocks }, attachment: hashes }
    })
    c.onRequest('replica-resync-blocks', async ({ message: m, attachment }) => {
      this.auth.check(this.name, from, m.vm)
      await this.begun(m.vm, from).resyncBlocks(m, attachment)
      return { message: { t: 'ok' } }
    })
    c.onRequest('replica-resync-done', async ({ message: m }) => {
      this.auth.check(this.name, from, m.vm)
      await this.begun(m.vm, from).resyncDone(m.next_cycle)
      return { message: { t: 'ok' } }
    })
  }

  /** The replica side of each replica here (or of `vm`'s only). */
  replicaStatus(vm: string | null): ReplicaSideStatus[] {
    return [...this.vms.values()]
      .filter((r) => vm === null || r.vm === vm)
      .map((r) => ({ ...r.status(), vm_running: this.runner.running(r.vm), test_vm_running: this.runner.running(testVmName(r.vm)) }))
  }

  status(vm: string | null): MessageOf<'replica-status-reply'> {
    const replicas = this.replicaStatus(vm)
    if (vm !== null && replicas.length === 0)
      throw new HvlabError(
        'HVLAB_E_NOT_FOUND',
        `${this.name} holds no replica of vm ${vm}; \`hvlab replica status\` lists what replicates where`,
      )
    const primaries = this.options.extended?.status(vm) ?? [] // the replicas this server forwards
    return { t: 'replica-status-reply', server: this.name, replica_server: this.auth.settings, replicas, primaries }
  }

  /**
   * Opens the VM's replica (or hands the open one over to `from`: primary-handover.ts); its
   * geometry must not change. `previous`: the primary before (null: a replica opened now).
   */
  private async begin(m: MessageOf<'replica-begin-request'>, from: string): Promise<BeginOutcome> {
    if (m.disk_blocks * m.block_size_bytes > REPLICA_DISK_BYTES_MAX)
      throw new HvlabError(
        'HVLAB_E_USAGE',
        `vm ${m.vm}'s disk of ${m.disk_blocks} × ${m.block_size_bytes} bytes is over the ${REPLICA_DISK_BYTES_MAX} bytes a replica may hold`,
      )
    const beyond = m.included_disks?.find((k) => k >= (m.disks ?? 1))
    if (beyond !== undefined)
      throw new HvlabError(
        'HVLAB_E_USAGE',
        `vm ${m.vm} has ${m.disks ?? 1} disk(s), 0–${(m.disks ?? 1) - 1}; its primary named disk ${beyond} among those it replicates`,
      )
    const open = this.vms.get(m.vm)
    if (open !== undefined && !open.broken) {
      const g = open.geometry
      if (g.block_size_bytes !== m.block_size_bytes || g.disk_blocks !== m.disk_blocks || (g.disks ?? 1) !== (m.disks ?? 1))
        throw new HvlabError(
          'HVLAB_E_STATE',
          `vm ${m.vm}'s replica on ${this.name} is ${g.disks ?? 1} disk(s), ${g.disk_blocks} blocks of ${g.block_size_bytes} bytes, not ${m.disks ?? 1}, ${m.disk_blocks} of ${m.block_size_bytes}; remove the replica first`,
        )
      const ask = { from, ...(m.arrived === undefined ? {} : { arrived: m.arrived }) }
      return { vm: open, ...(await open.begin(ask, m.memory_mib, m.recovery_points, m.included_disks ?? null)) }
    }
    const pending = this.opening.get(m.vm)
    if (pending !== undefined) return { vm: await pending, handover: 'take-over', previous: null }
    const disks = m.disks ?? 1
    if (m.disk_blocks % disks !== 0)
      throw new HvlabError('HVLAB_E_USAGE', `vm ${m.vm}'s ${m.disk_blocks} blocks are not ${disks} disks of one size`)
    const geometry = { vm: m.vm, block_size_bytes: m.block_size_bytes, disk_blocks: m.disk_blocks, ...(disks > 1 ? { disks } : {}) }
    const opened = this.openImage(geometry).then((image) =>
      ReplicaVm.open({
        dir: join(this.dir, 'vms', m.vm),
        geometry,
        recovery_points: m.recovery_points,
        ...(m.included_disks === undefined ? {} : { included_disks: m.included_disks }),
        ...this.timing(),
        memory_mib: m.memory_mib,
        from,
        ...(image === undefined ? {} : { image, has_copy: true }),
      }),
    )
    this.opening.set(m.vm, opened)
    try {
      const vm = await opened
      this.vms.set(m.vm, vm)
      return { vm, handover: 'take-over', previous: null }
    } finally {
      this.opening.delete(m.vm)
    }
  }

  private async openImage(g: ReplicaGeometry): Promise<DiskImage | undefined> {
    return this.options.image === undefined ? undefined : this.options.image(g)
  }

  private timing(): Pick<ReplicaVmOptions, 'time_scale' | 'recovery_point_every_ms'> {
    const every = this.options.recovery_point_every_ms
    return { time_scale: this.time_scale, ...(every === undefined ? {} : { recovery_point_every_ms: every }) }
  }

  private begun(vm: string, from: string): ReplicaVm {
    const r = this.vms.get(vm)
    if (r === undefined || r.broken || r.from !== from)
      throw new HvlabError(
        'HVLAB_E_STATE',
        `${this.name} has no replication of vm ${vm} from ${from} under way; it begins again with replica-begin`,
      )
    return r
  }
}

function checkExportFits(h: ExportHeader, g: ReplicaGeometry): void {
  if (h.vm !== g.vm) throw new HvlabError('HVLAB_E_USAGE', `the export is of vm ${h.vm}, not ${g.vm}; import ${g.vm}'s own export`)
  if (h.block_size_bytes !== g.block_size_bytes || h.disk_blocks !== g.disk_blocks)
    throw new HvlabError(
      'HVLAB_E_USAGE',
      `the export of vm ${h.vm} is ${h.disk_blocks} blocks of ${h.block_size_bytes} bytes; its replica is ${g.disk_blocks} of ${g.block_size_bytes}: export it again`,
    )
}

interface BeginOutcome {
  readonly vm: ReplicaVm
  readonly handover: PrimaryHandover
  readonly previous: string | null
}

/** The test failover's VM (Hyper-V names it "VM - Test"). */
export const testVmName = (vm: string): string => `${vm.slice(0, 58)}-test`

function notBegun(m: MessageOf<'replica-log-part'>): MessageOf<'replica-log-answer'> {
  return { t: 'replica-log-answer', vm: m.vm, cycle: m.cycle, part: m.part, outcome: 'refused', refusal: 'not-begun', resync: true }
}
