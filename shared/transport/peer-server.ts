/**
 * The listening side: a WebSocket server that authenticates every connection by
 * challenge–response before it hands it over as a PeerConnection. A peer with a wrong
 * secret, another protocol version, a name or role the topology does not give it, or a
 * bad first frame is told why and closed; the server keeps serving everyone else.
 *
 * A process that serves peers of other organisations (tls-link.ts) takes them on the same
 * port over mutual TLS: their certificates prove who they are, the lab's secret is not used.
 *
 * Before a peer has proved the secret it is bounded (preauth-gate.ts): connections still
 * in their handshake at once, bytes each may send, time each may take; the HTTP upgrade
 * by the lab's HTTP limits (headers size and time).
 */
import { logRefusal } from './refusal-log.js'
import type { IncomingMessage, ServerResponse, Server as HttpServer } from 'node:http'
import { createServer as createNetServer, type AddressInfo, type Server as NetServer, type Socket } from 'node:net'
import { TLSSocket } from 'node:tls'
import { WebSocketServer, type WebSocket } from 'ws'
import type { Clock } from '../clock.js'
import { HvlabError, describeError } from '../errors.js'
import { createHttpServer, type HttpLimits } from '../http-listen.js'
import { newNonce } from '../ids.js'
import type { Logger } from '../log.js'
import type { Metrics } from '../metrics.js'
import { FRAME_BYTES_MAX } from '../protocol/codec.js'
import { PROTOCOL_VERSION, type MessageOf } from '../protocol/messages.js'
import type { PartyRole } from '../protocol/runtime-messages.js'
import { LIMITS_DEFAULT } from '../topology.js'
import { FrameAuth } from './frame-auth.js'
import { computeProof, verifyProof } from './handshake.js'
import { HANDSHAKE_TIMEOUT_MS, expectMessage, goodbye, sendRaw } from './handshake-frames.js'
import { DEFAULT_LIMITS, PeerConnection, type TransportLimits } from './peer-connection.js'
import { PreauthGate } from './preauth-gate.js'
import type { TlsIdentity } from '../pki/lab-pki.js'
import { CERT_ADVICE, PeerTlsRouter, certificateName, clientCertificateProblem, identityProblem, sessionSecret } from './tls-link.js'

/** A socket still unauthenticated this long after the hello timeout (which says why) is destroyed. */
const PREAUTH_GRACE_MS = 1_000

/** What a listener needs to serve peers of other organisations over mutual TLS. */
export interface PeerServerTls {
  identity: TlsIdentity
  /** This process's organisation. */
  organisation: string
  /** The organisation the topology gives process `name` (undefined: not a process of this lab). */
  organisationOf: (name: string) => string | undefined
}

export interface PeerServerOptions {
  name: string
  role: PartyRole
  /**
   * What a peer on a plain link proves: the lab's secret, or, for the controller that serves
   * every organisation's processes, the secret of the organisation of the peer named.
   */
  secret: string | ((peerName: string) => string | undefined)
  /** Peers of other organisations, over mutual TLS on the same port; absent: plain links only. */
  tls?: PeerServerTls
  host?: string
  /** 0 (the default) picks a free port. */
  port?: number
  log: Logger
  metrics?: Metrics
  limits?: Partial<TransportLimits>
  handshake_timeout_ms?: number
  /** Authenticated connections at most; more are refused. */
  connections_max?: number
  /** Connections still in their handshake at once (from the TCP connect on); more are refused. */
  unauthenticated_connections_max?: number
  /** Bounds of the HTTP upgrade request. */
  http?: HttpLimits
  /**
   * The role the topology gives the process `name`, or undefined when `name` may not
   * connect here. A peer claiming another role, or an unknown name, is refused HVLAB_E_AUTH.
   */
  roleOf: (name: string) => PartyRole | undefined
  /** Returns a reason to refuse an authenticated peer (e.g. a partition), or undefined. */
  admit?: (remote: { name: string; role: string }) => string | undefined
  onPeer: (connection: PeerConnection) => void
  /** What the accepted connections' liveness probe and request timeouts wait on; a RealClock when not given. */
  clock?: Clock
}

