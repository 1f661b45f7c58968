/**
 * The controller's control endpoint (with its switch port) against hostile requests, sent
 * as raw bytes to the real server: request targets Node passes through but `new URL`
 * throws on, malformed %-escapes, a relayed message that is not a request, oversize and
 * never-finishing headers, the raw secret as a token. Each must get a clear 4xx, and the
 * controller (this test's process) must keep serving.
 */
import t from 'tap'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import WebSocket from 'ws'
import { startControlApi, type ControlApi } from '../../scripts/controller/control-api.js'
import { LabController } from '../../scripts/controller/lab-controller.js'
import { httpAuthorization } from '../../shared/http-bearer.js'
import { silentLogger } from '../../shared/log.js'
import { DEFAULT_TOPOLOGY_FILE, type Limits } from '../../shared/topology.js'
import { connectPeer } from '../../shared/transport/peer-client.js'
import { rawExchange, requestBytes, silentConnection } from './raw-http.js'

type TapTest = Parameters<Parameters<typeof t.test>[0]>[0]

interface Lab {
  controller: LabController
  api: ControlApi
  base: string
  auth: string
}

const HOSTILE_TARGETS = ['http://x:99999/', 'http://[/', '//x:99999/', 'http://%zz/']

/** A controller that has spawned nothing, with its control API, on a topology with `limits` changed. */
async function startLab(t: TapTest, limits: Partial<Limits> = {}): Promise<Lab> {
  const dir = mkdtempSync(join(tmpdir(), 'hvlab-control-hostile-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const topology = JSON.parse(readFileSync(DEFAULT_TOPOLOGY_FILE, 'utf8')) as { limits?: Partial<Limits> }
  topology.limits = { ...topology.limits, ...limits }
  const topologyFile = join(dir, 'topology-under-test.json')
  writeFileSync(topologyFile, JSON.stringify(topology))
  const controller = await LabController.create({ dir: join(dir, 'lab'), topologyFile, log: silentLogger() })
  t.teardown(() => controller.down())
  const api = await startControlApi(controller, { log: silentLogger(), onDown: () => {} })
  t.teardown(() => api.close())
  return { controller, api, base: `http://127.0.0.1:${api.port}`, auth: httpAuthorization(controller.secret) }
}

async function errorOf(res: Response): Promise<{ status: number; code: string; message: string }> {
  const body = (await res.json()) as { error: { code: string; message: string } }
  return { status: res.status, code: body.error.code, message: body.error.message }
}

async function stillServes(t: TapTest, lab: Lab): Promise<void> {
  const res = await fetch(`${lab.base}/v1/status`, { headers: { authorization: lab.auth } })
  t.equal(res.status, 200, 'a good request is still answered')
  t.equal(((await res.json()) as { lab: { name: string } }).lab.name, 'two-site')
}

t.test('request targets new URL throws on: 401 without the token, 400 with it, as plain requests and as upgrades', async (t) => {
  const lab = await startLab(t)
  for (const target of HOSTILE_TARGETS) {
    for (const upgrade of [false, true]) {
      const what = `${target}${upgrade ? ' (upgrade)' : ''}`
      const anonymous = await rawExchange(t, lab.api.port, requestBytes({ target, upgrade }))
      t.equal(anonymous.status, 401, `${what} without the token: 401, before the target is read`)
      const authorized = await rawExchange(t, lab.api.port, requestBytes({ target, upgrade, authorization: lab.auth }))
      t.equal(authorized.status, 400, `${what} with the token: 400`)
      t.match(authorized.text, /is not a path/)
      if (!upgrade) t.match(authorized.text, /HVLAB_E_USAGE/, 'the control API says it with its usage code')
    }
  }
  await stillServes(t, lab)
})

t.test('a client that resets a refused upgrade does not end the controller', async (t) => {
  const lab = await startLab(t)
  const targets = [...HOSTILE_TARGETS, '/v1/switch']
  for (let i = 0; i < 20; i++) {
    const { socket } = silentConnection(t, lab.api.port, requestBytes({ target: targets[i % targets.length]!, upgrade: true }))
    socket.once('connect', () => socket.resetAndDestroy())
  }
  await new Promise((r) => setTimeout(r, 200))
  await stillServes(t, lab)
})

t.test('a malformed %-escape in a process name is a usage error (400)', async (t) => {
  const lab = await startLab(t)
  for (const route of ['kill', 'restart', 'request']) {
    const res = await fetch(`${lab.base}/v1/processes/%E0%A4%A/${route}`, {
      method: 'POST',
      headers: { authorization: lab.auth, 'content-type': 'application/json' },
      body: route === 'request' ? JSON.stringify({ message: { t: 'ok' } }) : '{}',
    })
    t.match(await errorOf(res), { status: 400, code: 'HVLAB_E_USAGE', message: /malformed %-escape/ }, route)
  }
  const raw = await rawExchange(
    t,
    lab.api.port,
    `POST /v1/processes/%zz/kill HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: ${lab.auth}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`,
  )
  t.equal(raw.status, 400, '%zz too')
  await stillServes(t, lab)
})

t.test('relaying a message the process does not answer as a request is a usage error (400)', async (t) => {
  const lab = await startLab(t)
  // Play host-a1: connect to the controller's peer port with the lab's secret, answer no requests.
  const host = await connectPeer({
    endpoint: { host: '127.0.0.1', port: lab.controller.peerPort },
    name: 'host-a1',
    role: 'host',
    secret: lab.controller.secret,
    log: silentLogger(),
  })
  t.teardown(() => host.terminate())
  host.start()
  const relay = (message: unknown): Promise<Response> =>
    fetch(`${lab.base}/v1/processes/host-a1/request`, {
      method: 'POST',
      headers: { authorization: lab.auth, 'content-type': 'application/json' },
      body: JSON.stringify({ message, timeout_ms: 5_000 }),
    })
  t.match(await errorOf(await relay({ t: 'ok' })), { status: 400, code: 'HVLAB_E_USAGE', message: /host-a1 refused ok/ }, 'a reply type')
  t.match(await errorOf(await relay({ t: 'peers-report', connected: [] })), { status: 400, code: 'HVLAB_E_USAGE' }, 'a one-way message')
  t.match(
    await errorOf(await relay({ t: 'no-such-type' })),
    { status: 400, code: 'HVLAB_E_USAGE' },
    'an unknown type is refused before it is sent',
  )
  t.ok(host.isOpen, 'the process stays connected')
  await stillServes(t, lab)
})

t.test('100 KiB of headers get 431', async (t) => {
  const lab = await startLab(t)
  for (const upgrade of [false, true]) {
    const answer = await rawExchange(
      t,
      lab.api.port,
      requestBytes({ target: '/v1/status', upgrade, authorization: lab.auth, extraHeaders: [`X-Pad: ${'a'.repeat(100 * 1024)}`] }),
    )
    t.equal(answer.status, 431, upgrade ? 'an upgrade' : 'a plain request')
  }
  await stillServes(t, lab)
})

t.test('a connection whose headers never finish is closed after http_headers_timeout_ms', async (t) => {
  const lab = await startLab(t, { http_headers_timeout_ms: 300, http_request_timeout_ms: 600 })
  const slow = Array.from({ length: 5 }, () =>
    silentConnection(t, lab.api.port, `GET /v1/status HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: ${lab.auth}\r\nX-Slow: `),
  )
  const answers = await Promise.all(slow.map((c) => c.answer))
  t.ok(
    answers.every((a) => a.closed),
    'every slow-header connection was closed by the controller',
  )
  t.same(
    answers.map((a) => a.status),
    [408, 408, 408, 408, 408],
  )
  await stillServes(t, lab)
})

t.test('a request whose body never finishes is closed after http_request_timeout_ms', async (t) => {
  const lab = await startLab(t, { http_headers_timeout_ms: 300, http_request_timeout_ms: 600 })
  const head = `POST /v1/heal HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: ${lab.auth}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"`
  const slow = silentConnection(t, lab.api.port, head)
  const answer = await slow.answer
  t.ok(answer.closed, 'the slow-body connection was closed by the controller')
  t.equal(answer.status, 408, 'with 408 Request Timeout')
  await stillServes(t, lab)
})

t.test('the switch port takes the derived token, not the raw secret', async (t) => {
  const lab = await startLab(t)
  const open = (authorization: string): Promise<number> =>
    new Promise((resolve) => {
      const ws = new WebSocket(`ws://127.0.0.1:${lab.api.port}/v1/switch`, { headers: { authorization } })
      ws.once('open', () => {
        ws.close()
        resolve(101)
      })
      ws.once('unexpected-response', (_req, res) => {
        res.resume()
        resolve(res.statusCode ?? 0)
      })
      ws.once('error', () => resolve(0))
    })
  t.equal(await open(`Bearer ${lab.controller.secret}`), 401, 'the raw secret is refused')
  t.equal(await open(lab.auth), 101, 'the derived token opens the switch')
})
