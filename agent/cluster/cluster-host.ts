/**
 * Puts the failover cluster into a host process: a ClusterService with the topology's
 * settings, cluster messages from every peer connection, the operator requests
 * (`cluster-status-request`, `cluster-force-quorum-request`), the `cluster` part of
 * GET /status, and a few metrics.
 */
import { Counter, Gauge } from 'prom-client'
import { describeError } from '../../shared/errors.js'
import type { LabProcess } from '../../shared/lab-process.js'
import { clusterMessages, type ClusterMessage } from '../../shared/protocol/cluster-messages.js'
import type { PeerConnection } from '../../shared/transport/peer-connection.js'
import { membershipConfig } from './cluster-config.js'
import { ClusterService } from './cluster-service.js'

/** Attaches a handler for every cluster message type to one connection. */
export function attachClusterMessages(conn: PeerConnection, receive: (m: ClusterMessage, from: string) => void, counted?: Counter<'type'>): void {
  for (const def of clusterMessages) {
    conn.onMessage(def.t, ({ message }) => {
      counted?.inc({ type: def.t })
      receive(message as ClusterMessage, conn.remoteName)
    })
  }
}

/** Sends a cluster message if the peer is connected now; otherwise it is lost, as on a real network. */
export function sendIfConnected(p: LabProcess, to: string, message: ClusterMessage): void {
  const c = p.mesh.connection(to)
  if (!c?.isOpen) return
  c.send(message).catch((e: unknown) => p.log.debug({ to, t: message.t, err: describeError(e) }, 'cluster message not sent'))
}

export async function startClusterHost(p: LabProcess): Promise<ClusterService> {
  const log = p.log.child({ component: 'cluster' })
  const received = new Counter({ name: 'hvlab_cluster_messages_received_total', help: 'Cluster protocol messages received from peers, by type', labelNames: ['type'], registers: [p.metrics.registry] })
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
  // Membership is decided among the hosts and the witness; an array has no say (its role is proved in the handshake).
  p.onPeer((conn) => {
    if (conn.remoteRole === 'host' || conn.remoteRole === 'witness') attachClusterMessages(conn, (m, from) => service.receive(m, from), received)
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
