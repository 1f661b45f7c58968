/**
 * Benchmark of the transport's small-message path (issue 12): what one cluster heartbeat
 * and one small request cost in CPU, end to end — encode and validate, seal (frame
 * authentication), WebSocket send over loopback, receive, open, decode and validate,
 * hand to the handler — and each stage alone.
 *
 * Both ends run in this process, so the CPU per message is the sender's and the
 * receiver's together, as a lab pays it. Two ways of sending: one at a time (the next
 * message goes once the last has been handled: every message wakes both event loops, as a
 * heartbeat every 250 ms does) and back to back (a window of messages in flight, for the
 * throughput). Numbers are for reading, never for asserting in tests.
 */
import { createSecretKey } from 'node:crypto'
import { once } from 'node:events'
import { silentLogger } from '../../shared/log.js'
import { createMetrics } from '../../shared/metrics.js'
import { decodeFrame, encodeFrameParts, type Envelope } from '../../shared/protocol/codec.js'
import { validateMessage, type MessageOf } from '../../shared/protocol/messages.js'
import { FrameAuth, deriveFrameKeys, openFrame } from '../../shared/transport/frame-auth.js'
import { connectPeer } from '../../shared/transport/peer-client.js'
import type { PeerConnection } from '../../shared/transport/peer-connection.js'
import { PeerServer } from '../../shared/transport/peer-server.js'

const SECRET = 'hvlab small-message bench'
const TRANSCRIPT = {
  protocolVersion: 2,
  client: { name: 'host-a1', role: 'host', nonce: 'a'.repeat(32) },
  server: { name: 'host-b1', role: 'host', nonce: 'b'.repeat(32) },
}

export interface SmallMessageBenchOptions {
  /** Messages per timed run. */
  messages: number
  /** Timed runs per measurement after one warm-up run; the median is reported. */
  reps: number
}

export interface StageRow {
  stage: string
  /** CPU per call, microseconds (median of the runs). */
  cpu_us: number
}

export interface EndToEndRow {
  what: string
  /** CPU of both ends per message (a request with its reply counts once), microseconds. */
  cpu_us: number
  /** Wall time per message, microseconds. */
  wall_us: number
}

export interface SmallMessageBenchReport {
  node: string
  messages: number
  reps: number
  heartbeat_bytes: number
  stages: StageRow[]
  end_to_end: EndToEndRow[]
}

const heartbeat = (i: number): MessageOf<'cluster-heartbeat'> => ({
  t: 'cluster-heartbeat',
  from: 'host-a1',
  epoch: 7,
  db_epoch: 42,
  sent_ms: 1_796_000_000_000 + i,
})

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!
const round = (x: number): number => Number(x.toFixed(2))

/** CPU microseconds of this process (user + system) since `start`. */
function cpuSince(start: NodeJS.CpuUsage): number {
  const d = process.cpuUsage(start)
  return d.user + d.system
}

/** Runs `body` (warm-up first, then `reps` timed runs) and returns the median CPU and wall per message. */
async function measure(
  o: SmallMessageBenchOptions,
  body: (n: number) => Promise<void> | void,
): Promise<{ cpu_us: number; wall_us: number }> {
  await body(o.messages)
  const cpu: number[] = []
  const wall: number[] = []
  for (let r = 0; r < o.reps; r++) {
    const c0 = process.cpuUsage()
    const w0 = process.hrtime.bigint()
    await body(o.messages)
    wall.push(Number(process.hrtime.bigint() - w0) / 1000 / o.messages)
    cpu.push(cpuSince(c0) / o.messages)
  }
  return { cpu_us: round(median(cpu)), wall_us: round(median(wall)) }
}

/** Each stage of one heartbeat alone, in a loop. */
async function measureStages(o: SmallMessageBenchOptions): Promise<{ rows: StageRow[]; heartbeat_bytes: number }> {
  const envelope: Envelope = { k: 'msg', m: heartbeat(0) }
  const sender = FrameAuth.after('client', SECRET, TRANSCRIPT)
  // As FrameAuth holds it: a KeyObject made once.
  const receiveKey = createSecretKey(deriveFrameKeys(SECRET, TRANSCRIPT).clientToServer)
  const { head } = encodeFrameParts(envelope)
  const sealed = Buffer.concat([head, sender.seal([head])])
  const stages: [string, (i: number) => void][] = [
    ['validate a heartbeat (zod schema)', (i) => void validateMessage(heartbeat(i), false)],
    ['encode a heartbeat frame (validate + msgpack + header)', (i) => void encodeFrameParts({ k: 'msg', m: heartbeat(i) })],
    ['seal (ChaCha20-Poly1305 tag)', () => void sender.seal([head])],
    ['open (check the tag)', () => void openFrame(receiveKey, 0, [sealed])],
    ['decode a heartbeat frame (msgpack + envelope + validate)', () => void decodeFrame(head)],
  ]
  const rows: StageRow[] = []
  for (const [stage, run] of stages) {
    const { cpu_us } = await measure(o, (n) => {
      for (let i = 0; i < n; i++) run(i)
    })
    rows.push({ stage, cpu_us })
  }
  return { rows, heartbeat_bytes: sealed.length }
}

