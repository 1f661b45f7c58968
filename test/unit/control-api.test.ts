/**
 * The controller's HTTP control API, in-process: a LabController that listens but has
 * spawned nothing (startAll is never called), driven with fetch.
 */
import t from 'tap'
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startControlApi, type ControlApi } from '../../scripts/controller/control-api.js'
import { ControlClient } from '../../scripts/cli/control-client.js'
import { HvlabError, describeError } from '../../shared/errors.js'
import { LabController, type LabStatus } from '../../scripts/controller/lab-controller.js'
import { readRunningControl } from '../../scripts/controller/control-file.js'
import type { TimelineEvent } from '../../shared/timeline/events.js'
import { httpAuthorization } from '../../shared/http-bearer.js'
import { labLayout, rotatedPaths } from '../../shared/lab-layout.js'
import { silentLogger } from '../../shared/log.js'
import { DEFAULT_TOPOLOGY_FILE } from '../../shared/topology.js'
import type { LinkRow } from '../../scripts/controller/link-table.js'

/** A test's own event: a kind no process emits (the timeline stores any), so it is cast past the declared union. */
const stored = (e: { at_ms: number; kind: string; source: string; details: Record<string, unknown> }) =>
  e as unknown as Omit<TimelineEvent, 'seq'>

interface Teardown {
  teardown(fn: () => unknown): void
}

interface Lab {
  dir: string
  controller: LabController
  api: ControlApi
  base: string
  auth: string
  downs: number
  /** fetch with the lab's secret; `init.headers` may override it. */
  call(path: string, init?: RequestInit): Promise<Response>
  post(path: string, body?: unknown): Promise<Response>
}

