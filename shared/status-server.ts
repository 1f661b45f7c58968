/**
 * Every process's HTTP endpoint: `GET /status` (JSON) and `GET /metrics` (Prometheus
 * text). Anything else gets a clear 404/405; the endpoint never throws at a client.
 */
import { createServer, type Server } from 'node:http'
import type { Registry } from 'prom-client'
import { describeError } from './errors.js'
import type { Logger } from './log.js'
import { listenHttp, type Listening } from './http-listen.js'

export type StatusServer = Listening

export async function startStatusServer(options: { host?: string; registry: Registry; status: () => unknown; log: Logger }): Promise<StatusServer> {
  const server: Server = createServer((req, res) => {
    const reply = (code: number, type: string, body: string): void => {
      res.writeHead(code, { 'content-type': type })
      res.end(body)
    }
    const path = (req.url ?? '/').split('?')[0]
    if (req.method !== 'GET') return reply(405, 'text/plain', `${req.method} is not supported; use GET /status or GET /metrics\n`)
    if (path === '/status') {
      try {
        return reply(200, 'application/json', JSON.stringify(options.status()))
      } catch (e) {
        options.log.error({ err: describeError(e) }, 'status failed')
        return reply(500, 'text/plain', `status failed: ${describeError(e)}\n`)
      }
    }
    if (path === '/metrics') {
      options.registry.metrics().then(
        (text) => reply(200, options.registry.contentType, text),
        (e: unknown) => reply(500, 'text/plain', `metrics failed: ${describeError(e)}\n`),
      )
      return
    }
    reply(404, 'text/plain', `no such endpoint ${path}; try GET /status or GET /metrics\n`)
  })
  return listenHttp(server, options.host ?? '127.0.0.1')
}
