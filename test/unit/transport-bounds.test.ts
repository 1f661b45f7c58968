/**
 * The transport's bounds (reliability review #4 and #6): before a peer has proved the
 * lab's secret — bytes it may send (both ways), connections still in their handshake at
 * once, time to finish the HTTP upgrade, HTTP header size — and after: authenticated
 * connections at once, requests from one peer being handled at once. Each at its limit.
 */
import { once } from 'node:events'
import { connect as tcpConnect, type AddressInfo, type Socket } from 'node:net'
import t from 'tap'
import { WebSocketServer } from 'ws'
import { LIMITS_DEFAULT } from '../../shared/topology.js'
import { capturingLogger, connect, startServer, until, type TapTest } from './transport-helpers.js'

const UPGRADE =
  'GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n'

/** The start of a WebSocket frame that says 1 MiB follow (masked, as from a client, or not). */
function bigFrameHeader(masked: boolean): Buffer {
  const h = Buffer.alloc(masked ? 14 : 10)
  h[0] = 0x82
  h[1] = (masked ? 0x80 : 0) | 127
  h.writeBigUInt64BE(1024n * 1024n, 2)
  return h
}

/** A raw TCP socket to `port`, destroyed at teardown; resolves once connected. */
async function tcp(tt: TapTest, port: number): Promise<Socket> {
  const s = tcpConnect(port, '127.0.0.1')
  s.on('error', () => undefined)
  tt.teardown(() => void s.destroy())
  await once(s, 'connect')
  return s
}

/** Everything the socket receives until it is closed. */
function readUntilClosed(s: Socket): Promise<string> {
  let text = ''
  s.on('data', (d: Buffer) => void (text += d.toString('latin1')))
  return new Promise((resolve) => s.once('close', () => resolve(text)))
}

const refusals = (lines: Record<string, unknown>[], code: string) => lines.filter((l) => l.msg === 'refusing connection' && l.code === code)

t.test('a connection that sends more than preauth_bytes_max before its hello is cut', async (tt) => {
  const { log, lines } = capturingLogger()
  const server = await startServer(tt, { log, limits: { preauth_bytes_max: 4096 }, handshake_timeout_ms: 10_000 })
  const s = await tcp(tt, server.port)
  const closed = readUntilClosed(s)
  s.write(UPGRADE)
  s.write(Buffer.concat([bigFrameHeader(true), Buffer.alloc(8 * 1024, 0x41)])) // the start of an 8 MiB "hello"
  await closed
  tt.match(
    refusals(lines, 'HVLAB_E_PROTOCOL')[0],
    { reason: /sent \d+ bytes before proving the lab's secret; at most 4096/ },
    'cut for its bytes, with the reason logged',
  )
  await until('the server to forget the socket', () => server.unauthenticatedConnections === 0)
  const honest = await connect(tt, server.port)
  tt.equal(honest.remoteName, 'server-a', 'an honest handshake fits the same budget')
})

t.test('a dialler cuts a server that sends more than preauth_bytes_max before its welcome', async (tt) => {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 })
  await once(wss, 'listening')
  tt.teardown(() => new Promise<void>((resolve) => wss.close(() => resolve())))
  wss.on('connection', (ws, req) => {
    ws.on('error', () => undefined)
    req.socket.write(Buffer.concat([bigFrameHeader(false), Buffer.alloc(32 * 1024, 0x42)]))
    tt.teardown(() => ws.terminate())
  })
  const port = (wss.address() as AddressInfo).port
  await tt.rejects(connect(tt, port, { limits: { preauth_bytes_max: 4096 }, handshake_timeout_ms: 10_000 }), {
    code: 'HVLAB_E_PROTOCOL',
    message: /before proving the lab's secret; at most 4096/,
  })
})

t.test('beyond unauthenticated_connections_max, a new connection is refused at once', async (tt) => {
  const { log, lines } = capturingLogger()
  const server = await startServer(tt, { log, unauthenticated_connections_max: 3, handshake_timeout_ms: 10_000 })
  const silent = [await tcp(tt, server.port), await tcp(tt, server.port), await tcp(tt, server.port)]
  await until('three connections in their handshake', () => server.unauthenticatedConnections === 3)
  const fourth = await tcp(tt, server.port)
  tt.match(await readUntilClosed(fourth), /^HTTP\/1.1 503/, 'the fourth is refused')
  await tt.rejects(
    connect(tt, server.port),
    { code: 'HVLAB_E_CLOSED', message: /503/ },
    'so is an honest one while the three hold the handshake slots',
  )
  tt.equal(refusals(lines, 'HVLAB_E_BACKPRESSURE').length, 2, 'each refusal is logged')
  tt.equal(server.unauthenticatedConnections, 3)
  for (const s of silent) s.destroy()
  await until('the slots to be free', () => server.unauthenticatedConnections === 0)
  const honest = await connect(tt, server.port)
  tt.equal(honest.remoteName, 'server-a', 'a slot freed is a handshake served')
  tt.equal(server.unauthenticatedConnections, 0, 'an authenticated connection does not hold a handshake slot')
})