interface Pair {
  server: PeerServer
  /** The dialling end (host-a1). */
  client: PeerConnection
  /** The accepting end (host-b1), with its handlers attached. */
  accepted: PeerConnection
  /** Resolves when the accepting end has handled `n` heartbeats since the last call. */
  heartbeatsHandled(n: number): Promise<void>
}

/** Two authenticated peers over loopback WebSocket, with metrics as a lab process keeps them. */
async function connectPair(): Promise<Pair> {
  let handled = 0
  let waiting: { n: number; resolve: () => void } | undefined
  const attach = (c: PeerConnection): void => {
    c.onMessage('cluster-heartbeat', () => {
      handled++
      if (waiting && handled >= waiting.n) waiting.resolve()
    })
    c.onRequest('ping', ({ message }) => ({ message: { t: 'pong', seq: message.seq, sent_ms: message.sent_ms } }))
  }
  let accepted: PeerConnection | undefined
  const server = await PeerServer.listen({
    name: 'host-b1',
    role: 'host',
    secret: SECRET,
    log: silentLogger(),
    metrics: createMetrics({ role: 'host', site: 'site-b', defaults: false }),
    roleOf: (name) => (name === 'host-a1' ? 'host' : undefined),
    onPeer: (c) => {
      attach(c)
      accepted = c
    },
  })
  const client = await connectPeer({
    endpoint: { host: '127.0.0.1', port: server.port },
    name: 'host-a1',
    role: 'host',
    secret: SECRET,
    log: silentLogger(),
    metrics: createMetrics({ role: 'host', site: 'site-a', defaults: false }),
  })
  client.start()
  while (!accepted) await new Promise((r) => setImmediate(r))
  const heartbeatsHandled = (n: number): Promise<void> =>
    new Promise<void>((resolve) => {
      handled = 0
      waiting = { n, resolve }
    })
  return { server, client, accepted, heartbeatsHandled }
}

async function heartbeatsOneAtATime(p: Pair, n: number): Promise<void> {
  for (let i = 0; i < n; i++) {
    const handled = p.heartbeatsHandled(1)
    await p.client.send(heartbeat(i))
    await handled
  }
}

async function heartbeatsBackToBack(p: Pair, n: number): Promise<void> {
  const handled = p.heartbeatsHandled(n)
  for (let i = 0; i < n; i++) void p.client.send(heartbeat(i))
  await handled
}

async function requestsOneAtATime(p: Pair, n: number): Promise<void> {
  for (let i = 0; i < n; i++) await p.client.request({ t: 'ping', seq: i, sent_ms: i })
}

async function requestsInWindow(p: Pair, n: number, window: number): Promise<void> {
  let next = 0
  const worker = async (): Promise<void> => {
    while (next < n) await p.client.request({ t: 'ping', seq: next++, sent_ms: 0 })
  }
  await Promise.all(Array.from({ length: window }, worker))
}

async function measureEndToEnd(o: SmallMessageBenchOptions): Promise<EndToEndRow[]> {
  const p = await connectPair()
  try {
    const runs: [string, (n: number) => Promise<void>][] = [
      ['heartbeat, one at a time', (n) => heartbeatsOneAtATime(p, n)],
      ['heartbeat, back to back', (n) => heartbeatsBackToBack(p, n)],
      ['request + reply (ping), one at a time', (n) => requestsOneAtATime(p, n)],
      ['request + reply (ping), 64 in flight', (n) => requestsInWindow(p, n, 64)],
    ]
    const rows: EndToEndRow[] = []
    for (const [what, run] of runs) rows.push({ what, ...(await measure(o, run)) })
    return rows
  } finally {
    const closed = once(p.client, 'close')
    p.client.terminate()
    await closed
    await p.server.close()
  }
}

export async function runSmallMessageBench(opts: SmallMessageBenchOptions): Promise<SmallMessageBenchReport> {
  const stages = await measureStages(opts)
  const end_to_end = await measureEndToEnd(opts)
  return {
    node: process.version,
    messages: opts.messages,
    reps: opts.reps,
    heartbeat_bytes: stages.heartbeat_bytes,
    stages: stages.rows,
    end_to_end,
  }
}

export function formatSmallMessageReport(r: SmallMessageBenchReport): string {
  const width = Math.max(...r.stages.map((s) => s.stage.length), ...r.end_to_end.map((e) => e.what.length))
  return [
    `Small messages: a cluster heartbeat frame is ${r.heartbeat_bytes} bytes on the wire (tag included); ${r.messages} messages per run, median of ${r.reps} (node ${r.node})`,
    `  ${'stage, alone'.padEnd(width)}  CPU µs`,
    ...r.stages.map((s) => `  ${s.stage.padEnd(width)}  ${s.cpu_us.toFixed(2).padStart(6)}`),
    `  ${'end to end, both peers in this process'.padEnd(width)}  CPU µs  wall µs`,
    ...r.end_to_end.map((e) => `  ${e.what.padEnd(width)}  ${e.cpu_us.toFixed(2).padStart(6)}  ${e.wall_us.toFixed(2).padStart(7)}`),
  ].join('\n')
}
