/**
 * Test fixtures for the transport: servers, clients and raw `ws` peers that complete
 * (or subvert) the handshake by hand. Everything opened here is closed in t.teardown.
 */
import { once } from 'node:events'
import type { AddressInfo } from 'node:net'
import WebSocket, { WebSocketServer } from 'ws'
import t from 'tap'
import pino from 'pino'
import { silentLogger, type Logger } from '../../shared/log.js'
import { isHvlabError } from '../../shared/errors.js'
import { newNonce } from '../../shared/ids.js'
import { decodeFrame, encodeFrame } from '../../shared/protocol/codec.js'
import { PROTOCOL_VERSION, type Message } from '../../shared/protocol/messages.js'
import type { PartyRole } from '../../shared/protocol/runtime-messages.js'
import { FrameAuth } from '../../shared/transport/frame-auth.js'
import { computeProof } from '../../shared/transport/handshake.js'
import { connectPeer, type ConnectOptions } from '../../shared/transport/peer-client.js'
import type { PeerConnection } from '../../shared/transport/peer-connection.js'
import { PeerServer, type PeerServerOptions } from '../../shared/transport/peer-server.js'

export type TapTest = Parameters<Parameters<typeof t.test>[0]>[0]

export const SECRET = 'lab-secret-for-tests'

/** The tests' topology: a name's role is its prefix (array-…, witness…), every other name is a host. */
export function roleByName(name: string): PartyRole {
  if (name.startsWith('array')) return 'array'
  if (name.startsWith('witness')) return 'witness'
  return 'host'
}

export async function startServer(tt: TapTest, options: Partial<PeerServerOptions> = {}): Promise<PeerServer> {
  const server = await PeerServer.listen({
    name: 'server-a',
    role: 'host',
    secret: SECRET,
    log: silentLogger(),
    roleOf: roleByName,
    onPeer: () => undefined,
    ...options,
  })
  tt.teardown(() => server.close())
  return server
}

export async function connect(tt: TapTest, port: number, options: Partial<ConnectOptions> = {}): Promise<PeerConnection> {
  const connection = await connectPeer({
    endpoint: { host: '127.0.0.1', port },
    name: 'client-b',
    role: 'host',
    secret: SECRET,
    log: silentLogger(),
    ...options,
  })
  tt.teardown(() => connection.terminate())
  connection.start() // these tests' servers send nothing unasked; replies need delivery
  return connection
}

