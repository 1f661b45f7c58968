/**
 * The authenticated transport over real sockets on 127.0.0.1 (port 0): the handshake
 * refuses wrong secrets and protocol versions both ways; a misbehaving peer (oversize,
 * malformed, unknown or text frames, no pongs) loses only its own connection;
 * request/response, typed errors, timeouts, attachments.
 */
import { once } from 'node:events'
import t from 'tap'
import { HvlabError, describeError } from '../../shared/errors.js'
import { encodeFrame, FRAME_BYTES_MAX, FRAME_MAGIC } from '../../shared/protocol/codec.js'
import { PROTOCOL_VERSION } from '../../shared/protocol/messages.js'
import type { PeerConnection } from '../../shared/transport/peer-connection.js'
import {
  SECRET,
  connect,
  fakeServer,
  nextMessage,
  rawAuthenticated,
  rawSocket,
  recordUntilClosed,
  sealed,
  sendMessage,
  startServer,
  until,
  type RawPeer,
  type TapTest,
} from './transport-helpers.js'

/** A server whose peers answer ping requests with pong, and blob requests with the same bytes. */
async function echoServer(tt: TapTest, extra: Parameters<typeof startServer>[1] = {}) {
  const peers: PeerConnection[] = []
  const server = await startServer(tt, {
    ...extra,
    onPeer: (c) => {
      peers.push(c)
      c.onRequest('ping', ({ message }) => ({ message: { t: 'pong', seq: message.seq, sent_ms: message.sent_ms } }))
      c.onRequest('blob', ({ message, attachment }) => ({ message: { t: 'blob', label: message.label }, attachment }))
      c.onRequest('goodbye', ({ message }) => {
        if (message.code === 'internal') throw new Error('handler bug')
        throw new HvlabError('HVLAB_E_STATE', `cannot ${message.reason} now; wait for the migration to finish`)
      })
      c.onRequest('ok', () => new Promise(() => undefined)) // never answers
    },
  })
  return { server, peers }
}

async function assertServes(tt: TapTest, c: PeerConnection, what: string): Promise<void> {
  const reply = await c.request({ t: 'ping', seq: 77, sent_ms: 1 })
  tt.same(reply.message, { t: 'pong', seq: 77, sent_ms: 1 }, what)
}

t.test('request/response, typed errors, timeouts and attachments', async (tt) => {
  const { server } = await echoServer(tt)
  const c = await connect(tt, server.port)
  tt.equal(c.remoteName, 'server-a')
  tt.equal(c.remoteRole, 'host')
  await assertServes(tt, c, 'a request is answered')

  const answers = await Promise.all(Array.from({ length: 50 }, (_, i) => c.request({ t: 'ping', seq: i, sent_ms: 0 })))
  tt.same(
    answers.map((a) => (a.message.t === 'pong' ? a.message.seq : -1)),
    Array.from({ length: 50 }, (_, i) => i),
    'concurrent replies match their requests',
  )

  await tt.rejects(
    c.request({ t: 'goodbye', code: 'x', reason: 'migrate' }),
    { name: 'HvlabError', code: 'HVLAB_E_STATE', message: /cannot migrate now/ },
    "a handler's HvlabError arrives with its code",
  )
  await tt.rejects(
    c.request({ t: 'goodbye', code: 'internal', reason: 'x' }),
    { code: 'HVLAB_E_INTERNAL' },
    'any other thrown error arrives as HVLAB_E_INTERNAL',
  )
  await tt.rejects(
    c.request({ t: 'pong', seq: 1, sent_ms: 1 }),
    { code: 'HVLAB_E_UNSUPPORTED' },
    'a request the peer does not answer is an error reply',
  )
  await tt.rejects(c.request({ t: 'ok' }, { timeout_ms: 50 }), { code: 'HVLAB_E_TIMEOUT' }, 'a request with no reply times out')
  await assertServes(tt, c, 'the connection still works after all those errors')

  const bytes = Buffer.alloc(4 * 1024 * 1024)
  for (let i = 0; i < bytes.length; i += 4) bytes.writeUInt32LE((i * 2654435761) >>> 0, i)
  const echoed = await c.request({ t: 'blob', label: 'pages' }, { attachment: bytes })
  tt.same(echoed.message, { t: 'blob', label: 'pages' })
  tt.ok(echoed.attachment.equals(bytes), 'a 4 MiB attachment arrives intact both ways')
})

