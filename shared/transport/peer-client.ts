/**
 * The dialling side: connect to a peer's endpoint, prove the lab's secret, check the
 * peer's proof in return, and hand back a PeerConnection. It is held: the caller attaches
 * its handlers, then calls `start()` to have frames delivered.
 */
import WebSocket from 'ws'
import { HvlabError, describeError } from '../errors.js'
import { newNonce } from '../ids.js'
import type { Logger } from '../log.js'
import type { Metrics } from '../metrics.js'
import { FRAME_BYTES_MAX } from '../protocol/codec.js'
import { PROTOCOL_VERSION } from '../protocol/messages.js'
import type { PartyRole } from '../protocol/runtime-messages.js'
import { computeProof, verifyProof } from './handshake.js'
import { HANDSHAKE_TIMEOUT_MS, expectMessage, sendRaw } from './handshake-frames.js'
import { PeerConnection, type TransportLimits } from './peer-connection.js'

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
  log: Logger
  metrics?: Metrics
  limits?: Partial<TransportLimits>
  handshakeTimeout_ms?: number
}

const zeroMask = (mask: Buffer): void => void mask.fill(0)

export function connectPeer(options: ConnectOptions): Promise<PeerConnection> {
  const { host, port } = options.endpoint
  const ws = new WebSocket(`ws://${host}:${port}/`, {
    maxPayload: FRAME_BYTES_MAX,
    perMessageDeflate: false,
    handshakeTimeout: options.handshakeTimeout_ms ?? HANDSHAKE_TIMEOUT_MS,
    // A zero masking key: ws then sends client frames without masking and copying them.
    // Masking protects browsers' intermediaries from cache poisoning; these links are
    // process-to-process on the lab's own network and authenticated by HMAC instead.
    generateMask: zeroMask,
  })
  return new Promise<PeerConnection>((resolve, reject) => {
    let settled = false
    const nonce = newNonce()
    let step: 'challenge' | 'welcome' = 'challenge'
    let serverName = ''
    let serverRole = ''
    let serverNonce = ''
    const fail = (e: unknown): void => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      ws.removeAllListeners('message')
      ws.terminate()
      reject(e instanceof HvlabError ? e : new HvlabError('HVLAB_E_CLOSED', `cannot connect to ${host}:${port}: ${describeError(e)}`, { cause: e }))
    }
    const timer = setTimeout(() => fail(new HvlabError('HVLAB_E_TIMEOUT', `handshake with ${host}:${port} did not finish in time`)), options.handshakeTimeout_ms ?? HANDSHAKE_TIMEOUT_MS)
    timer.unref()
    ws.on('error', fail)
    ws.on('close', (code, reason) => fail(new HvlabError('HVLAB_E_CLOSED', `${host}:${port} closed the connection during the handshake (${code} ${reason.toString()})`)))
    const onMessage = (data: WebSocket.RawData, isBinary: boolean): void => {
      try {
        if (step === 'challenge') {
          const challenge = expectMessage(data, isBinary, 'challenge')
          if (challenge.protocolVersion !== PROTOCOL_VERSION) {
            throw new HvlabError('HVLAB_E_AUTH', `${challenge.name} speaks protocol version ${challenge.protocolVersion}, we speak ${PROTOCOL_VERSION}; run the same hvlab version everywhere`)
          }
          if (options.expectName && challenge.name !== options.expectName) {
            throw new HvlabError('HVLAB_E_AUTH', `expected ${options.expectName} at ${host}:${port}, found ${challenge.name}`)
          }
          serverName = challenge.name
          serverRole = challenge.role
          serverNonce = challenge.nonce
          const proof = computeProof(options.secret, { side: 'client', protocolVersion: PROTOCOL_VERSION, theirNonce: challenge.nonce, ourNonce: nonce, ourName: options.name, theirName: serverName })
          step = 'welcome'
          sendRaw(ws, { t: 'hello', protocolVersion: PROTOCOL_VERSION, name: options.name, role: options.role, nonce, proof })
          return
        }
        const welcome = expectMessage(data, isBinary, 'welcome')
        const ok = verifyProof(options.secret, { side: 'server', protocolVersion: PROTOCOL_VERSION, theirNonce: nonce, ourNonce: serverNonce, ourName: serverName, theirName: options.name }, welcome.proof)
        if (!ok || welcome.name !== serverName) throw new HvlabError('HVLAB_E_AUTH', `${serverName} at ${host}:${port} could not prove it holds the lab's secret`)
        settled = true
        clearTimeout(timer)
        ws.removeAllListeners('message')
        ws.removeAllListeners('close')
        ws.removeAllListeners('error')
        resolve(new PeerConnection(ws, { name: serverName, role: serverRole }, { log: options.log, limits: options.limits, metrics: options.metrics, held: true }))
      } catch (e) {
        fail(e)
      }
    }
    ws.on('message', onMessage)
  })
}
