/**
 * GET /v1/events as event-stream.ts serves it, on a real HTTP server (port 0) over an
 * in-memory timeline: the cap on followers, a follower that does not read cut off once its
 * unsent bytes pass the limit (with a last line saying why), a backlog sent only as fast as
 * the client takes it, and `hvlab events --follow` printing the reason it was cut, exit 1;
 * then the control API's route with a topology's limit.
 */
import t from 'tap'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createServer, get, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { type CliIo, runHvlab } from '../../scripts/cli/run-hvlab.js'
import { startControlApi } from '../../scripts/controller/control-api.js'
import { EventStreams, type EventStreamLimits } from '../../scripts/controller/event-stream.js'
import { LabController } from '../../scripts/controller/lab-controller.js'
import { Timeline, type TimelineEvent } from '../../scripts/controller/timeline.js'
import { httpAuthorization } from '../../shared/http-bearer.js'
import { silentLogger } from '../../shared/log.js'
import { DEFAULT_TOPOLOGY_FILE } from '../../shared/topology.js'

interface Teardown {
  teardown(fn: () => unknown): void
}

interface EventServer {
  port: number
  timeline: Timeline
  streams: EventStreams
  /** Every response the server has served, oldest first. */
  responses: ServerResponse[]
  /** The timeline's followers now. */
  followers(): number
}

async function eventServer(t: Teardown, limits: EventStreamLimits): Promise<EventServer> {
  const timeline = new Timeline()
  const streams = new EventStreams(timeline, limits)
  const responses: ServerResponse[] = []
  const server = createServer((req, res) => {
    const q = new URL(req.url ?? '/', 'http://localhost').searchParams
    responses.push(res)
    streams.serve(res, { after: Number(q.get('after') ?? 0), limit: 10_000, follow: q.get('follow') === '1' })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(async () => {
    server.closeAllConnections()
    await new Promise((resolve) => server.close(resolve))
  })
  const followers = (): number => (timeline as unknown as { followers: Set<unknown> }).followers.size
  return { port: (server.address() as AddressInfo).port, timeline, streams, responses, followers }
}

/** A GET whose response is not read until the test says so (the socket stops reading once its buffer is full). */
function pausedGet(t: Teardown, port: number, path: string): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const req = get({ host: '127.0.0.1', port, path, agent: false }, (res) => {
      res.pause()
      t.teardown(() => res.destroy())
      resolve(res)
    })
    req.on('error', reject)
  })
}

function readAll(res: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    res.on('data', (c: Buffer) => chunks.push(c))
    res.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')))
    res.on('error', reject)
    res.resume()
  })
}

const nextTurn = (): Promise<void> => new Promise((r) => setImmediate(r))

async function until(done: () => boolean): Promise<void> {
  for (let i = 0; i < 1000 && !done(); i++) await new Promise((r) => setTimeout(r, 10))
}

/** A test's own event: a kind no process emits (the timeline stores any), so it is cast past the declared union. */
const stored = (e: { at_ms: number; kind: string; source: string; details: Record<string, unknown> }) =>
  e as unknown as Omit<TimelineEvent, 'seq'>
const padded = (i: number, pad_bytes: number) =>
  stored({
    at_ms: i,
    kind: 'test.padded',
    source: 'test',
    details: { pad: 'p'.repeat(pad_bytes) },
  })
const seqsOf = (lines: string[]): number[] => lines.map((l) => (JSON.parse(l) as TimelineEvent).seq)
const oneTo = (n: number): number[] => Array.from({ length: n }, (_, i) => i + 1)