export class PeerServer {
  private readonly open = new Set<PeerConnection>()
  private readonly log: Logger
  private readonly gate: PreauthGate
  /** What listens: the HTTP server itself, or in front of it a TCP server that routes TLS links apart. */
  private readonly front: NetServer
  private readonly tlsRouter: PeerTlsRouter | undefined
  private listeningPort = 0

  private constructor(
    private readonly http: HttpServer,
    private readonly wss: WebSocketServer,
    private readonly options: PeerServerOptions,
  ) {
    this.log = options.log.child({ component: 'peer-server' })
    this.tlsRouter = options.tls
      ? new PeerTlsRouter(options.tls.identity, http, (_socket, reason) =>
          this.logRefusal(
            'HVLAB_E_CERT',
            `TLS handshake failed: ${reason} (when the peer refused this process's certificate, its log says why)`,
          ),
        )
      : undefined
    this.front = this.tlsRouter ? createNetServer() : http
    this.gate = new PreauthGate(
      {
        unauthenticated_connections_max: options.unauthenticated_connections_max ?? LIMITS_DEFAULT.unauthenticated_connections_max,
        preauth_bytes_max: options.limits?.preauth_bytes_max ?? DEFAULT_LIMITS.preauth_bytes_max,
        preauth_ms_max: (options.handshake_timeout_ms ?? HANDSHAKE_TIMEOUT_MS) + PREAUTH_GRACE_MS,
      },
      (_socket, code, reason) => this.logRefusal(code, reason),
    )
  }

  static async listen(options: PeerServerOptions): Promise<PeerServer> {
    const http = createHttpServer(options.http ?? LIMITS_DEFAULT, upgradeRequired)
    const wss = new WebSocketServer({ server: http, maxPayload: FRAME_BYTES_MAX, perMessageDeflate: false })
    const server = new PeerServer(http, wss, options)
    const front = server.front
    // The kernel-level backstop: every authenticated and every handshaking socket, no more.
    front.maxConnections =
      (options.connections_max ?? LIMITS_DEFAULT.peer_connections_max) +
      (options.unauthenticated_connections_max ?? LIMITS_DEFAULT.unauthenticated_connections_max)
    front.on('connection', (socket: Socket) => server.onSocket(socket))
    await new Promise<void>((resolve, reject) => {
      front.once('error', reject)
      front.listen(options.port ?? 0, options.host ?? '127.0.0.1', () => {
        front.off('error', reject)
        resolve()
      })
    })
    server.listeningPort = (front.address() as AddressInfo).port
    wss.on('error', (err) => options.log.error({ err: describeError(err) }, 'peer server error'))
    wss.on('connection', (ws, req: IncomingMessage) => server.authenticate(ws, req.socket))
    return server
  }

  get port(): number {
    return this.listeningPort
  }

  get connections(): PeerConnection[] {
    return [...this.open]
  }

  /** Connections that have not proved the lab's secret yet. */
  get unauthenticatedConnections(): number {
    return this.gate.size
  }

  async close(): Promise<void> {
    // Stops accepting at once; resolves once every socket is gone.
    const closed = new Promise<void>((resolve) => this.front.close(() => resolve()))
    for (const c of this.open) c.terminate()
    for (const ws of this.wss.clients) ws.terminate()
    this.gate.destroyAll()
    this.http.closeAllConnections()
    await new Promise<void>((resolve) => this.wss.close(() => resolve()))
    await closed
  }

