/**
 * PeerLink: capped, jittered backoff (pure), and reconnecting after the server at the
 * other end is closed and a new one starts on the same port.
 */
import { once } from 'node:events'
import t from 'tap'
import { silentLogger } from '../../shared/log.js'
import type { PeerConnection } from '../../shared/transport/peer-connection.js'
import { DEFAULT_BACKOFF, PeerLink, backoffDelay_ms, type BackoffPolicy } from '../../shared/transport/peer-link.js'
import { connectPeer } from '../../shared/transport/peer-client.js'
import { PeerServer } from '../../shared/transport/peer-server.js'
import { SECRET, roleByName, startServer, until } from './transport-helpers.js'

t.test('backoffDelay_ms grows, is capped at max_ms and jittered within bounds', async (tt) => {
  const policies: BackoffPolicy[] = [
    DEFAULT_BACKOFF,
    { initial_ms: 10, max_ms: 1000, jitter: 0.5 },
    { initial_ms: 250, max_ms: 250, jitter: 0 },
    { initial_ms: 1, max_ms: 60_000, jitter: 1 },
  ]
  const randoms = [0, 0.25, 0.5, 0.999999]
  let checked = 0
  for (const p of policies) {
    let previousUnjittered = 0
    for (let attempt = 0; attempt <= 64; attempt++) {
      const base = Math.min(p.max_ms, p.initial_ms * 2 ** attempt)
      const delays = randoms.map((r) => backoffDelay_ms(p, attempt, r))
      for (const d of delays) {
        if (!(d <= p.max_ms && d >= Math.floor(base * (1 - p.jitter)) && Number.isInteger(d))) {
          tt.fail(
            `policy ${JSON.stringify(p)} attempt ${attempt}: delay ${d} outside [${base * (1 - p.jitter)}, ${Math.min(base, p.max_ms)}]`,
          )
        }
        checked++
      }
      tt.ok(
        delays.every((d, i) => i === 0 || d >= delays[i - 1]!),
        'a larger random never gives a shorter delay',
      ) || tt.comment(JSON.stringify({ p, attempt, delays }))
      const unjittered = backoffDelay_ms(p, attempt, 1)
      if (unjittered < previousUnjittered) tt.fail(`policy ${JSON.stringify(p)}: attempt ${attempt} waits less than attempt ${attempt - 1}`)
      previousUnjittered = unjittered
    }
    tt.equal(backoffDelay_ms(p, 1000, 0.999999), p.max_ms, `a late attempt waits max_ms (${p.max_ms}) at most`)
  }
  tt.equal(
    backoffDelay_ms({ initial_ms: 100, max_ms: 5000, jitter: 0.3 }, 0, 0),
    70,
    'the first retry with the lowest random is initial_ms × (1 − jitter)',
  )
  tt.not(backoffDelay_ms(DEFAULT_BACKOFF, 3, 0), backoffDelay_ms(DEFAULT_BACKOFF, 3, 0.9), 'jitter changes the delay')
  tt.ok(checked > 1000)
})

t.test('a link reconnects after the server is closed and restarted on the same port', async (tt) => {
  const onPeer = (c: PeerConnection): void =>
    void c.onRequest('ping', ({ message }) => ({ message: { t: 'pong', seq: message.seq, sent_ms: 0 } }))
  const first = await startServer(tt, { name: 'witness', onPeer })
  const port = first.port
  const link = new PeerLink(
    { name: 'host-a1', role: 'host', secret: SECRET, log: silentLogger(), backoff: { initial_ms: 5, max_ms: 40, jitter: 0.5 } },
    { host: '127.0.0.1', port },
  )
  tt.teardown(() => link.stop())
  const ups: PeerConnection[] = []
  const downs: string[] = []
  let dialFailures = 0
  link.on('up', (c: PeerConnection) => ups.push(c))
  link.on('down', (reason: string) => downs.push(reason))
  link.on('dial-failed', () => dialFailures++)
  link.start()
  await until('the link to come up', () => ups.length === 1)
  tt.equal(link.current?.remoteName, 'witness')
  tt.same((await link.current!.request({ t: 'ping', seq: 1, sent_ms: 0 })).message, { t: 'pong', seq: 1, sent_ms: 0 })

  await first.close()
  await until('the link to notice', () => downs.length === 1)
  tt.equal(link.current, undefined, 'no current connection while the server is gone')
  await until('a failed redial', () => dialFailures >= 2)

  const second = await PeerServer.listen({
    name: 'witness',
    role: 'witness',
    secret: SECRET,
    port,
    log: silentLogger(),
    roleOf: roleByName,
    onPeer,
  })
  tt.teardown(() => second.close())
  tt.equal(second.port, port, 'the new server listens on the same port')
  await until('the link to come back', () => ups.length === 2)
  tt.not(ups[1], ups[0], 'a new connection')
  tt.same(
    (await link.current!.request({ t: 'ping', seq: 2, sent_ms: 0 })).message,
    { t: 'pong', seq: 2, sent_ms: 0 },
    'requests work over the new connection',
  )

  link.stop()
  await until('the stopped link to drop its connection', () => second.connections.length === 0)
  tt.equal(link.current, undefined)
  tt.equal(ups.length, 2, 'a stopped link does not come back up')
})