t.test('at most followers_max follow at once; one more is refused 503 HVLAB_E_BACKPRESSURE', async (t) => {
  const s = await eventServer(t, { followers_max: 2, follower_queue_bytes_max: 64 * 1024 })
  const aborts = [new AbortController(), new AbortController()]
  t.teardown(() => aborts.forEach((a) => a.abort()))
  for (const a of aborts) t.equal((await fetch(`http://127.0.0.1:${s.port}/?follow=1`, { signal: a.signal })).status, 200)
  t.equal(s.streams.followerCount, 2)
  const refused = await fetch(`http://127.0.0.1:${s.port}/?follow=1`)
  t.equal(refused.status, 503)
  t.match(await refused.json(), { error: { code: 'HVLAB_E_BACKPRESSURE', message: /2 event followers \(event_followers_max\)/ } })
  t.equal(s.followers(), 2, 'the refused one never followed the timeline')
  const plain = await fetch(`http://127.0.0.1:${s.port}/`)
  t.equal(plain.status, 200, 'reading without --follow is not refused')
  await plain.text()
  aborts[0]!.abort()
  await until(() => s.streams.followerCount < 2)
  t.equal(s.streams.followerCount, 1, 'a follower that leaves frees its place')
  t.equal(s.followers(), 1)
  const again = new AbortController()
  t.teardown(() => again.abort())
  t.equal((await fetch(`http://127.0.0.1:${s.port}/?follow=1`, { signal: again.signal })).status, 200, 'so another may follow')
})

t.test('a follower that does not read is cut off once its unsent bytes pass the limit', async (t) => {
  const queue_bytes_max = 64 * 1024
  const s = await eventServer(t, { followers_max: 4, follower_queue_bytes_max: queue_bytes_max })
  const res = await pausedGet(t, s.port, '/?after=0&follow=1')
  t.equal(s.followers(), 1)
  let appended = 0
  let unsent_bytes_max = 0
  // One event per turn of the event loop, so the socket takes what it can between them. Loopback
  // sockets absorb a few MiB before anything waits in the process; 4000 × 16 KiB is far more.
  while (appended < 4000 && s.followers() > 0) {
    s.timeline.append(padded(appended++, 16 * 1024))
    unsent_bytes_max = Math.max(unsent_bytes_max, s.responses[0]!.writableLength)
    await nextTurn()
  }
  t.equal(s.followers(), 0, `cut off after ${appended} events`)
  t.ok(
    unsent_bytes_max <= queue_bytes_max + 1024,
    `never more than the limit unsent (at most ${unsent_bytes_max} bytes, with the last line)`,
  )
  const lines = (await readAll(res)).split('\n').filter(Boolean)
  const last = JSON.parse(lines.pop()!) as { error: { code: string; message: string } }
  t.match(
    last,
    { error: { code: 'HVLAB_E_BACKPRESSURE', message: /^cut off: .*event_follower_queue_bytes_max is 65536/ } },
    'the last line says why',
  )
  const seqs = seqsOf(lines)
  t.same(seqs, oneTo(seqs.length), 'the events before it, in order, none missing')
  t.ok(seqs.length < appended, 'not the ones it fell behind on')
  t.match(last.error.message, new RegExp(`--after ${seqs.length}$`), 'and where to resume')
  s.timeline.append(padded(appended, 10))
  t.equal(s.streams.followerCount, 0, 'its place is free once it has read its last line')
})

t.test('the backlog is sent only as fast as the client reads it', async (t) => {
  const s = await eventServer(t, { followers_max: 4, follower_queue_bytes_max: 64 * 1024 })
  for (let i = 0; i < 1000; i++) s.timeline.append(padded(i, 8 * 1024)) // 8 MiB
  const res = await pausedGet(t, s.port, '/?after=0')
  const served = s.responses[0]!
  await until(() => served.listenerCount('drain') > 0)
  t.ok(served.listenerCount('drain') > 0, 'it waits for the socket to drain')
  t.ok(
    served.writableLength <= served.writableHighWaterMark + 9 * 1024,
    `at most the high-water mark and one event are buffered (${served.writableLength} bytes)`,
  )
  const lines = (await readAll(res)).split('\n').filter(Boolean)
  t.same(seqsOf(lines), oneTo(1000), 'then every event, in order, and the end')
})

t.test('a follower that reads gets the backlog after `after`, then each new event, and is never cut', async (t) => {
  const s = await eventServer(t, { followers_max: 4, follower_queue_bytes_max: 64 * 1024 })
  for (let i = 0; i < 3; i++) s.timeline.append(padded(i, 1))
  const res = await pausedGet(t, s.port, '/?after=1&follow=1')
  const got: number[] = []
  let pending = ''
  res.on('data', (c: Buffer) => {
    pending += c.toString('utf8')
    const lines = pending.split('\n')
    pending = lines.pop()!
    got.push(...seqsOf(lines))
  })
  res.resume()
  await until(() => got.length >= 2)
  s.timeline.append(padded(3, 1))
  s.timeline.append(padded(4, 1))
  await until(() => got.length >= 4)
  t.same(got, [2, 3, 4, 5])
  // As much as cut the one that did not read, and more; one event per turn of the event loop.
  for (let i = 5; i < 3005; i++) {
    s.timeline.append(padded(i, 16 * 1024))
    await nextTurn()
  }
  await until(() => got.length >= 3004)
  t.same(got, oneTo(3005).slice(1), 'all of them')
  t.equal(s.followers(), 1, 'still following')
  res.destroy()
  await until(() => s.followers() === 0)
  t.equal(s.followers(), 0, 'a client that leaves is unfollowed')
})

