/**
 * Every process's HTTP endpoint: `GET /status` (JSON; with `event_loop_lag`, the process's
 * lag over the last 10–20 s, when given one) and `GET /metrics` (Prometheus text). Anything else gets a clear 400/404/405; the endpoint never throws at a client.
 * Bounded like every HTTP listener (http-listen.ts) by the topology's limits.
 */
import type { Server } from 'node:http'
import type { Registry } from 'prom-client'
import { describeError } from './errors.js'
import type { EventLoopLag } from './event-loop-lag.js'
import type { Logger } from './log.js'
import { createHttpServer, listenHttp, type HttpLimits, type Listening } from './http-listen.js'
import { parseRequestTarget } from './request-target.js'

export type StatusServer = Listening

export async function startStatusServer(options: {
  host?: string
  registry: Registry
  status: () => unknown
  log: Logger
  limits: HttpLimits
  eventLoopLag?: EventLoopLag
}): Promise<StatusServer> {
  const lag = options.eventLoopLag
  const status = (): unknown => {
    const s = options.status()
    if (!lag) return s
    return { ...(s as object), event_loop_lag: { ...lag.read(), window_ms: lag.window_ms } }
  }
  const server: Server = createHttpServer(options.limits, (req, res) => {
    const reply = (code: number, type: string, body: string): void => {
      // A client that sent a malformed request gets no keep-alive connection to send more on.
      res.writeHead(code, { 'content-type': type, ...(code === 400 ? { connection: 'close' } : {}) })
      res.end(body)
    }
    if (req.method !== 'GET') return reply(405, 'text/plain', `${req.method} is not supported; use GET /status or GET /metrics\n`)
    const target = parseRequestTarget(req.url)
    if (!target.ok) return reply(400, 'text/plain', `${target.reason}\n`)
    if (target.path === '/status') {
      try {
        return reply(200, 'application/json', JSON.stringify(status()))
      } catch (e) {
        options.log.error({ err: describeError(e) }, 'status failed')
        return reply(500, 'text/plain', `status failed: ${describeError(e)}\n`)
      }
    }
    if (target.path === '/metrics') {
      options.registry.metrics().then(
        (text) => reply(200, options.registry.contentType, text),
        (e: unknown) => reply(500, 'text/plain', `metrics failed: ${describeError(e)}\n`),
      )
      return
    }
    reply(404, 'text/plain', `no such endpoint ${target.path.slice(0, 200)}; try GET /status or GET /metrics\n`)
  })
  return listenHttp(server, { log: options.log, ...(options.host ? { host: options.host } : {}) })
}