t.test('setEndpoint moves a link that is down to a new address', async (tt) => {
  const server = await startServer(tt, { name: 'array-a' })
  const link = new PeerLink({
    name: 'host-a1',
    role: 'host',
    secret: SECRET,
    log: silentLogger(),
    backoff: { initial_ms: 5, max_ms: 20, jitter: 0 },
  })
  tt.teardown(() => link.stop())
  link.start() // no endpoint yet: nothing to dial
  const up = once(link, 'up')
  link.setEndpoint({ host: '127.0.0.1', port: server.port })
  const [c] = (await up) as [PeerConnection]
  tt.equal(c.remoteName, 'array-a')
})

t.test("a message the server sends the moment it accepts reaches the handlers the link's 'up' listener attaches", async (tt) => {
  // The server's first message can share a TCP segment with its welcome; ws then emits it
  // in the same tick as the welcome, before the client's code has heard of the connection.
  const server = await startServer(tt, { name: 'array-b', onPeer: (c) => void c.send({ t: 'ping', seq: 7, sent_ms: 0 }) })
  const received: number[] = []
  const downs: string[] = []
  const link = new PeerLink(
    { name: 'array-a', role: 'array', secret: SECRET, log: silentLogger(), backoff: { initial_ms: 5, max_ms: 40, jitter: 0.5 } },
    { host: '127.0.0.1', port: server.port },
  )
  tt.teardown(() => link.stop())
  link.on('up', (c: PeerConnection) => void c.onMessage('ping', ({ message }) => received.push(message.seq)))
  link.on('down', (reason: string) => downs.push(reason))
  link.start()
  await until('the first message', () => received.length > 0 || downs.length > 0)
  tt.same(received, [7], 'the message was handled')
  tt.same(downs, [], 'the connection was not refused')
})

t.test('a dialled connection holds frames until started, then delivers them in order; one never started is cut', async (tt) => {
  let sends: Promise<void>[] = []
  const server = await startServer(tt, {
    name: 'array-b',
    onPeer: (c) => void (sends = [1, 2, 3].map((seq) => c.send({ t: 'ping', seq, sent_ms: 0 }))),
  })
  const c = await connectPeer({
    endpoint: { host: '127.0.0.1', port: server.port },
    name: 'array-a',
    role: 'array',
    secret: SECRET,
    log: silentLogger(),
  })
  tt.teardown(() => c.terminate())
  await Promise.all(sends)
  await new Promise((r) => setTimeout(r, 50)) // let them arrive while held
  const received: number[] = []
  c.onMessage('ping', ({ message }) => received.push(message.seq))
  tt.same(received, [], 'nothing delivered before start()')
  c.start()
  await until('the held frames', () => received.length === 3)
  tt.same(received, [1, 2, 3], 'delivered in order once started')

  const flood = await startServer(tt, {
    name: 'array-c',
    onPeer: (s) =>
      void (async () => {
        for (let seq = 0; seq < 1100 && s.isOpen; seq++) await s.send({ t: 'ping', seq, sent_ms: 0 })
      })(),
  })
  const never = await connectPeer({
    endpoint: { host: '127.0.0.1', port: flood.port },
    name: 'array-a',
    role: 'array',
    secret: SECRET,
    log: silentLogger(),
  })
  tt.teardown(() => never.terminate())
  const [, reason] = (await once(never, 'close')) as [number, string]
  tt.match(reason, /BACKPRESSURE/, 'a connection whose owner never starts it is cut rather than buffering without bound')
})

t.test('a link that is up moves when its peer moves: the connection to the old address is dropped, the new one dialled', async (tt) => {
  // The old address may be anyone's now: the audit's relay held a killed host's old port.
  const onPeer = (c: PeerConnection): void =>
    void c.onRequest('ping', ({ message }) => ({ message: { t: 'pong', seq: message.seq, sent_ms: 0 } }))
  const oldAddress = await startServer(tt, { name: 'array-a', role: 'array', onPeer })
  const newAddress = await startServer(tt, { name: 'array-a', role: 'array', onPeer })
  const link = new PeerLink(
    {
      name: 'host-a1',
      role: 'host',
      secret: SECRET,
      expectName: 'array-a',
      expectRole: 'array',
      log: silentLogger(),
      backoff: { initial_ms: 5, max_ms: 40, jitter: 0.5 },
    },
    { host: '127.0.0.1', port: oldAddress.port },
  )
  tt.teardown(() => link.stop())
  const ups: PeerConnection[] = []
  const downs: string[] = []
  link.on('up', (c: PeerConnection) => ups.push(c))
  link.on('down', (reason: string) => downs.push(reason))
  link.start()
  await until('the link to come up', () => ups.length === 1)

  link.setEndpoint({ host: '127.0.0.1', port: newAddress.port })
  await until('the link to come up at the new address', () => ups.length === 2)
  tt.equal(link.current, ups[1], 'the new connection is the current one')
  await until('the old address to lose the link', () => oldAddress.connections.length === 0)
  tt.equal(newAddress.connections.length, 1, 'the new address serves it')
  tt.match(downs, [new RegExp(`moved to 127.0.0.1:${newAddress.port}`)], 'one down, saying why')
  tt.same(
    (await link.current!.request({ t: 'ping', seq: 3, sent_ms: 0 })).message,
    { t: 'pong', seq: 3, sent_ms: 0 },
    'requests go to the new address',
  )

  link.setEndpoint({ host: '127.0.0.1', port: newAddress.port })
  await link.current!.request({ t: 'ping', seq: 4, sent_ms: 0 })
  tt.equal(ups.length, 2, 'the same address again changes nothing')
})