t.test('a follower asking after a seq beyond the newest gets only the events past it', async (t) => {
  const s = await eventServer(t, { followers_max: 4, follower_queue_bytes_max: 64 * 1024 })
  for (let i = 0; i < 3; i++) s.timeline.append(padded(i, 1))
  const res = await pausedGet(t, s.port, '/?after=5&follow=1')
  const got: number[] = []
  let pending = ''
  res.on('data', (c: Buffer) => {
    pending += c.toString('utf8')
    const lines = pending.split('\n')
    pending = lines.pop()!
    got.push(...seqsOf(lines))
  })
  res.resume()
  await until(() => s.followers() === 1)
  for (let i = 3; i < 8; i++) s.timeline.append(padded(i, 1))
  await until(() => got.length >= 3)
  t.same(got, [6, 7, 8], 'events 4 and 5 were not past --after 5')
})

t.test('`hvlab events --follow` prints why it was cut off and exits 1', async (t) => {
  const s = await eventServer(t, { followers_max: 4, follower_queue_bytes_max: 64 * 1024 })
  const dir = mkdtempSync(join(tmpdir(), 'hvlab-event-stream-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  writeFileSync(join(dir, 'secret'), 'test-secret\n')
  writeFileSync(
    join(dir, 'control.json'),
    JSON.stringify({ pid: process.pid, httpPort: s.port, peerPort: 1, topology: 'x', started_ms: 0 }),
  )
  const out: string[] = []
  const err: string[] = []
  const io: CliIo = { stdout: (x) => void out.push(x), stderr: (x) => void err.push(x), isTTY: false }
  const run = runHvlab(['events', '--follow', '--json', '--dir', dir], io)
  await until(() => s.followers() === 1)
  // The CLI runs in this process: while this loop runs it reads nothing, as a stuck client would.
  for (let i = 0; i < 4000 && s.followers() > 0; i++) s.timeline.append(padded(i, 16 * 1024))
  t.equal(await run, 1, 'exit 1')
  const printed = seqsOf(out.join('').split('\n').filter(Boolean))
  t.same(printed, oneTo(printed.length), 'the events it got were printed')
  t.match(
    err.join(''),
    new RegExp(`^hvlab: cut off: this follower fell \\d+ bytes of events behind .*--after ${printed.length}\\n$`),
    'then why it stopped',
  )
})

t.test('the control API serves /v1/events with the topology’s limits', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'hvlab-event-stream-lab-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const topology = JSON.parse(readFileSync(DEFAULT_TOPOLOGY_FILE, 'utf8')) as Record<string, unknown>
  const topologyFile = join(dir, 'one-follower.json')
  writeFileSync(topologyFile, JSON.stringify({ ...topology, limits: { event_followers_max: 1 } }))
  const controller = await LabController.create({ dir: join(dir, 'lab'), topologyFile, log: silentLogger() })
  t.teardown(() => controller.down())
  const api = await startControlApi(controller, { log: silentLogger(), onDown: () => {} })
  t.teardown(() => api.close())
  const headers = { authorization: httpAuthorization(controller.secret) }
  const follow = new AbortController()
  t.teardown(() => follow.abort())
  t.equal((await fetch(`http://127.0.0.1:${api.port}/v1/events?follow=1`, { headers, signal: follow.signal })).status, 200)
  const second = await fetch(`http://127.0.0.1:${api.port}/v1/events?follow=1`, { headers })
  t.equal(second.status, 503, 'the second follower of a lab that allows one')
  t.match(await second.json(), { error: { code: 'HVLAB_E_BACKPRESSURE', message: /1 event followers/ } })
})