t.test('a large attachment is handed over in a buffer of its own frame; a small one is not', async (tt) => {
  const received: { label: string; attachment: Buffer; owned: boolean | undefined }[] = []
  const server = await startServer(tt, {
    onPeer: (c) =>
      c.onRequest('blob', ({ message, attachment, attachment_owned }) => {
        received.push({ label: message.label, attachment, owned: attachment_owned })
        return { message: { t: 'blob', label: message.label }, attachment: Buffer.alloc(1) }
      }),
  })
  const c = await connect(tt, server.port)
  const big = Buffer.alloc(1024 * 1024)
  for (let i = 0; i < big.length; i += 4) big.writeUInt32LE((i * 2654435761) >>> 0, i)
  await c.request({ t: 'blob', label: 'big' }, { attachment: big })
  await c.request({ t: 'blob', label: 'small' }, { attachment: Buffer.alloc(100, 9) })
  const [b, s] = received
  tt.equal(b?.owned, true, 'a 1 MiB attachment is owned: its fragment was gathered into a buffer of its own')
  tt.ok(b?.attachment.equals(big), 'and arrives intact')
  tt.ok(
    b && b.attachment.byteOffset === 0 && b.attachment.buffer.byteLength === big.length,
    'its buffer is the attachment alone: the message was not copied again into one buffer with its envelope and tag',
  )
  tt.equal(s?.owned, false, 'a 100-byte attachment shares its buffer: not owned, the handler must copy what it keeps')
  tt.ok(s?.attachment.equals(Buffer.alloc(100, 9)), 'and arrives intact')
})

t.test('pending requests reject with HVLAB_E_CLOSED when the connection drops', async (tt) => {
  const { server, peers } = await echoServer(tt)
  const c = await connect(tt, server.port)
  const pending = [c.request({ t: 'ok' }), c.request({ t: 'ok' })]
  await until('the server to see the peer', () => peers.length === 1)
  await assertServes(tt, c, 'requests reach the server') // so both 'ok' requests are there too
  peers[0]!.terminate()
  for (const p of pending) await tt.rejects(p, { code: 'HVLAB_E_CLOSED' })
  tt.equal(c.isOpen, false)
  await tt.rejects(c.request({ t: 'ping', seq: 1, sent_ms: 0 }), { code: 'HVLAB_E_CLOSED' }, 'a request on a closed connection is refused')
  await tt.rejects(c.send({ t: 'ping', seq: 1, sent_ms: 0 }), { code: 'HVLAB_E_CLOSED' }, 'a send on a closed connection is refused')
})

t.test('a client with the wrong secret is refused; the server keeps serving', async (tt) => {
  const { server } = await echoServer(tt)
  const good = await connect(tt, server.port)
  await tt.rejects(connect(tt, server.port, { secret: 'another-lab' }), { name: 'HvlabError', code: 'HVLAB_E_AUTH', message: /secret/ })
  // The raw view: a goodbye that says why, then the close.
  const ws = rawSocket(tt, server.port)
  const closed = recordUntilClosed(ws)
  const challenge = await nextMessage(ws)
  tt.equal(challenge.t, 'challenge')
  sendMessage(ws, {
    t: 'hello',
    protocolVersion: PROTOCOL_VERSION,
    name: 'raw',
    role: 'host',
    nonce: '0'.repeat(32),
    proof: 'f'.repeat(64),
  })
  const { messages } = await closed
  tt.match(messages.at(-1), { t: 'goodbye', code: 'HVLAB_E_AUTH' })
  await assertServes(tt, good, 'an authenticated connection is unaffected')
  tt.equal(server.connections.length, 1, 'only the good peer is connected')
})

t.test('a server with the wrong secret is detected by the client', async (tt) => {
  const port = await fakeServer(tt, { secret: 'another-lab' })
  await tt.rejects(connect(tt, port), { name: 'HvlabError', code: 'HVLAB_E_AUTH', message: /could not prove/ })
  const honest = await fakeServer(tt, {})
  const c = await connect(tt, honest)
  tt.equal(c.remoteName, 'impostor', 'the same fake with the right secret is accepted (so the refusal above was about the proof)')
})

t.test('a server of another name is refused when the client expects a name', async (tt) => {
  const { server } = await echoServer(tt)
  await tt.rejects(connect(tt, server.port, { expectName: 'server-z' }), { code: 'HVLAB_E_AUTH', message: /expected server-z/ })
})

