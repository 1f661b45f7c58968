import t from 'tap'
import { Counter, Registry } from 'prom-client'
import { silentLogger } from '../../shared/log.js'
import { startStatusServer, type StatusServer } from '../../shared/status-server.js'

interface Teardown {
  teardown(fn: () => unknown): void
}

async function start(t: Teardown, status: () => unknown): Promise<{ server: StatusServer; url: (path: string) => string; registry: Registry }> {
  const registry = new Registry()
  const requests = new Counter({ name: 'hvlab_test_requests_total', help: 'Test counter', registers: [registry] })
  requests.inc(3)
  const server = await startStatusServer({ registry, status, log: silentLogger() })
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

t.test('close stops listening', async (t) => {
  const registry = new Registry()
  const server = await startStatusServer({ registry, status: () => ({}), log: silentLogger() })
  t.ok(server.port > 0)
  await server.close()
  await t.rejects(fetch(`http://127.0.0.1:${server.port}/status`), 'nothing answers after close')
})