async function startLab(t: Teardown): Promise<Lab> {
  const dir = mkdtempSync(join(tmpdir(), 'hvlab-control-api-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const controller = await LabController.create({ dir, topologyFile: DEFAULT_TOPOLOGY_FILE, log: silentLogger() })
  t.teardown(() => controller.down())
  const lab: Partial<Lab> & { downs: number } = { dir, controller, downs: 0 }
  const api = await startControlApi(controller, { log: silentLogger(), onDown: () => void (lab.downs += 1) })
  t.teardown(() => api.close())
  const base = `http://127.0.0.1:${api.port}`
  const auth = httpAuthorization(controller.secret)
  const call = (path: string, init: RequestInit = {}): Promise<Response> =>
    fetch(base + path, { ...init, headers: { authorization: auth, ...(init.headers as Record<string, string> | undefined) } })
  const post = (path: string, body: unknown = {}): Promise<Response> =>
    call(path, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: typeof body === 'string' ? body : JSON.stringify(body),
    })
  return Object.assign(lab, { api, base, auth, call, post }) as Lab
}

async function errorOf(res: Response): Promise<{ status: number; code: string; message: string }> {
  const body = (await res.json()) as { error: { code: string; message: string } }
  return { status: res.status, code: body.error.code, message: body.error.message }
}

async function status(lab: Lab): Promise<LabStatus> {
  const res = await lab.call('/v1/status')
  if (res.status !== 200) throw new Error(`GET /v1/status answered ${res.status}: ${await res.text()}`)
  return (await res.json()) as LabStatus
}

t.test('every request needs the lab secret', async (t) => {
  const lab = await startLab(t)
  const noAuth = await fetch(`${lab.base}/v1/status`)
  t.match(await errorOf(noAuth), { status: 401, code: 'HVLAB_E_AUTH', message: /secret/ }, 'no Authorization header')
  const wrong = await lab.call('/v1/status', { headers: { authorization: `Bearer ${'0'.repeat(64)}` } })
  t.match(await errorOf(wrong), { status: 401, code: 'HVLAB_E_AUTH' }, 'wrong secret of the right length')
  const short = await lab.call('/v1/status', { headers: { authorization: 'Bearer x' } })
  t.match(await errorOf(short), { status: 401, code: 'HVLAB_E_AUTH' }, 'wrong secret of another length')
  const bare = await lab.call('/v1/status', { headers: { authorization: lab.auth.slice('Bearer '.length) } })
  t.match(await errorOf(bare), { status: 401, code: 'HVLAB_E_AUTH' }, 'the token without "Bearer "')
  const rawSecret = await lab.call('/v1/status', { headers: { authorization: `Bearer ${lab.controller.secret}` } })
  t.match(
    await errorOf(rawSecret),
    { status: 401, code: 'HVLAB_E_AUTH' },
    'the raw secret is not the token: only the token derived from it is',
  )
  t.not(lab.auth, `Bearer ${lab.controller.secret}`)
  t.equal((await status(lab)).lab.name, 'two-site', 'the derived token is')
  const unauthDown = await fetch(`${lab.base}/v1/down`, { method: 'POST' })
  t.equal(unauthDown.status, 401, 'not even down without the secret')
  await unauthDown.body?.cancel()
  t.equal(lab.downs, 0)
  t.ok(existsSync(labLayout(lab.dir).secret))
})

t.test('GET /v1/status of a lab that has spawned nothing', async (t) => {
  const lab = await startLab(t)
  const s = await status(lab)
  t.match(s.lab, { name: 'two-site', dir: labLayout(lab.dir).root, controllerPid: process.pid, healthy: false, clusterFormed: false })
  t.type(s.lab.started_ms, 'number')
  t.same(s.partitions, [])
  t.same(
    s.processes.map((p) => p.name),
    ['host-a1', 'host-a2', 'host-b1', 'host-b2', 'witness', 'array-a', 'array-b'],
  )
  for (const p of s.processes) {
    t.match(
      p,
      { state: 'down', pid: null, uptime_ms: null, peers: [], blocked: [], peerPort: null, metricsPort: null, starts: 0, lastExit: null },
      `${p.name} is down`,
    )
  }
  const witness = s.processes.find((p) => p.name === 'witness')
  t.same(witness?.expectedPeers, ['host-a1', 'host-a2', 'host-b1', 'host-b2'])
  t.equal(witness?.role, 'witness')
  t.equal(witness?.site, 'site-c')
})

t.test('kill', async (t) => {
  const lab = await startLab(t)
  const notRunning = await errorOf(await lab.post('/v1/processes/host-a1/kill', { signal: 'KILL' }))
  t.match(
    notRunning,
    { status: 409, code: 'HVLAB_E_STATE', message: /host-a1 is not running.*hvlab restart host-a1/ },
    'a process that is not running',
  )
  t.match(
    await errorOf(await lab.post('/v1/processes/host-a1/kill')),
    { status: 409, code: 'HVLAB_E_STATE' },
    'an empty body defaults to KILL',
  )
  t.match(
    await errorOf(await lab.post('/v1/processes/host-z9/kill', { signal: 'KILL' })),
    { status: 404, code: 'HVLAB_E_NOT_FOUND', message: /host-z9.*known: host-a1/ },
    'an unknown process',
  )
  t.match(
    await errorOf(await lab.post('/v1/processes/host-a1/kill', { signal: 'HUP' })),
    { status: 400, code: 'HVLAB_E_USAGE', message: /signal/ },
    'an invalid signal',
  )
  t.match(
    await errorOf(await lab.post('/v1/processes/host-a1/kill', { signal: 'KILL', force: true })),
    { status: 400, code: 'HVLAB_E_USAGE', message: /force/ },
    'an extra body field',
  )
  t.match(
    await errorOf(await lab.post('/v1/processes/host-a1/kill', '{"signal":')),
    { status: 400, code: 'HVLAB_E_USAGE', message: /not JSON/ },
    'a body that is not JSON',
  )
  t.match(await errorOf(await lab.post('/v1/processes/host-a1/kill', [])), { status: 400, code: 'HVLAB_E_USAGE' }, 'an array body')
  t.match(
    await errorOf(await lab.post('/v1/processes/host-a1/kill', { signal: 'KILL', pad: 'x'.repeat(70 * 1024) })),
    { status: 400, code: 'HVLAB_E_USAGE', message: /over 65536 bytes/ },
    'a body over 64 KiB',
  )
  const s = await status(lab)
  t.ok(
    s.processes.every((p) => p.state === 'down' && p.starts === 0),
    'nothing was started or signalled',
  )
})

t.test('a body over 64 KiB without content-length is refused too', async (t) => {
  const lab = await startLab(t)
  const chunks = async function* () {
    for (let i = 0; i < 40; i++) yield new Uint8Array(4096).fill(0x20)
  }
  const res = await lab.call('/v1/heal', { method: 'POST', body: ReadableStream.from(chunks()), duplex: 'half' } as RequestInit)
  t.match(await errorOf(res), { status: 400, code: 'HVLAB_E_USAGE', message: /over 65536 bytes/ })
  t.same((await status(lab)).partitions, [], 'still answers afterwards')
})

t.test('a large body gets the 400, not a reset connection', async (t) => {
  const lab = await startLab(t)
  const body = JSON.stringify({ a: ['site-a'], b: ['site-b'], pad: 'x'.repeat(900 * 1024) })
  for (let i = 0; i < 5; i++) {
    t.match(
      await errorOf(await lab.post('/v1/partition', body)),
      { status: 400, code: 'HVLAB_E_USAGE', message: /over 65536 bytes/ },
      `attempt ${i + 1}`,
    )
  }
  t.same((await status(lab)).partitions, [], 'nothing was partitioned')
})

t.test('restart validates its body before starting anything', async (t) => {
  const lab = await startLab(t)
  t.match(await errorOf(await lab.post('/v1/processes/host-a1/restart', { now: true })), { status: 400, code: 'HVLAB_E_USAGE' })
  t.match(await errorOf(await lab.post('/v1/processes/nobody/restart')), { status: 404, code: 'HVLAB_E_NOT_FOUND' })
  t.equal((await status(lab)).processes.find((p) => p.name === 'host-a1')?.starts, 0)
})

t.test('partition and heal', async (t) => {
  const lab = await startLab(t)
  t.match(
    await errorOf(await lab.post('/v1/partition', { a: ['site-a'], b: ['site-q'] })),
    { status: 404, code: 'HVLAB_E_NOT_FOUND', message: /site-q.*known sites: site-a, site-b, site-c/ },
    'unknown site',
  )
  t.match(
    await errorOf(await lab.post('/v1/partition', { a: ['site-a'], b: ['host-a1', 'host-b1'] })),
    { status: 400, code: 'HVLAB_E_USAGE', message: /host-a1 cannot be on both sides/ },
    'overlapping sides',
  )
  t.match(await errorOf(await lab.post('/v1/partition', { a: [], b: ['site-b'] })), { status: 400, code: 'HVLAB_E_USAGE' }, 'an empty side')
  t.match(
    await errorOf(await lab.post('/v1/partition', { a: ['site-a'] })),
    { status: 400, code: 'HVLAB_E_USAGE', message: /\bb\b/ },
    'a missing side',
  )
  t.same((await status(lab)).partitions, [], 'refused partitions leave nothing behind')

  const res = await lab.post('/v1/partition', { a: ['site-a'], b: ['site-b', 'witness'] })
  t.equal(res.status, 200)
  const p = { a: ['array-a', 'host-a1', 'host-a2'], b: ['array-b', 'host-b1', 'host-b2', 'witness'] }
  t.same(await res.json(), { ...p, one_way: false }, 'sites expand to their processes, sorted')
  const s = await status(lab)
  t.same(s.partitions, [p])
  const blocked = Object.fromEntries(s.processes.map((x) => [x.name, x.blocked]))
  t.same(blocked, {
    'host-a1': p.b,
    'host-a2': p.b,
    'array-a': p.b,
    'host-b1': p.a,
    'host-b2': p.a,
    'array-b': p.a,
    witness: p.a,
  })

  const heal = await lab.post('/v1/heal')
  t.equal(heal.status, 200)
  t.same(await heal.json(), { ok: true })
  const healed = await status(lab)
  t.same(healed.partitions, [])
  t.ok(
    healed.processes.every((x) => x.blocked.length === 0),
    'nobody is blocked after heal',
  )
  const kinds = lab.controller.timeline.since().map((e) => e.kind)
  t.same(kinds, ['network.partitioned', 'network.healed'])
})

t.test('one-way partitions and link shaping: the table, who cannot connect, bad values refused, heal clears them', async (t) => {
  const lab = await startLab(t)
  const oneWay = await lab.post('/v1/partition', { a: ['host-a1'], b: ['host-a2'], one_way: true })
  t.same(await oneWay.json(), { a: ['host-a1'], b: ['host-a2'], one_way: true })
  const shaped = await lab.post('/v1/links', { a: ['host-a1'], b: ['site-b'], latency_ms: 20, jitter_ms: 5, mbit: 100 })
  t.equal(shaped.status, 200)
  const { links } = (await shaped.json()) as { links: LinkRow[] }
  const row = (from: string, to: string) => links.find((l) => l.from === from && l.to === to)
  t.same(row('host-a1', 'host-a2'), { from: 'host-a1', to: 'host-a2', latency_ms: 0, jitter_ms: 0, mbit: 0, loss: 0, cut: true })
  t.same(
    row('host-b1', 'host-a1'),
    { from: 'host-b1', to: 'host-a1', latency_ms: 20, jitter_ms: 5, mbit: 100, loss: 0, cut: false },
    'both ways',
  )
  t.equal(links.length, 1 + 2 * 3, 'one cut, and host-a1 with each of site-b’s three processes both ways')
  const s = await status(lab)
  t.same(s.partitions, [], 'a one-way cut is no both-way partition')
  t.same(s.processes.find((x) => x.name === 'host-a1')!.blocked, ['host-a2'], 'no new connection either way')
  t.same(s.processes.find((x) => x.name === 'host-a2')!.blocked, ['host-a1'])
  t.same(s.links, links)
  const usage = { status: 400, code: 'HVLAB_E_USAGE' }
  for (const [body, refusal] of [
    [
      { a: ['host-a1'], b: ['host-a2'], loss: 0.9 },
      { ...usage, message: /--loss must be a number from 0 to 0.5, got 0.9/ },
    ],
    [
      { a: ['host-a1'], b: ['host-a2'], latency_ms: -1 },
      { ...usage, message: /--latency-ms must be a number from 0 to 10000/ },
    ],
    [
      { a: ['host-a1'], b: ['host-a1'] },
      { ...usage, message: /cannot be on both sides of a link/ },
    ],
    [
      { a: ['host-a1'], b: ['host-a2'], mbit: '100' },
      { ...usage, message: /mbit/ },
    ],
    [
      { a: ['host-a1'], b: ['host-z9'] },
      { status: 404, code: 'HVLAB_E_NOT_FOUND', message: /host-z9 is neither a process nor a site/ },
    ],
  ] as const) {
    t.match(await errorOf(await lab.post('/v1/links', body)), refusal, JSON.stringify(body))
  }
  t.same(((await (await lab.call('/v1/links')).json()) as { links: LinkRow[] }).links, links, 'refused requests changed nothing')
  const reset = await lab.post('/v1/link-reset', { a: ['host-a1'], b: ['site-c'] })
  t.same(await reset.json(), { a: ['host-a1'], b: ['witness'] }, 'a reset between two sides')
  t.match(lab.controller.timeline.since().at(-1), { kind: 'network.reset', details: { a: ['host-a1'], b: ['witness'] } })
  t.match(await errorOf(await lab.post('/v1/link-reset', { a: ['host-a1'], b: [] })), usage, 'an empty side')
  t.match(await errorOf(await lab.post('/v1/link-reset', { a: ['host-a1'], b: ['site-a'] })), {
    ...usage,
    message: /cannot be on both sides of a reset/,
  })
  await lab.post('/v1/heal')
  const healed = await status(lab)
  t.same(healed.links, [], 'heal clears link faults')
  t.ok(healed.processes.every((x) => x.blocked.length === 0))
  t.match(lab.controller.timeline.since().at(-1), { kind: 'network.healed', details: { partitionsRemoved: 0, linksCleared: 7 } })
})

t.test('POST /v1/partition-shape and /v1/sites/SITE/kill: shapes join the partition list, bad input refused', async (t) => {
  const lab = await startLab(t)
  const isolate = await lab.post('/v1/partition-shape', { shape: 'isolate', isolate: 'witness' })
  t.equal(isolate.status, 200)
  t.match(await isolate.json(), {
    shape: 'isolate',
    cuts: [{ a: ['witness'], b: ['array-a', 'array-b', 'host-a1', 'host-a2', 'host-b1', 'host-b2'] }],
  })
  const ring = (await (await lab.post('/v1/partition-shape', { shape: 'ring', seed: 9 })).json()) as { seed: number; cuts: unknown[] }
  t.equal(ring.seed, 9, 'the seed given is the seed used')
  t.same((await status(lab)).partitions.length, 1 + ring.cuts.length, 'every cut is in the partition list')
  const usage = { status: 400, code: 'HVLAB_E_USAGE' }
  for (const [path, body, refusal] of [
    ['/v1/partition-shape', { shape: 'star' }, usage],
    ['/v1/partition-shape', { shape: 'isolate', isolate: 'host-z9' }, { ...usage, message: /--isolate needs a process of the lab/ }],
    ['/v1/partition-shape', { shape: 'halves', seed: -1 }, usage],
    [
      '/v1/sites/site-q/kill',
      {},
      { status: 404, code: 'HVLAB_E_NOT_FOUND', message: /no site named site-q; known: site-a, site-b, site-c/ },
    ],
    ['/v1/sites/site-b/kill', { signal: 'HUP' }, usage],
    ['/v1/sites/site-b/kill', {}, { status: 409, code: 'HVLAB_E_STATE', message: /no process of site site-b can take SIGKILL now/ }],
  ] as const) {
    t.match(await errorOf(await lab.post(path, body)), refusal, `${path} ${JSON.stringify(body)}`)
  }
  await lab.post('/v1/heal')
  t.same((await status(lab)).partitions, [], 'heal removes the shaped cuts too')
})

t.test('POST /v1/processes/NAME/clock: the skew is kept and shown, bad values refused, zeros clear it', async (t) => {
  const lab = await startLab(t)
  const set = await lab.post('/v1/processes/host-a1/clock', { offset_ms: 300, drift: 0.01 })
  t.equal(set.status, 200)
  t.same(await set.json(), { offset_ms: 300, drift: 0.01 })
  t.same((await status(lab)).processes.find((p) => p.name === 'host-a1')!.clockSkew, { offset_ms: 300, drift: 0.01 })
  t.equal((await status(lab)).processes.find((p) => p.name === 'host-a2')!.clockSkew, null, 'the others keep the real clock')
  const usage = { status: 400, code: 'HVLAB_E_USAGE' }
  for (const [path, body, refusal] of [
    ['/v1/processes/host-a1/clock', { drift: 0.95 }, { ...usage, message: /--drift must be a number from -0.9 to 0.9, got 0.95/ }],
    ['/v1/processes/host-a1/clock', { offset_ms: -700_000 }, { ...usage, message: /--offset-ms must be a number from -600000/ }],
    ['/v1/processes/host-a1/clock', { offset_ms: 'soon' }, { ...usage, message: /offset_ms/ }],
    ['/v1/processes/host-z9/clock', { offset_ms: 1 }, { status: 404, code: 'HVLAB_E_NOT_FOUND', message: /no process named host-z9/ }],
  ] as const) {
    t.match(await errorOf(await lab.post(path, body)), refusal, `${path} ${JSON.stringify(body)}`)
  }
  t.same(
    (await status(lab)).processes.find((p) => p.name === 'host-a1')!.clockSkew,
    { offset_ms: 300, drift: 0.01 },
    'refusals changed nothing',
  )
  await lab.post('/v1/processes/host-a1/clock', {})
  t.equal((await status(lab)).processes.find((p) => p.name === 'host-a1')!.clockSkew, null, 'no options: cleared')
  t.same(
    lab.controller.timeline
      .since()
      .filter((e) => e.kind === 'clock.set')
      .map((e) => e.details),
    [
      { process: 'host-a1', offset_ms: 300, drift: 0.01 },
      { process: 'host-a1', offset_ms: 0, drift: 0 },
    ],
  )
})

t.test('GET /v1/events', async (t) => {
  const lab = await startLab(t)
  for (let i = 0; i < 5; i++)
    lab.controller.timeline.append(stored({ at_ms: 1000 + i, kind: 'test.event', source: 'test', details: { i } }))
  const read = async (path: string): Promise<TimelineEvent[]> => {
    const res = await lab.call(path)
    t.equal(res.headers.get('content-type'), 'application/x-ndjson')
    const text = await res.text()
    t.ok(text === '' || text.endsWith('\n'), 'every line ends with a newline')
    return text
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as TimelineEvent)
  }
  const all = await read('/v1/events')
  t.same(
    all.map((e) => e.seq),
    [1, 2, 3, 4, 5],
    'in seq order',
  )
  t.same(all[2], { seq: 3, at_ms: 1002, kind: 'test.event', source: 'test', details: { i: 2 } })
  t.same(
    (await read('/v1/events?after=3')).map((e) => e.seq),
    [4, 5],
    'after filters',
  )
  t.same(await read('/v1/events?after=5'), [], 'nothing after the newest')
  t.same(
    (await read('/v1/events?limit=2')).map((e) => e.seq),
    [4, 5],
    'limit keeps the newest',
  )
  t.match(await errorOf(await lab.call('/v1/events?after=-1')), { status: 400, code: 'HVLAB_E_USAGE', message: /after/ })
  t.match(await errorOf(await lab.call('/v1/events?limit=abc')), { status: 400, code: 'HVLAB_E_USAGE', message: /limit/ })
})

