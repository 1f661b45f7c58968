import t from 'tap'
import { Counter, Registry } from 'prom-client'
import { setTimeout as sleep } from 'node:timers/promises'
import { EventLoopLag } from '../../shared/event-loop-lag.js'
import { RealClock, sleepOn } from '../../shared/clock.js'
import { silentLogger } from '../../shared/log.js'
import type { HttpLimits } from '../../shared/http-listen.js'
import { startStatusServer, type StatusServer } from '../../shared/status-server.js'
import { LIMITS_DEFAULT } from '../../shared/topology.js'
import { rawExchange, requestBytes, silentConnection } from './raw-http.js'

interface Teardown {
  teardown(fn: () => unknown): void
}

async function start(
  t: Teardown,
  status: () => unknown,
  limits: HttpLimits = LIMITS_DEFAULT,
): Promise<{ server: StatusServer; url: (path: string) => string; registry: Registry }> {
  const registry = new Registry()
  const requests = new Counter({ name: 'hvlab_test_requests_total', help: 'Test counter', registers: [registry] })
  requests.inc(3)
  const server = await startStatusServer({ registry, status, log: silentLogger(), limits })
  t.teardown(() => server.close())
  return { server, registry, url: (path) => `http://127.0.0.1:${server.port}${path}` }
}

t.test('GET /status answers the status as JSON, fresh each time', async (t) => {
  let calls = 0
  const { url } = await start(t, () => ({ name: 'host-a1', calls: ++calls, peers: ['host-a2'] }))
  const res = await fetch(url('/status'))
  t.equal(res.status, 200)
  t.equal(res.headers.get('content-type'), 'application/json')
  t.same(await res.json(), { name: 'host-a1', calls: 1, peers: ['host-a2'] })
  const again = await fetch(url('/status?pretty=1'))
  t.same(await again.json(), { name: 'host-a1', calls: 2, peers: ['host-a2'] }, 'a query string is ignored')
})

