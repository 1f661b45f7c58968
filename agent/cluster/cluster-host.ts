/**
 * Puts the failover cluster into a host process: a ClusterService with the topology's
 * settings, cluster messages from every peer connection, the operator requests
 * (`cluster-status-request`, `cluster-force-quorum-request`), the `cluster` part of
 * GET /status, and a few metrics.
 */
import { Counter, Gauge } from 'prom-client'
import { attachClusterMessages, sendIfConnected } from '../../shared/consensus/cluster-link.js'
import { describeError } from '../../shared/errors.js'
import type { LabProcess } from '../../shared/lab-process.js'
import { membershipConfig } from './cluster-config.js'
import { ClusterService } from './cluster-service.js'

export async function startClusterHost(p: LabProcess): Promise<ClusterService> {
  const log = p.log.child({ component: 'cluster' })
  const received = new Counter({
    name: 'hvlab_cluster_messages_received_total',
    help: 'Cluster protocol messages received from peers, by type',
    labelNames: ['type'],
    registers: [p.metrics.registry],
  })
  const service = await ClusterService.open({
    config: membershipConfig(p.topology, p.name),
    clock: p.clock,
    data_dir: p.layout.processData(p.name),
    send: (to, m) => sendIfConnected(p, to, m),
    isConnected: (peer) => p.mesh.connection(peer)?.isOpen === true,
    emitEvent: (kind, details) => p.emitEvent(kind, details),
    log,
    inputs_queued_max: p.topology.limits.cluster_inputs_queued_max,
    onFatal: (e) => {
      log.fatal({ err: describeError(e) }, 'cannot write the cluster record; stopping this host so it breaks no promise it made')
      process.exit(1)
    },
  })
  new Gauge({
    name: 'hvlab_cluster_quorum',
    help: '1 while this host holds a quorum lease (may run VMs), else 0',
    registers: [p.metrics.registry],
    collect() {
      this.set(service.membership.holdsLease(p.clock.now()) ? 1 : 0)
    },
  })
  new Gauge({
    name: 'hvlab_cluster_epoch',
    help: 'Epoch of the cluster view this host is in',
    registers: [p.metrics.registry],
    collect() {
      this.set(service.membership.view().epoch)
    },
  })
  // Membership is decided among the cluster's hosts and its witness; an array, or another cluster's host, has no say (roles are proved in the handshake).
  p.onPeer((conn) => {
    if (p.isClusterPeer(conn, true)) attachClusterMessages(conn, (m, from) => service.receive(m, from), received)
  })
  p.serveOperator('cluster-status-request', () => ({ t: 'cluster-status-reply', status: service.status() }))
  p.serveOperator('cluster-force-quorum-request', () => {
    service.command({ kind: 'force-quorum' })
    return { t: 'ok' }
  })
  p.addStatus(() => ({ cluster: service.status() }))
  service.start()
  return service
}