t.test('GET /v1/events?follow=1 streams new events', { timeout: 20_000 }, async (t) => {
  const lab = await startLab(t)
  lab.controller.timeline.append(stored({ at_ms: 1, kind: 'test.old', source: 'test', details: {} }))
  const abort = new AbortController()
  t.teardown(() => abort.abort())
  const res = await lab.call('/v1/events?after=0&follow=1', { signal: abort.signal })
  t.equal(res.status, 200)
  const lines = ndjsonLines(res)
  t.match(JSON.parse((await lines.next()).value as string), { seq: 1, kind: 'test.old' })
  lab.controller.timeline.append(stored({ at_ms: 2, kind: 'test.new', source: 'test', details: { x: 1 } }))
  t.match(JSON.parse((await lines.next()).value as string), { seq: 2, kind: 'test.new', details: { x: 1 } })

  const quiet = new AbortController()
  t.teardown(() => quiet.abort())
  const waiting = await lab.call('/v1/events?after=2&follow=1', { signal: quiet.signal })
  t.equal(waiting.status, 200, 'headers arrive even with nothing to send yet')
  const quietLines = ndjsonLines(waiting)
  lab.controller.timeline.append(stored({ at_ms: 3, kind: 'test.newer', source: 'test', details: {} }))
  t.match(JSON.parse((await quietLines.next()).value as string), { seq: 3, kind: 'test.newer' })
  t.match(JSON.parse((await lines.next()).value as string), { seq: 3 }, 'every follower gets it')

  // A follower that goes away is forgotten (no writes to dead sockets, no leak).
  const followers = (lab.controller.timeline as unknown as { followers: Set<unknown> }).followers
  t.equal(followers.size, 2)
  quiet.abort()
  abort.abort()
  while (followers.size > 0) await new Promise((r) => setTimeout(r, 5))
  t.equal(followers.size, 0, 'both followers removed after their clients left')
})