t.test('GET /metrics answers Prometheus text', async (t) => {
  const { url, registry } = await start(t, () => ({}))
  const res = await fetch(url('/metrics'))
  t.equal(res.status, 200)
  t.equal(res.headers.get('content-type'), registry.contentType)
  const text = await res.text()
  t.match(text, /# HELP hvlab_test_requests_total Test counter/)
  t.match(text, /^hvlab_test_requests_total 3$/m)
})

t.test('other paths and methods', async (t) => {
  const { url } = await start(t, () => ({}))
  const missing = await fetch(url('/nope'))
  t.equal(missing.status, 404)
  t.match(await missing.text(), /no such endpoint \/nope; try GET \/status or GET \/metrics/)
  const root = await fetch(url('/'))
  t.equal(root.status, 404)
  await root.body?.cancel()
  const post = await fetch(url('/status'), { method: 'POST', body: '{}' })
  t.equal(post.status, 405)
  t.match(await post.text(), /POST is not supported; use GET \/status or GET \/metrics/)
  const del = await fetch(url('/metrics'), { method: 'DELETE' })
  t.equal(del.status, 405)
  await del.body?.cancel()
})

t.test('a status function that throws gives a 500, and the server keeps serving', async (t) => {
  let fail = true
  const { url } = await start(t, () => {
    if (fail) throw new Error('role state is broken')
    return { ok: true }
  })
  const res = await fetch(url('/status'))
  t.equal(res.status, 500)
  t.match(await res.text(), /status failed: role state is broken/)
  fail = false
  t.same(await (await fetch(url('/status'))).json(), { ok: true })
})

t.test('GET /status adds the event-loop lag when given one; the status function’s fields stay', async (t) => {
  const registry = new Registry()
  const lag = new EventLoopLag()
  const server = await startStatusServer({
    registry,
    status: () => ({ name: 'w' }),
    log: silentLogger(),
    limits: LIMITS_DEFAULT,
    eventLoopLag: lag,
  })
  t.teardown(async () => {
    lag.stop()
    await server.close()
  })
  for (let i = 0; i < 3; i++) await sleepOn(new RealClock(), 5) // a few of this process's timers
  const s = (await (await fetch(`http://127.0.0.1:${server.port}/status`)).json()) as Record<string, unknown>
  t.equal(s.name, 'w')
  const l = s.event_loop_lag as Record<string, number>
  t.match(l, { window_ms: 10_000 })
  t.ok(l.samples! > 0 && l.p50_ms! >= 0 && l.p99_ms! >= l.p50_ms! && l.max_ms! >= l.p99_ms!, JSON.stringify(l))
})

t.test('close stops listening', async (t) => {
  const registry = new Registry()
  const server = await startStatusServer({ registry, status: () => ({}), log: silentLogger(), limits: LIMITS_DEFAULT })
  t.ok(server.port > 0)
  await server.close()
  await t.rejects(fetch(`http://127.0.0.1:${server.port}/status`), 'nothing answers after close')
})

t.test('hostile request lines get a 400, as plain requests and as upgrades, and the server keeps serving', async (t) => {
  const { server, url } = await start(t, () => ({ ok: true }))
  for (const target of ['http://x:99999/', 'http://[/', '//x:99999/', 'http://%zz/', '*']) {
    for (const upgrade of [false, true]) {
      const answer = await rawExchange(t, server.port, requestBytes({ target, upgrade }))
      t.equal(answer.status, 400, `${target}${upgrade ? ' (upgrade)' : ''}: 400`)
      t.match(answer.text, /is not a path/)
    }
  }
  const absolute = await rawExchange(t, server.port, requestBytes({ target: 'http://127.0.0.1/status' }))
  t.equal(absolute.status, 400, 'only the origin form is served')
  const escape = await rawExchange(t, server.port, requestBytes({ target: '/status%E0%A4%A' }))
  t.equal(escape.status, 404, 'a malformed escape in the path is just an unknown path')
  t.same(await (await fetch(url('/status'))).json(), { ok: true }, 'still serves')
})

t.test('headers over http_header_bytes_max get 431', async (t) => {
  const { server, url } = await start(t, () => ({ ok: true }), { ...LIMITS_DEFAULT, http_header_bytes_max: 8 * 1024 })
  const answer = await rawExchange(t, server.port, requestBytes({ target: '/status', extraHeaders: [`X-Pad: ${'a'.repeat(100 * 1024)}`] }))
  t.equal(answer.status, 431)
  const under = await rawExchange(t, server.port, requestBytes({ target: '/status', extraHeaders: [`X-Pad: ${'a'.repeat(4 * 1024)}`] }))
  t.equal(under.status, 200, 'headers under the limit are served')
  t.same(await (await fetch(url('/status'))).json(), { ok: true }, 'still serves')
})

t.test('a connection whose headers never finish is closed after http_headers_timeout_ms', async (t) => {
  const { server, url } = await start(t, () => ({ ok: true }), {
    ...LIMITS_DEFAULT,
    http_headers_timeout_ms: 300,
    http_request_timeout_ms: 600,
  })
  const slow = silentConnection(t, server.port, 'GET /status HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ')
  const idle = silentConnection(t, server.port)
  const [slowAnswer, idleAnswer] = await Promise.all([slow.answer, idle.answer])
  t.ok(slowAnswer.closed, 'the slow-header connection was closed by the server')
  t.equal(slowAnswer.status, 408)
  t.ok(idleAnswer.closed, 'a connection that sends nothing is closed too')
  t.same(await (await fetch(url('/status'))).json(), { ok: true }, 'still serves')
})

t.test('at most http_connections_max connections are open; the server serves again once they go', async (t) => {
  const { server, url } = await start(t, () => ({ ok: true }), { ...LIMITS_DEFAULT, http_connections_max: 4 })
  const held = []
  for (let i = 0; i < 4; i++) {
    const c = silentConnection(t, server.port)
    await new Promise((resolve) => c.socket.once('connect', resolve))
    held.push(c)
  }
  // The server accepts connections in the order they arrive, so the fifth finds the four counted.
  const over = await rawExchange(t, server.port, requestBytes({ target: '/status' }))
  t.equal(over.status, null, 'the fifth connection is dropped unanswered')
  t.ok(over.closed)
  for (const c of held) c.socket.destroy()
  await Promise.all(held.map((c) => c.answer))
  let answered = false
  for (let i = 0; i < 50 && !answered; i++) {
    const r = await rawExchange(t, server.port, requestBytes({ target: '/status' }))
    answered = r.status === 200
    if (!answered) await new Promise((r) => setTimeout(r, 20))
  }
  t.ok(answered, 'answers again once the held connections closed')
  t.same(await (await fetch(url('/status'))).json(), { ok: true })
})
