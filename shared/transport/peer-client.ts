/**
 * The dialling side: connect to a peer's endpoint, prove the lab's secret, check the
 * peer's proof (and, when asked, its name and role) in return, and hand back a
 * PeerConnection whose frames are authenticated with keys derived from this handshake. It
 * is held: the caller attaches its handlers, then calls `start()` to have frames delivered.
 * Until the server's proof is verified, what it may send is bounded (`preauth_bytes_max`).
 */
import WebSocket from 'ws'
import { HvlabError, describeError } from '../errors.js'
import { newNonce } from '../ids.js'
import type { Logger } from '../log.js'
import type { Metrics } from '../metrics.js'
import { FRAME_BYTES_MAX } from '../protocol/codec.js'
import { PROTOCOL_VERSION } from '../protocol/messages.js'
import type { PartyRole } from '../protocol/runtime-messages.js'
import { FrameAuth } from './frame-auth.js'
import { computeProof, verifyProof } from './handshake.js'
import { HANDSHAKE_TIMEOUT_MS, expectMessage, sendRaw } from './handshake-frames.js'
import { DEFAULT_LIMITS, PeerConnection, type TransportLimits } from './peer-connection.js'
import { watchPreauthBytes } from './preauth-gate.js'

export interface Endpoint {
  host: string
  port: number
}

export interface ConnectOptions {
  endpoint: Endpoint
  /** Who we are, as the peer will see us. */
  name: string
  role: PartyRole
  secret: string
  /** Refuse the connection unless the server says it is this process. */
  expectName?: string
  /** Refuse the connection unless the server's (proved) role is this one. */
  expectRole?: PartyRole
  log: Logger
  metrics?: Metrics
  limits?: Partial<TransportLimits>
  handshake_timeout_ms?: number
}

const zeroMask = (mask: Buffer): void => void mask.fill(0)

export function connectPeer(options: ConnectOptions): Promise<PeerConnection> {
  const { host, port } = options.endpoint
  const ws = new WebSocket(`ws://${host}:${port}/`, {
    maxPayload: FRAME_BYTES_MAX,
    perMessageDeflate: false,
    handshakeTimeout: options.handshake_timeout_ms ?? HANDSHAKE_TIMEOUT_MS,
    // A zero masking key: ws then sends client frames without masking and copying them.
    // Masking protects browsers' intermediaries from cache poisoning; these links are
    // process-to-process on the lab's own network and every frame carries its own tag.
    generateMask: zeroMask,
  })
  return new Promise<PeerConnection>((resolve, reject) => {
    let settled = false
    const nonce = newNonce()
    let step: 'challenge' | 'welcome' = 'challenge'
    let serverName = ''
    let serverRole = ''
    let serverNonce = ''
    let stopCounting = (): void => undefined
    const fail = (e: unknown): void => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      stopCounting()
      ws.removeAllListeners('message')
      ws.terminate()
      reject(
        e instanceof HvlabError
          ? e
          : new HvlabError('HVLAB_E_CLOSED', `cannot connect to ${host}:${port}: ${describeError(e)}`, { cause: e }),
      )
    }
    const timer = setTimeout(
      () => fail(new HvlabError('HVLAB_E_TIMEOUT', `handshake with ${host}:${port} did not finish in time`)),
      options.handshake_timeout_ms ?? HANDSHAKE_TIMEOUT_MS,
    )
    timer.unref()
    ws.on('error', fail)
    ws.on('close', (code, reason) =>
      fail(new HvlabError('HVLAB_E_CLOSED', `${host}:${port} closed the connection during the handshake (${code} ${reason.toString()})`)),
    )
    const preauth_bytes_max = options.limits?.preauth_bytes_max ?? DEFAULT_LIMITS.preauth_bytes_max
    // ws takes the socket over right after 'upgrade' (its reader, then the bytes read with
    // the response): watching starts after that, on the next tick, so ws misses no byte.
    ws.once('upgrade', (res) =>
      process.nextTick(() => {
        if (settled) return
        stopCounting = watchPreauthBytes(res.socket, preauth_bytes_max, (bytes) =>
          fail(
            new HvlabError(
              'HVLAB_E_PROTOCOL',
              `${host}:${port} sent ${bytes} bytes before proving the lab's secret; at most ${preauth_bytes_max} are allowed`,
            ),
          ),
        )
      }),
    )
    const onMessage = (data: WebSocket.RawData, isBinary: boolean): void => {
      try {
        if (step === 'challenge') {
          const challenge = expectMessage(data, isBinary, 'challenge')
          checkChallenge(challenge, options)
          serverName = challenge.name
          serverRole = challenge.role
          serverNonce = challenge.nonce
          const proof = computeProof(options.secret, {
            side: 'client',
            protocolVersion: PROTOCOL_VERSION,
            theirNonce: challenge.nonce,
            ourNonce: nonce,
            ourName: options.name,
            theirName: serverName,
            ourRole: options.role,
            theirRole: serverRole,
          })
          step = 'welcome'
          sendRaw(ws, { t: 'hello', protocolVersion: PROTOCOL_VERSION, name: options.name, role: options.role, nonce, proof })
          return
        }
        const welcome = expectMessage(data, isBinary, 'welcome')
        const ok = verifyProof(
          options.secret,
          {
            side: 'server',
            protocolVersion: PROTOCOL_VERSION,
            theirNonce: nonce,
            ourNonce: serverNonce,
            ourName: serverName,
            theirName: options.name,
            ourRole: serverRole,
            theirRole: options.role,
          },
          welcome.proof,
        )
        if (!ok || welcome.name !== serverName)
          throw new HvlabError('HVLAB_E_AUTH', `${serverName} at ${host}:${port} could not prove it holds the lab's secret`)
        settled = true
        clearTimeout(timer)
        stopCounting()
        ws.removeAllListeners('message')
        ws.removeAllListeners('close')
        ws.removeAllListeners('error')
        const transcript = {
          protocolVersion: PROTOCOL_VERSION,
          client: { name: options.name, role: options.role, nonce },
          server: { name: serverName, role: serverRole, nonce: serverNonce },
        }
        const frameAuth = FrameAuth.after('client', options.secret, transcript)
        resolve(
          new PeerConnection(
            ws,
            { name: serverName, role: serverRole },
            { log: options.log, frameAuth, limits: options.limits, metrics: options.metrics, held: true },
          ),
        )
      } catch (e) {
        fail(e)
      }
    }
    ws.on('message', onMessage)
  })
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
  if (options.expectName && challenge.name !== options.expectName) {
    throw new HvlabError('HVLAB_E_AUTH', `expected ${options.expectName} at ${where}, found ${challenge.name}`)
  }
  if (options.expectRole && challenge.role !== options.expectRole) {
    throw new HvlabError(
      'HVLAB_E_AUTH',
      `expected the role ${options.expectRole} at ${where}, ${challenge.name} says its role is ${challenge.role}`,
    )
  }
}
