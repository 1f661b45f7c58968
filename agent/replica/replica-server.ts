/**
 * A standalone Hyper-V host's replica server (seed 002): once enabled (`hvlab replica
 * server enable`), it takes the replication of VMs from the primary servers it allows,
 * one replica VM each (replica-vm.ts) under `data/<server>/replica/vms/<vm>/`. A primary
 * begins (or, after a move or a restart, begins again) with `replica-begin`, resyncs when
 * asked, then ships a log every cycle. Every request from a primary is checked against
 * the allow list first: an unauthorised primary is refused with HVLAB_E_REPLICA_NOT_ALLOWED.
 *
 * Replica VMs open when their primary begins: after a restart of this server they are
 * shown once their primary has been back (a resync, which sends only differing blocks).
 */
import { readdir } from 'node:fs/promises'
import { join } from 'node:path'
import { HvlabError } from '../../shared/errors.js'
import type { LabProcess } from '../../shared/lab-process.js'
import type { Message, MessageOf } from '../../shared/protocol/messages.js'
import type { PeerConnection } from '../../shared/transport/peer-connection.js'
import { ReplicaServerAuthorization } from './replica-server-settings.js'
import type { GuestLoadSetting } from '../../shared/protocol/guest-load.js'
import { REPLICA_DISK_BYTES_MAX } from '../../shared/protocol/replica-limits.js'
import { ReplicaVm, type ReplicaVmOptions } from './replica-vm.js'
import { readReplicaVmRecord } from './replica-vm-record.js'
import { ReplicaVmRunner } from './replica-vm-runner.js'

export async function startReplicaServer(p: LabProcess): Promise<void> {
  const dir = join(p.layout.processData(p.name), 'replica')
  const me = p.topology.standalone_hosts.find((h) => h.name === p.name)
  const runner = new ReplicaVmRunner(p, me?.memory_mib ?? 8192)
  const auth = await ReplicaServerAuthorization.open(dir)
  const server = new ReplicaServer(p.name, dir, p.topology.timeScale, auth, runner, me?.recovery_point_every_ms)
  await server.openAll()
  p.serveOperator('replica-server-enable-request', async (q) => {
    await server.auth.enable(q.allow_any, q.allow)
    p.log.info({ allow_any: q.allow_any, allow: q.allow }, 'replica server enabled')
    return { t: 'ok' }
  })
  p.serveOperator('replica-failover-request', async (q) => {
    await server.failover(q.vm, q.recovery_cycle, q.load)
    return { t: 'ok' }
  })
  p.serveOperator('replica-test-failover-request', async (q) => {
    if (q.stop) server.stopTestFailover(q.vm)
    else await server.testFailover(q.vm, q.load)
    return { t: 'ok' }
  })
  p.serveOperator('replica-status-request', (q) => server.status(q.vm))
  p.onPeer((c) => server.servePrimary(c, p.clock))
  p.addStatus(() => ({ replica_server: { ...server.auth.settings, vms: server.vmCount } }))
}

export class ReplicaServer {
  private readonly vms = new Map<string, ReplicaVm>()
  private readonly opening = new Map<string, Promise<ReplicaVm>>()