t.test('an old protocol version is refused, both ways', async (tt) => {
  const { server } = await echoServer(tt)
  const good = await connect(tt, server.port)
  await tt.rejects(rawAuthenticated(tt, server.port, { protocolVersion: PROTOCOL_VERSION - 1 }), /expected welcome, got goodbye/)
  const ws = rawSocket(tt, server.port)
  const closed = recordUntilClosed(ws)
  const challenge = await nextMessage(ws)
  if (challenge.t !== 'challenge') throw new Error('no challenge')
  sendMessage(ws, {
    t: 'hello',
    protocolVersion: PROTOCOL_VERSION + 1,
    name: 'raw',
    role: 'host',
    nonce: '0'.repeat(32),
    proof: 'f'.repeat(64),
  })
  const { messages } = await closed
  tt.match(messages.at(-1), { t: 'goodbye', code: 'HVLAB_E_AUTH', reason: /protocol version/ }, 'the server says why')
  await assertServes(tt, good, 'the server keeps serving')

  const oldServer = await fakeServer(tt, { protocolVersion: PROTOCOL_VERSION + 1 })
  await tt.rejects(
    connect(tt, oldServer),
    { code: 'HVLAB_E_AUTH', message: /protocol version/ },
    'the client refuses a server of another version',
  )
})

t.test('a bad first frame or no hello is refused during the handshake', async (tt) => {
  const { server } = await echoServer(tt, { handshake_timeout_ms: 100 })
  const silent = rawSocket(tt, server.port)
  const silentClosed = recordUntilClosed(silent)
  const garbage = rawSocket(tt, server.port)
  const garbageClosed = recordUntilClosed(garbage)
  await once(garbage, 'open')
  garbage.send(Buffer.from([FRAME_MAGIC, 0, 0, 0, 1, 0xc1]))
  tt.match((await garbageClosed).messages.at(-1), { t: 'goodbye', code: 'HVLAB_E_PROTOCOL' }, 'malformed hello')
  tt.match((await silentClosed).messages.at(-1), { t: 'goodbye', code: 'HVLAB_E_AUTH', reason: /handshake timeout/ }, 'no hello in time')
  tt.equal(server.connections.length, 0)
})

t.test('an authenticated peer that is refused by admit() gets the reason', async (tt) => {
  const why = `client-b is partitioned from server-a by the lab; ${'heal the partition first; '.repeat(100)}`
  const { server } = await echoServer(tt, { admit: ({ name }) => (name === 'client-b' ? why : undefined) })
  await tt.rejects(connect(tt, server.port), { code: 'HVLAB_E_REFUSED', message: /partitioned/ }, 'the reason arrives, even a long one')
  const other = await connect(tt, server.port, { name: 'client-c' })
  await assertServes(tt, other, 'others are admitted')
})

/** One misbehaving raw peer (sealing what it sends, so the frame's content is what is judged) and one honest client on the same server. */
async function misbehave(tt: TapTest, act: (bad: RawPeer) => void): Promise<{ code: number; goodbye: unknown }> {
  const { server, peers } = await echoServer(tt)
  const good = await connect(tt, server.port, { name: 'honest' })
  const bad = await rawAuthenticated(tt, server.port, { name: 'rogue' })
  await until('both peers on the server', () => peers.length === 2)
  const closed = recordUntilClosed(bad.ws, bad.auth)
  act(bad)
  const { code, messages } = await closed
  await until('the server to drop the rogue', () => server.connections.length === 1)
  tt.same(
    server.connections.map((c) => c.remoteName),
    ['honest'],
    'only the rogue connection was closed',
  )
  await assertServes(tt, good, 'the honest connection still gets answers')
  return { code, goodbye: messages.find((m) => m.t === 'goodbye') }
}

t.test('an oversize frame closes only that connection', async (tt) => {
  const { code } = await misbehave(tt, ({ ws }) => ws.send(Buffer.alloc(FRAME_BYTES_MAX + 1, 0)))
  tt.equal(code, 1009, 'closed with 1009 (message too big)')
})

t.test('a malformed frame closes only that connection', async (tt) => {
  const { goodbye } = await misbehave(tt, ({ ws, auth }) => ws.send(sealed(auth, Buffer.from([FRAME_MAGIC, 0, 0, 0, 2, 0x92, 0x01]))))
  tt.match(goodbye, { t: 'goodbye', code: 'HVLAB_E_PROTOCOL', reason: /not valid msgpack/ })
})