t.test('unknown routes', async (t) => {
  const lab = await startLab(t)
  t.match(await errorOf(await lab.call('/v1/nothing')), { status: 404, code: 'HVLAB_E_NOT_FOUND', message: /GET \/v1\/nothing/ })
  t.match(await errorOf(await lab.post('/v1/status')), { status: 404, code: 'HVLAB_E_NOT_FOUND' }, 'wrong method')
  t.match(await errorOf(await lab.call('/v1/processes/host-a1/kill')), { status: 404, code: 'HVLAB_E_NOT_FOUND' }, 'GET on a POST route')
  t.match(await errorOf(await lab.post('/v1/processes/a/b/kill')), { status: 404, code: 'HVLAB_E_NOT_FOUND' })
})

t.test('POST /v1/down stops the lab and removes the control file', async (t) => {
  const lab = await startLab(t)
  const layout = labLayout(lab.dir)
  await lab.controller.writeControlFile(lab.api.port)
  t.ok(existsSync(layout.control))
  t.same(readRunningControl(layout), {
    pid: process.pid,
    httpPort: lab.api.port,
    peerPort: lab.controller.peerPort,
    topology: 'two-site',
    started_ms: lab.controller.started_ms,
  })
  t.match(await errorOf(await lab.post('/v1/down', { now: 1 })), { status: 400, code: 'HVLAB_E_USAGE' }, 'down validates its body')
  t.ok(existsSync(layout.control), 'a refused down changes nothing')
  const res = await lab.post('/v1/down')
  t.equal(res.status, 200)
  t.same(await res.json(), { ok: true })
  t.equal(lab.downs, 1, 'onDown called once')
  t.notOk(existsSync(layout.control), 'control.json removed')
  t.equal(readRunningControl(layout), undefined)
  const kinds = lab.controller.timeline.since().map((e) => e.kind)
  t.same(kinds, ['lab.stopping', 'lab.stopped'])
  const events = rotatedPaths(layout.events)
    .flatMap((f) => readFileSync(f, 'utf8').trim().split('\n'))
    .map((l) => (JSON.parse(l) as TimelineEvent).kind)
  t.same(events, kinds, 'the timeline file has the same events')
})

