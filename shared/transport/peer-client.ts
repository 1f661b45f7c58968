/**
 * The dialling side: connect to a peer's endpoint, prove the lab's secret, check the
 * peer's proof (and, when asked, its name and role) in return, and hand back a
 * PeerConnection whose frames are authenticated with keys derived from this handshake. It
 * is held: the caller attaches its handlers, then calls `start()` to have frames delivered.
 * Until the server's proof is verified, what it may send is bounded (`preauth_bytes_max`).
 * A peer of another organisation is dialled over mutual TLS (tls-link.ts): the proofs are
 * then made with the TLS session's secret, not the lab's.
 */
import type { Socket } from 'node:net'
import type { TLSSocket } from 'node:tls'
import WebSocket from 'ws'
import type { Clock } from '../clock.js'
import { HvlabError, describeError } from '../errors.js'
import { newNonce } from '../ids.js'
import type { Logger } from '../log.js'
import type { Metrics } from '../metrics.js'
import { FRAME_BYTES_MAX } from '../protocol/codec.js'
import { PROTOCOL_VERSION, type MessageOf } from '../protocol/messages.js'
import type { PartyRole } from '../protocol/runtime-messages.js'
import { FrameAuth } from './frame-auth.js'
import { computeProof, verifyProof } from './handshake.js'
import { HANDSHAKE_TIMEOUT_MS, expectMessage, sendRaw } from './handshake-frames.js'
import { DEFAULT_LIMITS, PeerConnection, type TransportLimits } from './peer-connection.js'
import { watchPreauthBytes } from './preauth-gate.js'
import type { TlsIdentity } from '../pki/lab-pki.js'
import { CERT_ADVICE, clientTlsOptions, sessionSecret, verifyErrorText, type ExpectedPeer } from './tls-link.js'

export interface Endpoint {
  host: string
  port: number
}

export interface ConnectOptions {
  endpoint: Endpoint
  /** Who we are, as the peer will see us. */
  name: string
  role: PartyRole
  /** What we prove on a plain link: our organisation's secret (not used over TLS). */
  secret: string
  /** Dial over mutual TLS with `identity`, and accept only a server whose certificate is `peer`'s (who must be `expectName` too). */
  tls?: { identity: TlsIdentity; peer: ExpectedPeer }
  /** Refuse the connection unless the server says it is this process. */
  expectName?: string
  /** Refuse the connection unless the server's (proved) role is this one. */
  expectRole?: PartyRole
  log: Logger
  metrics?: Metrics
  limits?: Partial<TransportLimits>
  handshake_timeout_ms?: number
  /** The connection's clock (liveness probe, request timeouts); a RealClock when not given. */
  clock?: Clock
}

const zeroMask = (mask: Buffer): void => void mask.fill(0)

export function connectPeer(options: ConnectOptions): Promise<PeerConnection> {
  const ws = openSocket(options)
  return new Promise<PeerConnection>((resolve, reject) => new ClientHandshake(ws, options, resolve, reject).begin())
}

function openSocket(options: ConnectOptions): WebSocket {
  const { host, port } = options.endpoint
  const tls = options.tls && clientTlsOptions(options.tls.identity, options.tls.peer)
  return new WebSocket(`${tls ? 'wss' : 'ws'}://${host}:${port}/`, {
    ...tls,
    maxPayload: FRAME_BYTES_MAX,
    perMessageDeflate: false,
    handshakeTimeout: options.handshake_timeout_ms ?? HANDSHAKE_TIMEOUT_MS,
    // A zero masking key: ws then sends client frames without masking and copying them.
    // Masking protects browsers' intermediaries from cache poisoning; these links are
    // process-to-process on the lab's own network and every frame carries its own tag.
    generateMask: zeroMask,
  })
}

/** One dial's handshake: the server's challenge, our hello, its welcome; it settles once, either way. */
class ClientHandshake {
  private settled = false
  private readonly nonce = newNonce()
  private step: 'challenge' | 'welcome' = 'challenge'
  /** The server as its challenge names it (its proof is checked on its welcome). */
  private server = { name: '', role: '', nonce: '' }
  private stopCounting = (): void => undefined
  private timer: NodeJS.Timeout | undefined
  private readonly where: string
  /** What the proofs and frame keys are made with: our secret, or over TLS the session's. */
  private secret: string

  constructor(
    private readonly ws: WebSocket,
    private readonly options: ConnectOptions,
    private readonly resolve: (connection: PeerConnection) => void,
    private readonly reject: (e: unknown) => void,
  ) {
    this.where = `${options.endpoint.host}:${options.endpoint.port}`
    this.secret = options.secret
  }

  begin(): void {
    const ws = this.ws
    // A real timer, not the lab's Clock: it bounds a socket that has proved nothing yet,
    // alongside ws's own handshakeTimeout, and is no part of the protocol's timing.
    this.timer = setTimeout(
      () => this.fail(new HvlabError('HVLAB_E_TIMEOUT', `handshake with ${this.where} did not finish in time`)),
      this.options.handshake_timeout_ms ?? HANDSHAKE_TIMEOUT_MS,
    )
    this.timer.unref()
    ws.on('error', (e) => this.fail(e))
    ws.on('close', (code, reason) =>
      this.fail(
        new HvlabError('HVLAB_E_CLOSED', `${this.where} closed the connection during the handshake (${code} ${reason.toString()})`),
      ),
    )
    // ws takes the socket over right after 'upgrade' (its reader, then the bytes read with
    // the response): watching starts after that, on the next tick, so ws misses no byte.
    ws.once('upgrade', (res) => {
      if (this.options.tls) this.secret = sessionSecret(res.socket as TLSSocket)
      process.nextTick(() => this.watchBytes(res.socket))
    })
    ws.on('message', (data, isBinary) => this.onMessage(data, isBinary))
  }

