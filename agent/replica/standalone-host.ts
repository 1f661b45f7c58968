/**
 * A standalone Hyper-V host's process wiring (agent/standalone-main.ts): its replica server
 * (replica-server.ts) with the allow list kept on its storage, the runner of the VMs that run
 * here from their disks (failed over here, or the host's own), the sending side of those
 * that replicate (to the cluster, or to another standalone host: reverse-replication.ts),
 * extended replication, and the operator requests that reach them.
 */
import { join } from 'node:path'
import type { LabProcess } from '../../shared/lab-process.js'
import { HvlabError } from '../../shared/errors.js'
import { REPLICA_DISK_BYTES_MAX, STANDALONE_VM_BLOCK_BYTES } from '../../shared/protocol/replica-limits.js'
import { ExtendedReplication } from './extended-replication.js'
import { ReplicaServer } from './replica-server.js'
import { ReplicaServerAuthorization } from './replica-server-settings.js'
import { ReplicaVmRunner } from './replica-vm-runner.js'
import { newReverseReplication } from './reverse-replication.js'

export async function startReplicaServer(p: LabProcess): Promise<void> {
  const dir = join(p.layout.processData(p.name), 'replica')
  const me = p.topology.standalone_hosts.find((h) => h.name === p.name)
  // Reverse replication: the VMs failed over here (planned) replicate their changes back to the cluster.
  const { host: reverse, placements } = newReverseReplication(
    p,
    () => server,
    () => runner,
  )
  const runner = new ReplicaVmRunner(p, me?.memory_mib ?? 8192, reverse, (vm, load): Promise<void> => server.loadChanged(vm, load))
  const extended = new ExtendedReplication({
    host: p.name,
    clock: p.clock,
    time_scale: p.topology.timeScale,
    server: (name) => p.mesh.connection(name),
    // A replica event is a kind with its own details; TypeScript cannot pair them through the union, the timeline's schema checks them.
    emit: (e) => p.emitEvent(e.kind, e.details as never),
  })
  const auth = await ReplicaServerAuthorization.open(dir)
  const every = me?.recovery_point_every_ms
  const server = new ReplicaServer(p.name, dir, p.topology.timeScale, auth, runner, {
    extended,
    ...(every === undefined ? {} : { recovery_point_every_ms: every }),
  })
  await server.openAll()
  p.serveOperator('replica-server-enable-request', async (q) => {
    await auth.enable(q.allow_any, q.allow)
    p.log.info({ allow_any: q.allow_any, allow: q.allow }, 'replica server enabled')
    return { t: 'ok' }
  })
  serveReplicaRequests(p, server)
  serveOwnVmRequests(p, server)
  p.serveOperator('replica-status-request', (q) => {
    const r = server.status(q.vm)
    // The sending side of the VMs running here that replicate (to the cluster, or to a standalone host); a stopped one's last status stays until its fail-back.
    const sending = reverse.status(q.vm).filter((p) => server.sending.some((v) => v.vm === p.vm))
    return { ...r, primaries: [...r.primaries, ...sending] }
  })
  p.onPeer((c) => server.servePrimary(c, p.clock))
  p.addStatus(() => ({ replica_server: { ...server.auth.settings, vms: server.vmCount } }))
  reverse.start()
  placements.start()
}

/** The operator's Replica requests of this server: failovers, reverse replication, fail-backs, extension, test failovers, imports. */
function serveReplicaRequests(p: LabProcess, server: ReplicaServer): void {
  p.serveOperator('replica-failover-request', async (q) => {
    await server.failover(q.vm, q.recovery_cycle, q.load, q.reverse ?? null, q.replication ?? null)
    return { t: 'ok' }
  })
  p.serveOperator('replica-reverse-request', async (q) => {
    await server.replicateBack(q.vm, q.reverse)
    return { t: 'ok' }
  })
  p.serveOperator('replica-failback-request', async (q) => {
    if (q.step === 'stop-vm') await server.stopForFailBack(q.vm)
    else await server.failBack(q.vm)
    return { t: 'ok' }
  })
  p.serveOperator('replica-extend-request', async (q) => {
    await server.extend(q.vm, q.extension)
    return { t: 'ok' }
  })
  p.serveOperator('replica-test-failover-request', async (q) => {
    if (q.stop) server.stopTestFailover(q.vm)
    else await server.testFailover(q.vm, q.load)
    return { t: 'ok' }
  })
  p.serveOperator('replica-import-request', async (q) => {
    const imported = await server.importCopy(q.vm, q.path)
    p.emitEvent('replica.imported', { vm: q.vm, blocks: imported.blocks_imported })
    return { t: 'replica-import-reply', vm: q.vm, ...imported }
  })
}

/** The operator's requests about this host's own VMs (`vm create --on`, start, stop, remove) and their replication to another standalone host. */
function serveOwnVmRequests(p: LabProcess, server: ReplicaServer): void {
  p.serveOperator('standalone-vm-create-request', async (q) => {
    const disks = q.disks ?? 1
    if (disks * q.disk_bytes > REPLICA_DISK_BYTES_MAX)
      throw new HvlabError(
        'HVLAB_E_USAGE',
        `vm ${q.vm}'s ${disks} disks of ${q.disk_bytes} bytes are over the ${REPLICA_DISK_BYTES_MAX} bytes a standalone host's VM may have; ask for fewer or smaller disks`,
      )
    const disk_blocks = (disks * q.disk_bytes) / STANDALONE_VM_BLOCK_BYTES
    const geometry = { vm: q.vm, block_size_bytes: STANDALONE_VM_BLOCK_BYTES, disk_blocks, ...(disks > 1 ? { disks } : {}) }
    await server.createHere(geometry, q.memory_mib, q.load)
    return { t: 'ok' }
  })
  p.serveOperator('standalone-vm-request', async (q) => {
    if (q.op === 'start') await server.startHere(q.vm)
    else if (q.op === 'stop') await server.stopHere(q.vm)
    else await server.removeHere(q.vm)
    return { t: 'ok' }
  })
  p.serveOperator('standalone-replicate-request', async (q) => {
    await server.replicateTo(q.vm, q.replication)
    return { t: 'ok' }
  })
}