t.test('the data dir: secret mode 0600, reuse, and one lab per dir', async (t) => {
  const lab = await startLab(t)
  const layout = labLayout(lab.dir)
  t.equal(statSync(layout.secret).mode & 0o777, 0o600, 'the secret is mode 0600')
  t.match(readFileSync(layout.secret, 'utf8'), /^[0-9a-f]{64}\n$/)
  t.equal(readFileSync(layout.secret, 'utf8').trim(), lab.controller.secret)
  t.equal(statSync(layout.control, { throwIfNoEntry: false }), undefined, 'no control file until writeControlFile')
  t.same(
    JSON.parse(readFileSync(layout.topology, 'utf8')),
    JSON.parse(readFileSync(DEFAULT_TOPOLOGY_FILE, 'utf8')),
    'a copy of the topology',
  )

  await lab.controller.writeControlFile(lab.api.port)
  t.equal(statSync(layout.control).mode & 0o777, 0o600, 'the control file is mode 0600')
  await t.rejects(LabController.create({ dir: lab.dir, topologyFile: DEFAULT_TOPOLOGY_FILE, log: silentLogger() }), {
    name: 'HvlabError',
    code: 'HVLAB_E_STATE',
    message: new RegExp(`already running in ${escape(layout.root)} \\(controller pid ${process.pid}\\).*hvlab down --dir`),
  })
  t.equal(readFileSync(layout.secret, 'utf8').trim(), lab.controller.secret, 'the refused create left the secret alone')

  // Once it is down, the dir can be used again, with the same secret (tightened to 0600).
  await lab.controller.down()
  chmodSync(layout.secret, 0o644)
  const again = await LabController.create({ dir: lab.dir, topologyFile: DEFAULT_TOPOLOGY_FILE, log: silentLogger() })
  t.teardown(() => again.down())
  t.equal(again.secret, lab.controller.secret, 'the secret is kept')
  t.equal(statSync(layout.secret).mode & 0o777, 0o600, 'and made 0600 again')
})