t.test('an unknown message type closes only that connection', async (tt) => {
  const { Packr } = await import('msgpackr')
  const body = new Packr({ useRecords: false }).pack({ k: 'msg', m: { t: 'format-disk', volume: 'v1' } })
  const frame = Buffer.concat([Buffer.from([FRAME_MAGIC, 0, 0, 0, 0]), body])
  frame.writeUInt32BE(body.length, 1)
  const { goodbye } = await misbehave(tt, ({ ws, auth }) => ws.send(sealed(auth, frame)))
  tt.match(goodbye, { t: 'goodbye', code: 'HVLAB_E_PROTOCOL', reason: /unknown message type "format-disk"/ })
})

t.test('a one-way message nobody handles closes only that connection', async (tt) => {
  const { goodbye } = await misbehave(tt, ({ ws, auth }) =>
    ws.send(sealed(auth, encodeFrame({ k: 'msg', m: { t: 'partition-set', blocked: [] } }))),
  )
  tt.match(goodbye, { t: 'goodbye', code: 'HVLAB_E_PROTOCOL', reason: /unexpected message partition-set/ })
})

t.test('a text frame closes only that connection', async (tt) => {
  const { goodbye } = await misbehave(tt, ({ ws }) => ws.send('{"k":"msg"}'))
  tt.match(goodbye, { t: 'goodbye', code: 'HVLAB_E_PROTOCOL', reason: /text frames/ })
})

t.test('nothing after a protocol violation is acted on', async (tt) => {
  let answered = 0
  const { server } = await startServer(tt, {
    onPeer: (c) => c.onRequest('ping', ({ message }) => (answered++, { message: { t: 'pong', seq: message.seq, sent_ms: 0 } })),
  }).then((server) => ({ server }))
  const bad = await rawAuthenticated(tt, server.port)
  const closed = recordUntilClosed(bad.ws, bad.auth)
  // Both frames leave in one go: the garbage, then a well-formed request.
  bad.ws.send(sealed(bad.auth, Buffer.from([FRAME_MAGIC, 0, 0, 0, 1, 0xc1])))
  bad.ws.send(sealed(bad.auth, encodeFrame({ k: 'req', id: 1, m: { t: 'ping', seq: 1, sent_ms: 0 } })))
  const { messages } = await closed
  tt.equal(answered, 0, 'the request after the bad frame was not handled')
  tt.notOk(
    messages.some((m) => m.t === 'pong'),
    'and not answered',
  )
})

t.test('a peer that stops answering pings is cut after dead_after_ms', async (tt) => {
  const limits = { ping_interval_ms: 25, ping_after_silent_ms: 50, dead_after_ms: 400, idle_ping_ms: 100 }
  const { server, peers } = await echoServer(tt, { limits })
  const good = await connect(tt, server.port, { name: 'honest' })
  const { ws: mute } = await rawAuthenticated(tt, server.port, { name: 'mute', ws: { autoPong: false } })
  const closed = recordUntilClosed(mute)
  const { code } = await closed
  tt.equal(code, 1006, 'the mute peer was cut without a close handshake')
  await until('the server to drop the mute peer', () => peers.find((p) => p.remoteName === 'mute')?.isOpen === false)
  tt.ok(peers.find((p) => p.remoteName === 'honest')?.isOpen, 'the peer that answers pings under the same limits is still connected')
  await assertServes(tt, good, 'and still served')
})

t.test(
  'link faults on a real socket: a bandwidth cap holds a bulk frame back and keeps order; a deaf side hears nothing, then resets',
  async (tt) => {
    const { server } = await echoServer(tt)
    const c = await connect(tt, server.port)
    await assertServes(tt, c, 'a clear link')
    c.setLinkShape({ latency_ms: 0, jitter_ms: 0, mbit: 40, loss: 0 }) // 5 MB/s: 1 MiB needs 210 ms of wire
    const bytes = Buffer.alloc(1024 * 1024, 7)
    const answered: string[] = []
    const sent_ms = performance.now()
    await Promise.all([
      c.request({ t: 'blob', label: 'bulk' }, { attachment: bytes }).then(() => answered.push('blob')),
      c.request({ t: 'ping', seq: 1, sent_ms: 0 }).then(() => answered.push('ping')),
    ])
    const took_ms = performance.now() - sent_ms
    // A lower bound the shaper sets (the frame's bits at the cap), not a speed of this machine.
    tt.ok(took_ms >= (bytes.length * 8) / (40 * 1000) - 1, `the 1 MiB frame waited for its bits at 40 Mbit/s (${took_ms.toFixed(0)} ms)`)
    tt.same(answered, ['blob', 'ping'], 'the small frame behind it was not delivered first')

    c.setLinkShape({ latency_ms: 0, jitter_ms: 0, mbit: 0, loss: 0 })
    c.setDeaf(true)
    await tt.rejects(
      c.request({ t: 'ping', seq: 2, sent_ms: 0 }, { timeout_ms: 300 }),
      { code: 'HVLAB_E_TIMEOUT' },
      'a deaf side hears no reply',
    )
    tt.ok(c.isOpen, 'the connection lives on while deaf')
    const closed = once(c, 'close')
    c.setDeaf(false)
    await closed
    tt.notOk(c.isOpen, 'it missed frames: reset when it hears again, as TCP would have')
  },
)

