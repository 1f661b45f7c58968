/**
 * The operator's migration requests a host answers: cancel a migration, its progress and
 * result (`vm migrate`), the guest's load (`hvlab vm load`) and an inspection of a VM here
 * (memory hash, heartbeats, resumes, disk counters).
 */
import { HvlabError } from '../../shared/errors.js'
import type { LabProcess } from '../../shared/lab-process.js'
import type { Message, MessageOf } from '../../shared/protocol/messages.js'
import type { VmAgent } from '../cluster/vm-agent.js'
import type { VmHost } from '../vm/vm-instance.js'
import type { MigrationService } from './migration-service.js'
import type { MigrationStatusBook } from './migration-status.js'

export function serveMigrationOperator(p: LabProcess, agent: VmAgent, service: MigrationService, book: MigrationStatusBook): void {
  p.serveOperator('vm-migrate-cancel-request', (q): Message => {
    if (!service.cancel(q.vm))
      // The relay names this host as the origin ("host-a2: …"): the message does not name it again.
      throw new HvlabError('HVLAB_E_NOT_FOUND', `no migration of vm ${q.vm} runs here; \`hvlab vm list\` shows where it runs`)
    return { t: 'ok' }
  })
  p.serveOperator('vm-migration-status-request', (q): Message => book.reply(q.vm, p.name))
  p.serveOperator('vm-load-request', (q) => setVmLoad(p, agent.vms, q))
  p.serveOperator('vm-inspect-request', (q) => inspectVm(p, agent.vms, q.vm))
}

/** `hvlab vm load`: the guest load of a VM this host runs, changed live. */
export function setVmLoad(p: LabProcess, vms: VmHost, q: MessageOf<'vm-load-request'>): Message {
  const vm = vms.instance(q.vm)
  if (vm === undefined) throw new HvlabError('HVLAB_E_NOT_FOUND', `vm ${q.vm} does not run here; \`hvlab vm list\` shows where it runs`)
  const load = vm.setLoad({
    ...(q.dirty_mib_per_s !== undefined ? { dirty_mib_per_s: q.dirty_mib_per_s } : {}),
    ...(q.hot_fraction !== null ? { hot_fraction: q.hot_fraction } : {}),
    ...(q.disk_iops !== undefined ? { disk_iops: q.disk_iops } : {}),
  })
  p.emitEvent('vm.load', { vm: q.vm, dirty_mib_per_s: load.dirty_mib_per_s, hot_fraction: load.hot_fraction, disk_iops: load.disk_iops })
  return { t: 'ok' }
}

/** `hvlab vm inspect`: one VM as this host runs it (a cluster host, or a replica server after a failover). */
export async function inspectVm(p: LabProcess, vms: VmHost, name: string): Promise<Message> {
  const vm = vms.instance(name)
  if (vm === undefined) throw new HvlabError('HVLAB_E_NOT_FOUND', `vm ${name} does not run here; \`hvlab vm list\` shows where it runs`)
  const memory_sha256 = await vm.memory.sha256Async()
  return {
    t: 'vm-inspect-reply',
    vm: name,
    host: p.name,
    running: vm.state === 'running',
    paused: vm.paused,
    memory_mib: vm.memory_mib,
    memory_sha256,
    guest_heartbeats: vm.guestHeartbeats,
    dirty_mib_per_s: vm.load.dirty_mib_per_s,
    hot_fraction: vm.load.hot_fraction,
    resumes: vm.resumeCount,
    disk_iops: vm.load.disk_iops,
    disk: vm.diskCounters(),
    ...(vm.disks.length > 1 ? { data_disks: vm.disks.slice(1).map((d) => d.counters()) } : {}),
  }
}
