/**
 * The listening side: a WebSocket server that authenticates every connection by
 * challenge–response before it hands it over as a PeerConnection. A peer with a wrong
 * secret, another protocol version, or a bad first frame is told why and closed; the
 * server keeps serving everyone else.
 */
import type { AddressInfo } from 'node:net'
import { WebSocketServer, type WebSocket } from 'ws'
import { HvlabError, describeError } from '../errors.js'
import { newNonce } from '../ids.js'
import type { Logger } from '../log.js'
import type { Metrics } from '../metrics.js'
import { FRAME_BYTES_MAX } from '../protocol/codec.js'
import { PROTOCOL_VERSION } from '../protocol/messages.js'
import type { PartyRole } from '../protocol/runtime-messages.js'
import { computeProof, verifyProof } from './handshake.js'
import { HANDSHAKE_TIMEOUT_MS, expectMessage, goodbye, sendRaw } from './handshake-frames.js'
import { PeerConnection, type TransportLimits } from './peer-connection.js'

export interface PeerServerOptions {
  name: string
  role: PartyRole
  secret: string
  host?: string
  /** 0 (the default) picks a free port. */
  port?: number
  log: Logger
  metrics?: Metrics
  limits?: Partial<TransportLimits>
  handshakeTimeout_ms?: number
  /** Open connections at most; more are refused. */
  connections_max?: number
  /** Returns a reason to refuse an authenticated peer (e.g. a partition), or undefined. */
  admit?: (remote: { name: string; role: string }) => string | undefined
  onPeer: (connection: PeerConnection) => void
}

export class PeerServer {
  private constructor(
    private readonly wss: WebSocketServer,
    readonly port: number,
    private readonly open: Set<PeerConnection>,
  ) {}

  static async listen(options: PeerServerOptions): Promise<PeerServer> {
    const wss = new WebSocketServer({
      host: options.host ?? '127.0.0.1',
      port: options.port ?? 0,
      maxPayload: FRAME_BYTES_MAX,
      perMessageDeflate: false,
    })
    await new Promise<void>((resolve, reject) => {
      wss.once('listening', resolve)
      wss.once('error', reject)
    })
    wss.on('error', (err) => options.log.error({ err: describeError(err) }, 'peer server error'))
    const open = new Set<PeerConnection>()
    const server = new PeerServer(wss, (wss.address() as AddressInfo).port, open)
    wss.on('connection', (ws) => server.authenticate(ws, options))
    return server
  }

  get connections(): PeerConnection[] {
    return [...this.open]
  }

  async close(): Promise<void> {
    for (const c of this.open) c.terminate()
    for (const ws of this.wss.clients) ws.terminate()
    await new Promise<void>((resolve) => this.wss.close(() => resolve()))
  }

  private authenticate(ws: WebSocket, options: PeerServerOptions): void {
    const log = options.log.child({ component: 'peer-server' })
    ws.on('error', (err) => log.debug({ err: describeError(err) }, 'socket error during handshake'))
    const refuse = (code: string, reason: string): void => {
      log.warn({ code, reason }, 'refusing connection')
      options.metrics?.connectionsRefused.inc({ reason: code })
      try {
        sendRaw(ws, goodbye(code, reason))
      } catch {
        // nothing more to tell a socket that is gone
      }
      ws.close(1008, code)
      setTimeout(() => ws.terminate(), 1000).unref()
    }
    if (options.connections_max !== undefined && this.open.size >= options.connections_max) {
      refuse('HVLAB_E_BACKPRESSURE', `this process already serves ${this.open.size} connections`)
      return
    }
    const nonce = newNonce()
    const timer = setTimeout(() => refuse('HVLAB_E_AUTH', 'no hello within the handshake timeout'), options.handshakeTimeout_ms ?? HANDSHAKE_TIMEOUT_MS)
    timer.unref()
    ws.once('message', (data, isBinary) => {
      clearTimeout(timer)
      try {
        const hello = expectMessage(data, isBinary, 'hello')
        if (hello.protocolVersion !== PROTOCOL_VERSION) {
          throw new HvlabError('HVLAB_E_AUTH', `peer ${hello.name} speaks protocol version ${hello.protocolVersion}, this process speaks ${PROTOCOL_VERSION}; run the same hvlab version everywhere`)
        }
        const proofInput = { side: 'client' as const, protocolVersion: PROTOCOL_VERSION, theirNonce: nonce, ourNonce: hello.nonce, ourName: hello.name, theirName: options.name }
        if (!verifyProof(options.secret, proofInput, hello.proof)) {
          throw new HvlabError('HVLAB_E_AUTH', `peer ${hello.name} did not prove it holds the lab's secret; it belongs to another lab or its secret file is wrong`)
        }
        const refusal = options.admit?.({ name: hello.name, role: hello.role })
        if (refusal) throw new HvlabError('HVLAB_E_REFUSED', refusal)
        const proof = computeProof(options.secret, { side: 'server', protocolVersion: PROTOCOL_VERSION, theirNonce: hello.nonce, ourNonce: nonce, ourName: options.name, theirName: hello.name })
        sendRaw(ws, { t: 'welcome', name: options.name, proof })
        const connection = new PeerConnection(ws, { name: hello.name, role: hello.role }, { log: options.log, limits: options.limits, metrics: options.metrics })
        this.open.add(connection)
        options.metrics?.peersConnected.inc()
        connection.once('close', () => {
          this.open.delete(connection)
          options.metrics?.peersConnected.dec()
        })
        options.onPeer(connection)
      } catch (e) {
        refuse(e instanceof HvlabError ? e.code : 'HVLAB_E_PROTOCOL', describeError(e))
      }
    })
    sendRaw(ws, { t: 'challenge', protocolVersion: PROTOCOL_VERSION, name: options.name, role: options.role, nonce })
  }
}