t.test('a connection that never finishes its HTTP upgrade is cut', async (tt) => {
  const { log, lines } = capturingLogger()
  const server = await startServer(tt, { log, handshake_timeout_ms: 100 })
  const s = await tcp(tt, server.port)
  const closed = readUntilClosed(s)
  s.write('GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n') // and never the rest
  await closed
  tt.match(refusals(lines, 'HVLAB_E_AUTH')[0], { reason: /did not prove the lab's secret within \d+ ms of connecting/ })
  tt.equal(server.unauthenticatedConnections, 0)
})

t.test('the peer port bounds the HTTP upgrade by the lab HTTP limits', async (tt) => {
  const server = await startServer(tt, {
    http: { ...LIMITS_DEFAULT, http_header_bytes_max: 2048 },
    limits: { preauth_bytes_max: 64 * 1024 },
  })
  const s = await tcp(tt, server.port)
  const closed = readUntilClosed(s)
  s.write(`GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: ${'a'.repeat(4096)}\r\n\r\n`)
  tt.match(await closed, /^HTTP\/1.1 431/, 'headers over http_header_bytes_max: 431')
  const plain = await tcp(tt, server.port)
  const answered = readUntilClosed(plain)
  plain.write('GET /status HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n')
  tt.match(await answered, /^HTTP\/1.1 426/, 'a plain HTTP request: 426, WebSocket only')
})

t.test('beyond connections_max, a new peer is refused', async (tt) => {
  const server = await startServer(tt, { connections_max: 2 })
  await connect(tt, server.port, { name: 'host-a1' })
  await connect(tt, server.port, { name: 'host-a2' })
  await until('both served', () => server.connections.length === 2)
  await tt.rejects(connect(tt, server.port, { name: 'host-b1' }), { code: 'HVLAB_E_REFUSED', message: /already serves 2 connections/ })
})

t.test('beyond inbound_requests_in_flight_max, a request is answered HVLAB_E_BACKPRESSURE without running its handler', async (tt) => {
  let started = 0
  const release: (() => void)[] = []
  const server = await startServer(tt, {
    limits: { inbound_requests_in_flight_max: 2 },
    onPeer: (c) => {
      c.onRequest('ok', () => {
        started++
        return new Promise((resolve) => release.push(() => resolve({ message: { t: 'ok' } })))
      })
      c.onRequest('ping', ({ message }) => ({ message: { t: 'pong', seq: message.seq, sent_ms: 0 } }))
    },
  })
  const c = await connect(tt, server.port)
  const blocked = [c.request({ t: 'ok' }), c.request({ t: 'ok' })]
  await until('two handlers running', () => started === 2)
  await tt.rejects(
    c.request({ t: 'ok' }),
    { code: 'HVLAB_E_BACKPRESSURE', message: /2 requests from client-b are being handled already/ },
    'the third is answered at once',
  )
  await tt.rejects(c.request({ t: 'ping', seq: 1, sent_ms: 0 }), { code: 'HVLAB_E_BACKPRESSURE' }, 'whatever its type')
  tt.equal(started, 2, 'its handler did not run')
  for (const r of release) r()
  for (const r of await Promise.all(blocked)) tt.same(r.message, { t: 'ok' })
  tt.same(
    (await c.request({ t: 'ping', seq: 2, sent_ms: 0 })).message,
    { t: 'pong', seq: 2, sent_ms: 0 },
    'served again once they finished',
  )
  tt.ok(c.isOpen, 'the connection stays open')
})

t.test('refusal log lines: at most refusal_logs_per_s per second, the rest counted and summed up in the next line', async (tt) => {
  const { setRefusalLogRate } = await import('../../shared/transport/refusal-log.js')
  let now_ms = 1_000_000
  setRefusalLogRate(2, () => now_ms)
  tt.teardown(() => setRefusalLogRate(LIMITS_DEFAULT.refusal_logs_per_s))
  const { log, lines } = capturingLogger()
  const server = await startServer(tt, { log, handshake_timeout_ms: 10_000 })
  const refuseOne = async (): Promise<void> => {
    const s = await tcp(tt, server.port)
    const closed = readUntilClosed(s)
    s.write(UPGRADE)
    s.write(Buffer.concat([bigFrameHeader(true), Buffer.alloc(LIMITS_DEFAULT.preauth_bytes_max + 1024, 0x41)]))
    await closed
  }
  for (let i = 0; i < 5; i++) await refuseOne()
  await until('the server to forget the sockets', () => server.unauthenticatedConnections === 0)
  tt.equal(refusals(lines, 'HVLAB_E_PROTOCOL').length, 2, 'five refusals in one second: two lines written')
  now_ms += 1000
  await refuseOne()
  const summary = lines.find((l) => typeof l.notLogged === 'number')
  tt.match(summary, { notLogged: 3, msg: '3 more refusals not logged' }, 'the next second starts with what was held back')
  tt.equal(refusals(lines, 'HVLAB_E_PROTOCOL').length, 3, 'then the refusal itself')
})
