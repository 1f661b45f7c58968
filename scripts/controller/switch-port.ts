/**
 * Clients' port on the virtual switch: a WebSocket upgrade at `/v1/switch` on the control
 * API, with the same Bearer token, checked first (401); a request target that is not a
 * path gets 400, another path 404; nothing about the request can throw here. Frames are
 * JSON text, at most SWITCH_FRAME_BYTES_MAX bytes, parsed and then validated with zod; a
 * bad frame closes only that client (1008, with the reason). Each client gets an id of
 * its own for the switch's per-client bounds.
 */
import type { IncomingMessage, Server } from 'node:http'
import type { Duplex } from 'node:stream'
import { WebSocketServer, type WebSocket } from 'ws'
import { describeError } from '../../shared/errors.js'
import type { Logger } from '../../shared/log.js'
import { SWITCH_FRAME_BYTES_MAX, switchClientPing, type SwitchReply } from '../../shared/protocol/guest-messages.js'
import { parseRequestTarget } from '../../shared/request-target.js'
import type { VirtualSwitch } from './virtual-switch.js'

export const SWITCH_PATH = '/v1/switch'
/** Clients connected at once. */
export const SWITCH_CLIENTS_MAX = 64
/** A client that does not read its replies is closed beyond this many queued bytes. */
const CLIENT_QUEUE_BYTES_MAX = 1024 * 1024
const CLOSE_POLICY = 1008

export interface SwitchPort {
  close(): void
}

export function attachSwitchPort(
  server: Server,
  vswitch: VirtualSwitch,
  options: { authorized: (req: IncomingMessage) => boolean; log: Logger },
): SwitchPort {
  const log = options.log.child({ component: 'virtual-switch' })
  const wss = new WebSocketServer({ noServer: true, maxPayload: SWITCH_FRAME_BYTES_MAX })
  let next = 1

  // Once the answer is written the socket is gone: a client that keeps its side open holds nothing here.
  const refuse = (socket: Duplex, status: string, message: string): void => {
    socket.end(`HTTP/1.1 ${status}\r\ncontent-type: text/plain\r\nconnection: close\r\n\r\n${message}\n`, () => socket.destroy())
  }

  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    // Node hands an upgrade's socket over with no error listener: a client that resets it would end the controller.
    socket.on('error', (e) => log.debug({ err: describeError(e) }, 'upgrade socket error'))
    if (!options.authorized(req)) return refuse(socket, '401 Unauthorized', 'missing or wrong lab token')
    const target = parseRequestTarget(req.url)
    if (!target.ok) return refuse(socket, '400 Bad Request', target.reason)
    if (target.path !== SWITCH_PATH)
      return refuse(socket, '404 Not Found', `no upgrade route ${target.path.slice(0, 200)}; the switch is at ${SWITCH_PATH}`)
    if (wss.clients.size >= SWITCH_CLIENTS_MAX)
      return refuse(socket, '503 Service Unavailable', `${SWITCH_CLIENTS_MAX} switch clients are connected already`)
    wss.handleUpgrade(req, socket, head, (ws) => serve(ws, `c${next++}`))
  })

  const serve = (ws: WebSocket, client: string): void => {
    const reply = (r: SwitchReply): void => {
      if (ws.readyState !== ws.OPEN) return
      if (ws.bufferedAmount > CLIENT_QUEUE_BYTES_MAX) {
        ws.close(CLOSE_POLICY, 'you do not read your replies')
        return
      }
      ws.send(JSON.stringify(r))
    }
    ws.on('message', (data, isBinary) => {
      let frame
      try {
        if (isBinary) throw new Error('frames are JSON text, not binary')
        frame = switchClientPing.parse(JSON.parse((data as Buffer).toString('utf8')))
      } catch (e) {
        const reason = `bad frame: ${describeError(e)}`.slice(0, 120)
        log.warn({ client, reason }, 'switch client sent a bad frame; closing it')
        ws.close(CLOSE_POLICY, reason)
        return
      }
      vswitch.ping(client, frame, reply)
    })
    ws.on('error', (e) => log.warn({ client, err: describeError(e) }, 'switch client error'))
  }

  return {
    close: () => {
      for (const ws of wss.clients) ws.terminate()
      wss.close()
    },
  }
}