  constructor(
    readonly name: string,
    private readonly dir: string,
    private readonly time_scale: number,
    readonly auth: ReplicaServerAuthorization,
    private readonly runner: Pick<ReplicaVmRunner, 'run' | 'runIsolated' | 'stop' | 'running'>,
    /** The topology's lab acceleration of recovery points (replica-vm.ts); undefined: hourly. */
    private readonly recovery_point_every_ms?: number,
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
      const { vm, block_size_bytes, disk_blocks, ...rest } = r
      const opened = await ReplicaVm.open({ dir, geometry: { vm, block_size_bytes, disk_blocks }, ...this.timing(), ...rest })
      this.vms.set(vm, opened)
    }
  }

  /** Starts the replica VM here from its replica (latest, or the recovery point of `recovery_cycle`). */
  async failover(name: string, recovery_cycle: number | null, load: GuestLoadSetting | undefined): Promise<void> {
    const vm = this.replica(name)
    if (this.runner.running(testVmName(name))) this.runner.stop(testVmName(name)) // the test copy gives way to the real one
    await vm.failover(recovery_cycle)
    this.runner.run(name, vm.memory_mib, vm.store, load)
  }

  /** A test failover: `VM-test` runs here on a copy of the replica, isolated, while replication goes on. */
  async testFailover(name: string, load: GuestLoadSetting | undefined): Promise<void> {
    const vm = this.replica(name)
    const test_vm = testVmName(name)
    if (this.runner.running(test_vm))
      throw new HvlabError('HVLAB_E_STATE', `a test failover of vm ${name} runs already (${test_vm}); \`--stop\` ends it`)
    this.runner.runIsolated(test_vm, vm.memory_mib, await vm.testCopy(), load)
  }

  stopTestFailover(name: string): void {
    this.replica(name)
    const test_vm = testVmName(name)
    if (!this.runner.running(test_vm)) throw new HvlabError('HVLAB_E_STATE', `no test failover of vm ${name} runs on ${this.name}`)
    this.runner.stop(test_vm)
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
      this.auth.check(this.name, from)
      const vm = await this.begin(m, from)
      return { message: { t: 'replica-begin-reply', vm: m.vm, applied_cycle: vm.status().applied_cycle } }
    })
    c.onRequest('replica-log-part', async ({ message: m, attachment }) => {
      this.auth.check(this.name, from)
      const vm = this.vms.get(m.vm)
      if (vm === undefined || vm.broken || vm.from !== from) return { message: notBegun(m) }
      return { message: await vm.onPart(m, attachment, clock.now()) }
    })
    c.onRequest('replica-hashes-request', ({ message: m }) => {
      this.auth.check(this.name, from)
      const hashes = this.begun(m.vm, from).hashes(m.first_block, m.blocks)
      return { message: { t: 'replica-hashes-reply', vm: m.vm, first_block: m.first_block, blocks: m.blocks }, attachment: hashes }
    })
    c.onRequest('replica-resync-blocks', async ({ message: m, attachment }) => {
      this.auth.check(this.name, from)
      await this.begun(m.vm, from).resyncBlocks(m, attachment)
      return { message: { t: 'ok' } }
    })
    c.onRequest('replica-resync-done', async ({ message: m }) => {
      this.auth.check(this.name, from)
      await this.begun(m.vm, from).resyncDone(m.next_cycle)
      return { message: { t: 'ok' } }
    })
  }

  status(vm: string | null): Message {
    const replicas = [...this.vms.values()]
      .filter((r) => vm === null || r.vm === vm)
      .map((r) => ({ ...r.status(), vm_running: this.runner.running(r.vm), test_vm_running: this.runner.running(testVmName(r.vm)) }))
    if (vm !== null && replicas.length === 0)
      throw new HvlabError(
        'HVLAB_E_NOT_FOUND',
        `${this.name} holds no replica of vm ${vm}; \`hvlab replica status\` lists what replicates where`,
      )
    return { t: 'replica-status-reply', server: this.name, replica_server: this.auth.settings, replicas, primaries: [] }
  }

  /** Opens the VM's replica (or takes the open one over for `from`); its geometry must not change. */
  private async begin(m: MessageOf<'replica-begin-request'>, from: string): Promise<ReplicaVm> {
    if (m.disk_blocks * m.block_size_bytes > REPLICA_DISK_BYTES_MAX)
      throw new HvlabError(
        'HVLAB_E_USAGE',
        `vm ${m.vm}'s disk of ${m.disk_blocks} × ${m.block_size_bytes} bytes is over the ${REPLICA_DISK_BYTES_MAX} bytes a replica may hold`,
      )
    const open = this.vms.get(m.vm)
    if (open !== undefined && !open.broken) {
      const g = open.geometry
      if (g.block_size_bytes !== m.block_size_bytes || g.disk_blocks !== m.disk_blocks)
        throw new HvlabError(
          'HVLAB_E_STATE',
          `vm ${m.vm}'s replica on ${this.name} is ${g.disk_blocks} blocks of ${g.block_size_bytes} bytes, not ${m.disk_blocks} of ${m.block_size_bytes}; remove the replica first`,
        )
      await open.begun(from, m.memory_mib)
      return open
    }
    const pending = this.opening.get(m.vm)
    if (pending !== undefined) return pending
    const opened = ReplicaVm.open({
      dir: join(this.dir, 'vms', m.vm),
      geometry: { vm: m.vm, block_size_bytes: m.block_size_bytes, disk_blocks: m.disk_blocks },
      recovery_points: m.recovery_points,
      ...this.timing(),
      memory_mib: m.memory_mib,
      from,
    })
    this.opening.set(m.vm, opened)
    try {
      const vm = await opened
      this.vms.set(m.vm, vm)
      return vm
    } finally {
      this.opening.delete(m.vm)
    }
  }

  private timing(): Pick<ReplicaVmOptions, 'time_scale' | 'recovery_point_every_ms'> {
    const every = this.recovery_point_every_ms
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

/** The test failover's VM (Hyper-V names it "VM - Test"). */
export const testVmName = (vm: string): string => `${vm.slice(0, 58)}-test`

function notBegun(m: MessageOf<'replica-log-part'>): MessageOf<'replica-log-answer'> {
  return { t: 'replica-log-answer', vm: m.vm, cycle: m.cycle, part: m.part, outcome: 'refused', refusal: 'not-begun', resync: true }
}
