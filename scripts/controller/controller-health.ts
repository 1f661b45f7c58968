/**
 * The controller process's own health endpoint, like every lab process's: `GET /status`
 * (its pid, uptime and event-loop lag; the lab's status stays behind the control API's
 * token) and Prometheus `GET /metrics` (`role="controller"`), on 127.0.0.1, port 0.
 * `hvlab status` shows its lag and port on the lab's line.
 */
import type { Logger } from '../../shared/log.js'
import { createMetrics } from '../../shared/metrics.js'
import { startStatusServer } from '../../shared/status-server.js'
import type { Topology } from '../../shared/topology.js'
import type { ControllerHealth } from './lab-controller.js'

export async function startControllerHealth(options: {
  topology: Topology
  log: Logger
}): Promise<ControllerHealth & { close(): Promise<void> }> {
  const metrics = createMetrics({ role: 'controller', site: 'lab' })
  const lag = metrics.eventLoopLag!
  const started_ms = Date.now()
  const server = await startStatusServer({
    registry: metrics.registry,
    status: () => ({ name: 'controller', role: 'controller', pid: process.pid, uptime_ms: Date.now() - started_ms }),
    log: options.log,
    limits: options.topology.limits,
    eventLoopLag: lag,
  })
  return {
    port: server.port,
    eventLoopLag: lag,
    close: async () => {
      lag.stop()
      await server.close()
    },
  }
}