  /** A new TCP connection: counted as unauthenticated, or refused at once beyond the cap. */
  private onSocket(socket: Socket): void {
    if (this.gate.admit(socket)) {
      this.tlsRouter?.route(socket)
      return
    }
    const max = this.options.unauthenticated_connections_max ?? LIMITS_DEFAULT.unauthenticated_connections_max
    this.logRefusal('HVLAB_E_BACKPRESSURE', `${max} connections are already in their handshake`)
    socket.write('HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 0\r\n\r\n', () => socket.destroy())
  }

  /** A connection cut before its WebSocket handshake (no goodbye can reach it). */
  private logRefusal(code: string, reason: string): void {
    logRefusal(this.log, { code, reason }, 'refusing connection')
    this.options.metrics?.connectionsRefused.inc({ reason: code })
  }

  private authenticate(ws: WebSocket, socket: Socket): void {
    const options = this.options
    const log = this.log
    ws.on('error', (err) => log.debug({ err: describeError(err) }, 'socket error during handshake'))
    const refuse = (code: string, reason: string): void => {
      this.logRefusal(code, reason)
      try {
        sendRaw(ws, goodbye(code, reason))
      } catch {
        // nothing more to tell a socket that is gone
      }
      ws.close(1008, code)
      // Socket hygiene after the close: a real timer, not the Clock.
      setTimeout(() => ws.terminate(), 1000).unref()
    }
    const connections_max = options.connections_max ?? LIMITS_DEFAULT.peer_connections_max
    if (this.open.size >= connections_max) {
      refuse('HVLAB_E_BACKPRESSURE', `this process already serves ${this.open.size} connections`)
      return
    }
    const tlsSocket = socket instanceof TLSSocket ? socket : undefined
    const certificate = tlsSocket && clientCertificateProblem(tlsSocket)
    if (certificate) {
      refuse('HVLAB_E_CERT', `the certificate of ${certificateName(tlsSocket) ?? 'a peer'} ${certificate}; ${CERT_ADVICE}`)
      return
    }
    const nonce = newNonce()
    // A real timer, not the Clock: it bounds a socket that has proved nothing yet (as the
    // preauth gate's deadline does), no part of the protocol's timing.
    const timer = setTimeout(
      () => refuse('HVLAB_E_AUTH', 'no hello within the handshake timeout'),
      options.handshake_timeout_ms ?? HANDSHAKE_TIMEOUT_MS,
    )
    timer.unref()
    ws.once('message', (data, isBinary) => {
      clearTimeout(timer)
      try {
        const hello = expectMessage(data, isBinary, 'hello')
        const secret = this.secretFor(hello.name, tlsSocket)
        this.checkHello(hello, nonce, secret, tlsSocket)
        this.accept(ws, socket, hello, nonce, secret)
      } catch (e) {
        refuse(e instanceof HvlabError ? e.wireCode : 'HVLAB_E_PROTOCOL', describeError(e))
      }
    })
    sendRaw(ws, { t: 'challenge', protocolVersion: PROTOCOL_VERSION, name: options.name, role: options.role, nonce })
  }

  /** What the peer named must prove: its TLS session's secret on a TLS link, else its organisation's secret. */
  private secretFor(name: string, tlsSocket: TLSSocket | undefined): string {
    if (tlsSocket) return sessionSecret(tlsSocket)
    const secret = typeof this.options.secret === 'string' ? this.options.secret : this.options.secret(name)
    if (secret === undefined) throw new HvlabError('HVLAB_E_AUTH', `${name} is not a process ${this.options.name} serves in this lab`)
    return secret
  }

  /**
   * Throws HVLAB_E_CERT unless a peer of another organisation came over TLS with a
   * certificate for its own name and organisation; a peer of ours may come either way.
   */
  private checkOrganisation(name: string, tlsSocket: TLSSocket | undefined): void {
    const tls = this.options.tls
    const organisation = tls?.organisationOf(name)
    if (!tls || organisation === undefined) return
    if (!tlsSocket) {
      if (organisation === tls.organisation) return
      throw new HvlabError(
        'HVLAB_E_CERT',
        `${name} belongs to the organisation ${organisation}, ${this.options.name} to ${tls.organisation}: a link between organisations runs over mutual TLS with certificates of the lab's CA, not on a secret`,
      )
    }
    const problem = identityProblem(tlsSocket.getPeerX509Certificate()!, { name, organisation })
    if (problem) throw new HvlabError('HVLAB_E_CERT', `the certificate of the peer claiming to be ${name} ${problem}; ${CERT_ADVICE}`)
  }

