/**
 * Prometheus metrics (prom-client): one registry per process, `hvlab_` prefix, base
 * units, `_total` counters, no ids in labels. The default process metrics come too.
 */
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client'

export interface Metrics {
  registry: Registry
  framesReceived: Counter<'kind'>
  framesSent: Counter<'kind'>
  bytesReceived: Counter
  bytesSent: Counter
  connectionsRefused: Counter<'reason'>
  peersConnected: Gauge
}

export function createMetrics(options: { role: string; site: string; defaults?: boolean }): Metrics {
  const registry = new Registry()
  registry.setDefaultLabels({ role: options.role, site: options.site })
  if (options.defaults !== false) collectDefaultMetrics({ register: registry, prefix: 'hvlab_' })
  return {
    registry,
    framesReceived: new Counter({
      name: 'hvlab_transport_frames_received_total',
      help: 'Frames received from peers, by envelope kind',
      labelNames: ['kind'],
      registers: [registry],
    }),
    framesSent: new Counter({
      name: 'hvlab_transport_frames_sent_total',
      help: 'Frames sent to peers, by envelope kind',
      labelNames: ['kind'],
      registers: [registry],
    }),
    bytesReceived: new Counter({
      name: 'hvlab_transport_received_bytes_total',
      help: 'Bytes of frames received from peers',
      registers: [registry],
    }),
    bytesSent: new Counter({ name: 'hvlab_transport_sent_bytes_total', help: 'Bytes of frames sent to peers', registers: [registry] }),
    connectionsRefused: new Counter({
      name: 'hvlab_transport_connections_refused_total',
      help: 'Connections closed by this process, by reason code',
      labelNames: ['reason'],
      registers: [registry],
    }),
    peersConnected: new Gauge({
      name: 'hvlab_transport_peers_connected',
      help: 'Authenticated peer connections open now',
      registers: [registry],
    }),
  }
}