/** A raw ws client, closed at teardown. */
export function rawSocket(tt: TapTest, port: number, options: WebSocket.ClientOptions = {}): WebSocket {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/`, { perMessageDeflate: false, ...options })
  ws.on('error', () => undefined) // errors show up as 'close' too; the tests look at that
  tt.teardown(() => ws.terminate())
  return ws
}

/** Resolves with the next binary frame, decoded. */
export async function nextMessage(ws: WebSocket): Promise<Message> {
  const [data] = (await once(ws, 'message')) as [Buffer]
  const { envelope } = decodeFrame(data)
  if (envelope.k === 'err') throw new Error(`unexpected err envelope ${envelope.code}`)
  return envelope.m
}

export const sendMessage = (ws: WebSocket, m: Message): void => ws.send(encodeFrame({ k: 'msg', m }))

/** A frame with its tag, as an authenticated peer sends it. */
export const sealed = (auth: FrameAuth, frame: Buffer): Buffer => Buffer.concat([frame, auth.seal([frame])])

/**
 * Collects every message a raw socket receives and resolves once it is closed; with `auth`,
 * each frame is opened first (a frame that does not open is not recorded). A frame the codec
 * refuses (HVLAB_E_PROTOCOL) is counted in `undecodable`, not recorded; any other error
 * while reading one rejects the result.
 */
export function recordUntilClosed(ws: WebSocket, auth?: FrameAuth): Promise<{ code: number; messages: Message[]; undecodable: number }> {
  const messages: Message[] = []
  let undecodable = 0
  let unexpected: unknown
  ws.on('message', (received: Buffer) => {
    try {
      const data = auth ? auth.open([received]) : [received]
      if (!data) return
      const { envelope } = decodeFrame(Buffer.concat(data))
      if (envelope.k !== 'err') messages.push(envelope.m)
    } catch (e) {
      if (isHvlabError(e) && e.code === 'HVLAB_E_PROTOCOL') undecodable++
      else unexpected ??= e
    }
  })
  return new Promise((resolve, reject) =>
    ws.once('close', (code: number) => (unexpected === undefined ? resolve({ code, messages, undecodable }) : reject(unexpected))),
  )
}

/** A raw client past the handshake: its socket, and its frame keys and counters to seal and open frames with. */
export interface RawPeer {
  ws: WebSocket
  auth: FrameAuth
}

/**
 * A raw client that completes the handshake by hand (so it can then misbehave).
 * Resolves once the server's welcome has arrived.
 */
export async function rawAuthenticated(
  tt: TapTest,
  port: number,
  options: { name?: string; role?: PartyRole; secret?: string; protocolVersion?: number; ws?: WebSocket.ClientOptions } = {},
): Promise<RawPeer> {
  const ws = rawSocket(tt, port, options.ws)
  const challengeArrives = nextMessage(ws)
  await once(ws, 'open')
  const challenge = await challengeArrives
  if (challenge.t !== 'challenge') throw new Error(`expected challenge, got ${challenge.t}`)
  const name = options.name ?? 'raw-client'
  const role = options.role ?? 'host'
  const nonce = newNonce()
  const protocolVersion = options.protocolVersion ?? PROTOCOL_VERSION
  const secret = options.secret ?? SECRET
  const proof = computeProof(secret, {
    side: 'client',
    protocolVersion,
    theirNonce: challenge.nonce,
    ourNonce: nonce,
    ourName: name,
    theirName: challenge.name,
    ourRole: role,
    theirRole: challenge.role,
  })
  const welcomeArrives = nextMessage(ws)
  sendMessage(ws, { t: 'hello', protocolVersion, name, role, nonce, proof })
  const welcome = await welcomeArrives
  if (welcome.t !== 'welcome') throw new Error(`expected welcome, got ${welcome.t}`)
  const auth = FrameAuth.after('client', secret, {
    protocolVersion,
    client: { name, role, nonce },
    server: { name: challenge.name, role: challenge.role, nonce: challenge.nonce },
  })
  return { ws, auth }
}

/**
 * A fake server that speaks the handshake by its own rules (another secret, another
 * protocol version) and skips checking the client. For checking what the client verifies.
 */
export async function fakeServer(tt: TapTest, behave: { protocolVersion?: number; secret?: string; name?: string }): Promise<number> {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 })
  await once(wss, 'listening')
  tt.teardown(
    () =>
      new Promise<void>((resolve) => {
        for (const c of wss.clients) c.terminate()
        wss.close(() => resolve())
      }),
  )
  const name = behave.name ?? 'impostor'
  wss.on('connection', (ws) => {
    ws.on('error', () => undefined)
    const nonce = newNonce()
    ws.once('message', (data: Buffer) => {
      const { envelope } = decodeFrame(data)
      if (envelope.k !== 'msg' || envelope.m.t !== 'hello') return void ws.terminate()
      const hello = envelope.m
      const proof = computeProof(behave.secret ?? SECRET, {
        side: 'server',
        protocolVersion: PROTOCOL_VERSION,
        theirNonce: hello.nonce,
        ourNonce: nonce,
        ourName: name,
        theirName: hello.name,
        ourRole: 'host',
        theirRole: hello.role,
      })
      sendMessage(ws, { t: 'welcome', name, proof })
    })
    sendMessage(ws, { t: 'challenge', protocolVersion: behave.protocolVersion ?? PROTOCOL_VERSION, name, role: 'host', nonce })
  })
  return (wss.address() as AddressInfo).port
}

/** A logger that keeps its lines (parsed) for the test to read. */
export function capturingLogger(): { log: Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = []
  const log = pino({ level: 'debug' }, { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) })
  return { log, lines }
}

/** Resolves when the condition holds, checking on every turn of the event loop (bounded). */
export async function until(what: string, condition: () => boolean, turns_max = 20_000): Promise<void> {
  for (let i = 0; i < turns_max; i++) {
    if (condition()) return
    await new Promise((resolve) => setTimeout(resolve, 1))
  }
  throw new Error(`gave up waiting for ${what}`)
}