  /** Until the server's proof is verified, it may send at most `preauth_bytes_max`. */
  private watchBytes(socket: Socket): void {
    if (this.settled) return
    const preauth_bytes_max = this.options.limits?.preauth_bytes_max ?? DEFAULT_LIMITS.preauth_bytes_max
    this.stopCounting = watchPreauthBytes(socket, preauth_bytes_max, (bytes) =>
      this.fail(
        new HvlabError(
          'HVLAB_E_PROTOCOL',
          `${this.where} sent ${bytes} bytes before proving the lab's secret; at most ${preauth_bytes_max} are allowed`,
        ),
      ),
    )
  }

  private onMessage(data: WebSocket.RawData, isBinary: boolean): void {
    try {
      if (this.step === 'challenge') this.answerChallenge(expectMessage(data, isBinary, 'challenge'))
      else this.checkWelcome(expectMessage(data, isBinary, 'welcome'))
    } catch (e) {
      this.fail(e)
    }
  }

  /** Checks who the server says it is, then proves the secret to it. */
  private answerChallenge(challenge: MessageOf<'challenge'>): void {
    const o = this.options
    checkChallenge(challenge, o)
    this.server = { name: challenge.name, role: challenge.role, nonce: challenge.nonce }
    const proof = computeProof(this.secret, {
      side: 'client',
      protocolVersion: PROTOCOL_VERSION,
      theirNonce: challenge.nonce,
      ourNonce: this.nonce,
      ourName: o.name,
      theirName: this.server.name,
      ourRole: o.role,
      theirRole: this.server.role,
    })
    this.step = 'welcome'
    sendRaw(this.ws, { t: 'hello', protocolVersion: PROTOCOL_VERSION, name: o.name, role: o.role, nonce: this.nonce, proof })
  }

  /** Throws HVLAB_E_AUTH unless the welcome proves the secret; hands the connection over if it does. */
  private checkWelcome(welcome: MessageOf<'welcome'>): void {
    const o = this.options
    const server = this.server
    const ok = verifyProof(
      this.secret,
      {
        side: 'server',
        protocolVersion: PROTOCOL_VERSION,
        theirNonce: this.nonce,
        ourNonce: server.nonce,
        ourName: server.name,
        theirName: o.name,
        ourRole: server.role,
        theirRole: o.role,
      },
      welcome.proof,
    )
    if (!ok || welcome.name !== server.name)
      throw new HvlabError('HVLAB_E_AUTH', `${server.name} at ${this.where} could not prove it holds the lab's secret`)
    this.succeed()
  }

  /** The server proved the secret: the socket becomes a held PeerConnection with this handshake's frame keys. */
  private succeed(): void {
    const o = this.options
    const server = this.server
    this.settled = true
    clearTimeout(this.timer)
    this.stopCounting()
    this.ws.removeAllListeners('message')
    this.ws.removeAllListeners('close')
    this.ws.removeAllListeners('error')
    const transcript = {
      protocolVersion: PROTOCOL_VERSION,
      client: { name: o.name, role: o.role, nonce: this.nonce },
      server: { name: server.name, role: server.role, nonce: server.nonce },
    }
    const frameAuth = FrameAuth.after('client', this.secret, transcript)
    this.resolve(
      new PeerConnection(
        this.ws,
        { name: server.name, role: server.role },
        { log: o.log, frameAuth, limits: o.limits, metrics: o.metrics, held: true, clock: o.clock },
      ),
    )
  }

  private fail(e: unknown): void {
    if (this.settled) return
    this.settled = true
    clearTimeout(this.timer)
    this.stopCounting()
    this.ws.removeAllListeners('message')
    this.ws.terminate()
    this.reject(e instanceof HvlabError ? e : this.connectError(e))
  }

  /** A socket's error as ours: a refused TLS certificate of the server is HVLAB_E_CERT, anything else HVLAB_E_CLOSED. */
  private connectError(e: unknown): HvlabError {
    const refused = this.options.tls && verifyErrorText((e as { code?: unknown }).code)
    if (refused)
      return new HvlabError(
        'HVLAB_E_CERT',
        `the certificate of ${this.options.tls!.peer.name} at ${this.where} ${refused}; ${CERT_ADVICE}`,
        {
          cause: e,
        },
      )
    return new HvlabError('HVLAB_E_CLOSED', `cannot connect to ${this.where}: ${describeError(e)}`, { cause: e })
  }
}

/** Throws HVLAB_E_AUTH when the server speaks another version or is not who the caller expects. */
function checkChallenge(challenge: { protocolVersion: number; name: string; role: string }, options: ConnectOptions): void {
  const where = `${options.endpoint.host}:${options.endpoint.port}`
  if (challenge.protocolVersion !== PROTOCOL_VERSION) {
    throw new HvlabError(
      'HVLAB_E_AUTH',
      `${challenge.name} speaks protocol version ${challenge.protocolVersion}, we speak ${PROTOCOL_VERSION}; run the same hvlab version everywhere`,
    )
  }
  const expectName = options.expectName ?? options.tls?.peer.name
  if (expectName && challenge.name !== expectName) {
    throw new HvlabError('HVLAB_E_AUTH', `expected ${expectName} at ${where}, found ${challenge.name}`)
  }
  if (options.expectRole && challenge.role !== options.expectRole) {
    throw new HvlabError(
      'HVLAB_E_AUTH',
      `expected the role ${options.expectRole} at ${where}, ${challenge.name} says its role is ${challenge.role}`,
    )
  }
}