  /** Throws HVLAB_E_AUTH unless the hello proves `secret` for the name and role the topology gives its sender. */
  private checkHello(hello: MessageOf<'hello'>, nonce: string, secret: string, tlsSocket: TLSSocket | undefined): void {
    const o = this.options
    if (hello.protocolVersion !== PROTOCOL_VERSION) {
      throw new HvlabError(
        'HVLAB_E_AUTH',
        `peer ${hello.name} speaks protocol version ${hello.protocolVersion}, this process speaks ${PROTOCOL_VERSION}; run the same hvlab version everywhere`,
      )
    }
    const proofInput = {
      side: 'client' as const,
      protocolVersion: PROTOCOL_VERSION,
      theirNonce: nonce,
      ourNonce: hello.nonce,
      ourName: hello.name,
      theirName: o.name,
      ourRole: hello.role,
      theirRole: o.role,
    }
    this.checkOrganisation(hello.name, tlsSocket)
    if (!verifyProof(secret, proofInput, hello.proof)) {
      throw new HvlabError(
        'HVLAB_E_AUTH',
        `peer ${hello.name} did not prove it holds the lab's secret; it belongs to another lab or its secret file is wrong`,
      )
    }
    const role = o.roleOf(hello.name)
    if (role === undefined) throw new HvlabError('HVLAB_E_AUTH', `${hello.name} is not a process ${o.name} serves in this lab`)
    if (role !== hello.role)
      throw new HvlabError('HVLAB_E_AUTH', `${hello.name} claims the role ${hello.role}; in this lab its role is ${role}`)
    const refusal = o.admit?.({ name: hello.name, role: hello.role })
    if (refusal) throw new HvlabError('HVLAB_E_REFUSED', refusal)
  }

  /** Sends the server's proof and hands the connection over, its frames authenticated from here on. */
  private accept(ws: WebSocket, socket: Socket, hello: MessageOf<'hello'>, nonce: string, secret: string): void {
    const o = this.options
    const proof = computeProof(secret, {
      side: 'server',
      protocolVersion: PROTOCOL_VERSION,
      theirNonce: hello.nonce,
      ourNonce: nonce,
      ourName: o.name,
      theirName: hello.name,
      ourRole: o.role,
      theirRole: hello.role,
    })
    sendRaw(ws, { t: 'welcome', name: o.name, proof })
    this.gate.authenticated(this.tlsRouter?.rawOf(socket) ?? socket)
    const transcript = {
      protocolVersion: PROTOCOL_VERSION,
      client: { name: hello.name, role: hello.role, nonce: hello.nonce },
      server: { name: o.name, role: o.role, nonce },
    }
    const frameAuth = FrameAuth.after('server', secret, transcript)
    const connection = new PeerConnection(
      ws,
      { name: hello.name, role: hello.role },
      { log: o.log, frameAuth, limits: o.limits, metrics: o.metrics, clock: o.clock },
    )
    this.open.add(connection)
    o.metrics?.peersConnected.inc()
    connection.once('close', () => {
      this.open.delete(connection)
      o.metrics?.peersConnected.dec()
    })
    o.onPeer(connection)
  }
}

/** A plain HTTP request on the peer port: this port speaks WebSocket only. */
function upgradeRequired(_req: IncomingMessage, res: ServerResponse): void {
  res.writeHead(426, { 'Content-Type': 'text/plain', Connection: 'close' }).end('this is an hvlab peer port: WebSocket only\n')
}
