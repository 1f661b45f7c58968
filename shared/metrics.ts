/**
 * Prometheus metrics (prom-client): one registry per process, `hvlab_` prefix, base
 * units, `_total` counters, no ids in labels. The default process metrics come too; their
 * event-loop delay figures (`hvlab_nodejs_eventloop_lag_*`: since the previous scrape,
 * the sample period included) are coarse: read this process's own lag window instead
 * (`hvlab_event_loop_lag_*`, event-loop-lag.ts: how late its own timers fired), which the status
 * endpoint shows too.
 */
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client'
import { EventLoopLag, registerEventLoopLag } from './event-loop-lag.js'

/**
 * How often prom-client's event-loop delay histogram samples (its default is 10 ms). Each
 * sample wakes the process: at 10 ms an idle Node process spent 0.5 % of a core on it, at
 * 50 ms it woke every process of the 16-host lab 20 times a second. Once a second is
 * cheap, and its `hvlab_nodejs_eventloop_lag_*` figures are coarse anyway (since the
 * previous scrape, the period included): the lab's own figures are `hvlab_event_loop_lag_*`.
 */
const EVENT_LOOP_SAMPLE_INTERVAL_MS = 1_000

export interface Metrics {
  registry: Registry
  framesReceived: Counter<'kind'>
  framesSent: Counter<'kind'>
  bytesReceived: Counter
  bytesSent: Counter
  connectionsRefused: Counter<'reason'>
  peersConnected: Gauge
  /** This process's event-loop lag over the last 10–20 s; absent with `defaults: false`. */
  eventLoopLag?: EventLoopLag
}

export function createMetrics(options: { role: string; site: string; defaults?: boolean }): Metrics {
  const registry = new Registry()
  registry.setDefaultLabels({ role: options.role, site: options.site })
  let eventLoopLag: EventLoopLag | undefined
  if (options.defaults !== false) {
    collectDefaultMetrics({ register: registry, prefix: 'hvlab_', eventLoopMonitoringPrecision: EVENT_LOOP_SAMPLE_INTERVAL_MS })
    eventLoopLag = new EventLoopLag()
    registerEventLoopLag(registry, eventLoopLag)
  }
  return {
    registry,
    eventLoopLag,
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