t.test('sends beyond send_queue_bytes_max are refused with HVLAB_E_BACKPRESSURE on a real socket', async (tt) => {
  const limits = { send_high_water_bytes: 128 * 1024, send_queue_bytes_max: 1024 * 1024 }
  const { server, peers } = await echoServer(tt, { limits })
  const { ws: raw } = await rawAuthenticated(tt, server.port, { name: 'slow' })
  await until('the server to see the peer', () => peers.length === 1)
  let received = 0
  raw.on('message', () => void received++)
  const toSlow = peers[0]!
  const attachment = Buffer.alloc(64 * 1024, 7)
  const outcomes = await Promise.all(
    Array.from({ length: 64 }, (_, i) =>
      toSlow.send({ t: 'blob', label: `b${i}` }, attachment).then(
        () => 'sent',
        (e: { code?: string }) => e.code ?? 'other',
      ),
    ),
  )
  const sent = outcomes.filter((o) => o === 'sent').length
  tt.equal(
    outcomes.filter((o) => o === 'HVLAB_E_BACKPRESSURE').length,
    64 - sent,
    'every send was either accepted or refused with HVLAB_E_BACKPRESSURE',
  )
  tt.ok(sent < 64, `${64 - sent} of 64 sends of 64 KiB were refused instead of buffered`)
  tt.ok(sent * attachment.length <= limits.send_queue_bytes_max, 'what was accepted fits send_queue_bytes_max')
  await until('the accepted frames to arrive', () => received === sent)
  tt.ok(toSlow.isOpen, 'refusing sends does not close the connection')
})

t.test(
  'an error reply: a finer code arrives split into family and detail, the peer as its origin, the message as it said it',
  async (tt) => {
    const inner = await startServer(tt, {
      name: 'server-z',
      onPeer: (c) =>
        c.onRequest('ping', () => {
          throw new HvlabError('HVLAB_E_NO_QUORUM', 'the cluster has no coordinator with quorum right now; retry when it shows quorum HELD')
        }),
    })
    const hop = await connect(tt, inner.port, { name: 'server-a' })
    // a relay: server-a asks server-z and throws what it got
    const server = await startServer(tt, { onPeer: (c) => c.onRequest('ping', ({ message }) => hop.request(message)) })
    const direct = await connect(tt, inner.port)
    const e = await direct.request({ t: 'ping', seq: 1, sent_ms: 0 }).then(
      () => undefined,
      (err: unknown) => err,
    )
    tt.ok(e instanceof HvlabError)
    if (!(e instanceof HvlabError)) return
    tt.match(e, {
      code: 'HVLAB_E_STATE',
      detail: 'HVLAB_E_NO_QUORUM',
      origin: 'server-z',
      message: 'the cluster has no coordinator with quorum right now; retry when it shows quorum HELD',
    })
    tt.ok(HvlabError.has(e, 'HVLAB_E_NO_QUORUM') && HvlabError.has(e, 'HVLAB_E_STATE'), 'switchable on either code')
    tt.equal(describeError(e), `server-z: ${e.message}`, 'people see it as before: origin: message')
    tt.equal(e.withoutOrigin().message, e.message)
    tt.equal(e.withoutOrigin().origin, undefined)
    tt.equal(e.withoutOrigin().detail, 'HVLAB_E_NO_QUORUM', 'answering in its own name keeps the code')

    const c = await connect(tt, server.port)
    await tt.rejects(
      c.request({ t: 'ping', seq: 2, sent_ms: 0 }),
      { code: 'HVLAB_E_STATE', detail: 'HVLAB_E_NO_QUORUM', origin: 'server-a', message: /^server-z: the cluster has no coordinator/ },
      'relayed twice: the finer code survives, the nearer peer is the origin, the farther one stays in the text',
    )
  },
)