t.test('a stale control file does not block a new lab; a broken secret is replaced', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'hvlab-control-api-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const layout = labLayout(dir)
  const first = await LabController.create({ dir, log: silentLogger() })
  await first.down()
  writeFileSync(layout.control, JSON.stringify({ pid: 2 ** 22 + 17, httpPort: 1, peerPort: 2, topology: 'two-site', started_ms: 0 }))
  writeFileSync(layout.secret, 'not a secret\n')
  const second = await LabController.create({ dir, log: silentLogger() })
  t.teardown(() => second.down())
  t.match(second.secret, /^[0-9a-f]{64}$/)
  t.not(second.secret, first.secret)
  t.equal(statSync(layout.secret).mode & 0o777, 0o600)
})

t.test('a missing or invalid topology file is refused before anything is written', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'hvlab-control-api-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  await t.rejects(LabController.create({ dir, topologyFile: join(dir, 'nope.json'), log: silentLogger() }), { code: 'HVLAB_E_TOPOLOGY' })
  t.notOk(existsSync(labLayout(dir).secret))
})

t.test(
  "a process's refusal, relayed: the status by its code's family, the origin and the finer code in the body, and the CLI's client rebuilds the error",
  async (t) => {
    const lab = await startLab(t)
    const refusals = [
      new HvlabError(
        'HVLAB_E_NO_QUORUM',
        'the cluster has no coordinator with quorum right now (host-a1 sees epoch 3); retry when `hvlab cluster status` shows quorum HELD',
        { origin: 'host-a1' },
      ),
      new HvlabError(
        'HVLAB_E_FENCED',
        'write to volume v by host h1 refused: it carries reservation epoch 2 but the volume is reserved at epoch 3 (host h2)',
        { origin: 'array-a' },
      ),
      new HvlabError('HVLAB_E_STATE', 'cannot move vm web1 to host-b1: it is stopped', { origin: 'host-a1' }),
    ]
    let next = 0
    lab.controller.relay = async () => {
      throw refusals[next++]
    }
    for (const r of refusals) {
      const res = await lab.post('/v1/processes/host-a1/request', { message: { t: 'role-list-request', forwarded: false } })
      const body = (await res.json()) as { error: Record<string, unknown> }
      t.equal(res.status, 409, `${r.wireCode}: 409, as for its family ${r.code}`)
      t.same(
        body.error,
        { code: r.code, message: r.message, origin: r.origin, ...(r.detail ? { detail: r.detail } : {}) },
        `${r.wireCode}: the body`,
      )
    }
    next = 0
    const client = new (ControlClient as unknown as new (base: string, auth: string) => ControlClient)(lab.base, lab.auth) // forDir wants a running lab's control file
    for (const r of refusals) {
      const e = await client.request('host-a1', { t: 'role-list-request', forwarded: false }, 'role-list-reply').then(
        () => undefined,
        (err: unknown) => err,
      )
      t.ok(
        e instanceof HvlabError && e.code === r.code && e.detail === r.detail && e.origin === r.origin && e.message === r.message,
        `${r.wireCode}: rebuilt as raised`,
      )
      t.equal(describeError(e), `${r.origin}: ${r.message}`, 'and printed as before: origin: message')
    }
  },
)

async function* ndjsonLines(res: Response): AsyncGenerator<string> {
  const decoder = new TextDecoder()
  let pending = ''
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
    pending += decoder.decode(chunk, { stream: true })
    let nl: number
    while ((nl = pending.indexOf('\n')) >= 0) {
      yield pending.slice(0, nl)
      pending = pending.slice(nl + 1)
    }
  }
}

function escape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
}
