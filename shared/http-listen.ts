/**
 * Every HTTP listener of the lab (the control API with its switch port, each process's
 * status and metrics endpoint) is created and listened here, bounded by the topology's
 * limits: headers must arrive within `http_headers_timeout_ms` (408 after), the whole
 * request within `http_request_timeout_ms`, at most `http_header_bytes_max` bytes of
 * headers (431 beyond), at most `http_connections_max` open sockets (more are dropped).
 * It listens on 127.0.0.1 (or `host`) with a free port; closing also cuts open connections.
 */
import { createServer, type RequestListener, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { describeError } from './errors.js'
import type { Logger } from './log.js'
import type { Limits } from './topology.js'

export type HttpLimits = Pick<
  Limits,
  'http_headers_timeout_ms' | 'http_request_timeout_ms' | 'http_header_bytes_max' | 'http_connections_max'
>

/** An idle keep-alive connection is closed after this (or the headers timeout, if shorter). */
const KEEP_ALIVE_TIMEOUT_MS = 5_000
/** How often Node looks for requests past their timeouts: a fraction of the headers timeout, within these bounds. */
const TIMEOUT_CHECK_INTERVAL_MS_MIN = 50
const TIMEOUT_CHECK_INTERVAL_MS_MAX = 1_000

export interface Listening {
  port: number
  close(): Promise<void>
}

export function createHttpServer(limits: HttpLimits, handler: RequestListener): Server {
  // Node refuses a headers timeout longer than the request timeout; the headers are part of the request.
  const headers_timeout_ms = Math.min(limits.http_headers_timeout_ms, limits.http_request_timeout_ms)
  const server = createServer(
    {
      maxHeaderSize: limits.http_header_bytes_max,
      headersTimeout: headers_timeout_ms,
      requestTimeout: limits.http_request_timeout_ms,
      // Node's default checks every 30 s, so a slow-header connection would outlive its timeout by that much.
      connectionsCheckingInterval: timeoutCheckInterval_ms(headers_timeout_ms),
    },
    handler,
  )
  server.keepAliveTimeout = Math.min(KEEP_ALIVE_TIMEOUT_MS, headers_timeout_ms)
  server.maxConnections = limits.http_connections_max
  return server
}

function timeoutCheckInterval_ms(headers_timeout_ms: number): number {
  return Math.max(TIMEOUT_CHECK_INTERVAL_MS_MIN, Math.min(TIMEOUT_CHECK_INTERVAL_MS_MAX, Math.floor(headers_timeout_ms / 4)))
}

export async function listenHttp(server: Server, options: { log: Logger; host?: string }): Promise<Listening> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, options.host ?? '127.0.0.1', () => {
      server.off('error', reject)
      resolve()
    })
  })
  // A listening server's own errors (an accept that failed) are logged; unheard, they would end the process.
  server.on('error', (e) => options.log.error({ err: describeError(e) }, 'HTTP listener error'))
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  }
}
