/**
 * One end of the live-migration benchmark, run as its own process (forked by
 * scripts/bench/migration.ts with the parent's execArgv, talking to it over the fork's IPC
 * channel): a host's migration service with its own page-diff pool, behind the lab's real
 * transport (PeerServer / connectPeer, handshake, framing, per-frame authentication) —
 * what an agent process runs, without the cluster around it.
 *
 * For the cost of frame authentication alone, the destination also listens on a second,
 * bare WebSocket port whose connections skip the handshake and carry the same frames,
 * each with 16 tag bytes that are neither computed nor checked (UNSEALED): the raw
 * baseline runs over both.
 *
 *   node … migration-endpoint.ts destination THREADS   listens; reports { ready, port, unsealedPort }
 *   node … migration-endpoint.ts source THREADS        waits for commands
 *
 * Commands (parent → child) and replies (child → parent), one reply per command:
 *   destination: { op: 'expect-raw', bytes }  → { op: 'raw-received', at_ms } once that many
 *                                                attachment bytes arrived on the next connection
 *   source:      { op: 'send-raw', port, frames, sealed }  → { op: 'raw-sent', started_at_ms }
 *                                                (sealed: false dials the unsealed port)
 *                { op: 'migrate', port, memory_mib, dirty_mib_per_s, seed, budget_ms, round_cap }
 *                                              → { op: 'migrated', result, lag } (lag: this process's
 *                                                event-loop lag during the migration, its VM filled)
 *   both:        { op: 'lag-reset' } → { op: 'lag-reset' }; { op: 'lag-read' } → { op: 'lag', lag }
 *                (event-loop lag since the reset; the destination also resets it when a
 *                migration connects), { op: 'stages-read' } → { op: 'stages', stages } (where
 *                this process spent its time since its last transfer began — a raw run's or a
 *                migration's connection: shared/stage-times.ts's stages, the event loop's busy
 *                time, the process's CPU time), { op: 'exit' }
 * Warnings go to standard error (a cut connection, an aborted migration): a failed run says why.
 * Times are `performance.timeOrigin + performance.now()`: wall-clock milliseconds with
 * sub-millisecond resolution, comparable between two processes on one machine.
 */
import { once } from 'node:events'
import { randomFillSync } from 'node:crypto'
import type { AddressInfo } from 'node:net'
import WebSocket, { WebSocketServer } from 'ws'
import { RealClock } from '../../shared/clock.js'
import { LagInterval } from '../../shared/event-loop-lag.js'
import { stageTimes, type StageFigures } from '../../shared/stage-times.js'
import { createLogger } from '../../shared/log.js'
import { FRAME_BYTES_MAX } from '../../shared/protocol/codec.js'
import { FRAME_TAG_BYTES } from '../../shared/transport/frame-auth.js'
import { connectPeer } from '../../shared/transport/peer-client.js'
import { PeerConnection } from '../../shared/transport/peer-connection.js'
import { PeerServer } from '../../shared/transport/peer-server.js'
import { GuestMemory } from '../../agent/vm/guest-memory.js'
import { PAGE_SIZE_BYTES } from '../../shared/protocol/page-size.js'
import { GuestWorkload } from '../../agent/vm/guest-workload.js'
import { LabVm } from '../../agent/migration/migratable-vm.js'
import { MigrationService } from '../../agent/migration/migration-service.js'
import { PageDiffPool } from '../../agent/migration/page-diff-pool.js'

const BENCH_SECRET = 'bench-secret'
const MiB = 1024 * 1024

export type EndpointCommand =
  | { op: 'expect-raw'; bytes: number }
  | { op: 'send-raw'; port: number; frames: number; sealed: boolean }
  | { op: 'migrate'; port: number; memory_mib: number; dirty_mib_per_s: number; seed: number; budget_ms: number; round_cap: number }
  | { op: 'lag-reset' }
  | { op: 'lag-read' }
  | { op: 'stages-read' }
  | { op: 'exit' }

/** Where one endpoint process spent its time since its stages were reset. */
export interface EndpointStages {
  wall_ms: number
  /** The main thread's event loop was busy (not waiting for I/O or timers). */
  loop_busy_ms: number
  /** CPU time of the whole process (every thread, user and system). */
  cpu_ms: number
  stages: StageFigures
}

/** The baseline without frame authentication: the same 16 tag bytes on the wire, no MAC computed or checked. */
const ZERO_TAG = Buffer.alloc(FRAME_TAG_BYTES)
const UNSEALED = {
  seal: (): Buffer => ZERO_TAG,
  open: (fragments: readonly Buffer[]): Buffer[] => {
    const parts = [...fragments]
    const last = parts.pop() as Buffer // this bench's frames end in a tag fragment of its own (or in one fragment with it)
    return last.length > FRAME_TAG_BYTES ? [...parts, last.subarray(0, last.length - FRAME_TAG_BYTES)] : parts
  },
}

/** Warnings and errors to standard error (the bench's own): why a connection was cut or a migration failed. */
const log = createLogger({ name: `bench-${process.argv[2] === 'source' ? 'src' : 'dst'}`, level: 'warn' })

const now_ms = (): number => performance.timeOrigin + performance.now()
const reply = (m: object): void => void process.send!(m)
/** This process's event-loop lag, as a host's: what the benchmark reports next to the idle figure. */
const lag = new LagInterval()

stageTimes.enabled = true
/** The clocks the stage figures are read against, since the last reset. */
let stagesSince = { wall_ms: performance.now(), loop: performance.eventLoopUtilization(), cpu: process.cpuUsage() }

function resetStages(): void {
  stageTimes.reset()
  stagesSince = { wall_ms: performance.now(), loop: performance.eventLoopUtilization(), cpu: process.cpuUsage() }
}

function readStages(): EndpointStages {
  const cpu = process.cpuUsage(stagesSince.cpu)
  return {
    wall_ms: performance.now() - stagesSince.wall_ms,
    loop_busy_ms: performance.eventLoopUtilization(stagesSince.loop).active,
    cpu_ms: (cpu.user + cpu.system) / 1000,
    stages: stageTimes.read(),
  }
}

/** The lag and stage commands both ends answer; false for any other command. */
function answerLag(m: EndpointCommand): boolean {
  if (m.op === 'stages-read') {
    reply({ op: 'stages', stages: readStages() })
    return true
  }
  if (m.op === 'lag-reset') {
    lag.reset()
    reply({ op: 'lag-reset' })
    return true
  }
  if (m.op === 'lag-read') {
    reply({ op: 'lag', lag: lag.read() })
    return true
  }
  return false
}

/** A VM of random (incompressible) memory, as the worst case for the page diff. */
function randomVm(name: string, mib: number): LabVm {
  const memory = GuestMemory.create((mib * MiB) / PAGE_SIZE_BYTES)
  for (let off = 0; off < memory.byte_length; off += 16 * MiB)
    randomFillSync(memory.bytes.subarray(off, Math.min(memory.byte_length, off + 16 * MiB)))
  return new LabVm({ name, memory })
}

async function runDestination(pool: PageDiffPool): Promise<void> {
  const service = new MigrationService({ host: 'bench-dst', log, pool })
  // The next connection is either a raw-transport run (counted here) or a migration (served by the service).
  let rawExpected: { bytes: number; received: number } | null = null
  const onPeer = (c: PeerConnection): void => {
    const raw = rawExpected
    rawExpected = null
    resetStages()
    if (!raw) {
      lag.reset()
      return service.attach(c)
    }
    c.onMessage('migration-pages', ({ attachment }) => {
      raw.received += attachment.length
      if (raw.received === raw.bytes) reply({ op: 'raw-received', at_ms: now_ms() })
    })
  }
  const server = await PeerServer.listen({
    name: 'bench-dst',
    role: 'host',
    secret: BENCH_SECRET,
    log,
    roleOf: (name) => (name === 'bench-src' ? 'host' : undefined),
    onPeer,
  })
  const unsealed = new WebSocketServer({ host: '127.0.0.1', port: 0, maxPayload: FRAME_BYTES_MAX, perMessageDeflate: false })
  await once(unsealed, 'listening')
  unsealed.on('connection', (ws) => onPeer(new PeerConnection(ws, { name: 'bench-src', role: 'host' }, { log, frameAuth: UNSEALED })))
  process.on('message', (m: EndpointCommand) => {
    if (answerLag(m)) return
    if (m.op === 'expect-raw') {
      rawExpected = { bytes: m.bytes, received: 0 }
      reply({ op: 'expecting' })
    } else if (m.op === 'exit')
      void server
        .close()
        .then(() => pool.close())
        .then(() => process.exit(0))
  })
  reply({ op: 'ready', port: server.port, unsealedPort: (unsealed.address() as AddressInfo).port })
}

/** A connection to the destination's unsealed port: no handshake, frames carry untested zero tags. */
async function connectUnsealed(port: number): Promise<PeerConnection> {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/`, {
    maxPayload: FRAME_BYTES_MAX,
    perMessageDeflate: false,
    generateMask: (mask) => void mask.fill(0),
  })
  await once(ws, 'open')
  return new PeerConnection(ws, { name: 'bench-dst', role: 'host' }, { log, frameAuth: UNSEALED })
}

async function connect(port: number): Promise<PeerConnection> {
  const c = await connectPeer({
    endpoint: { host: '127.0.0.1', port },
    name: 'bench-src',
    role: 'host',
    secret: BENCH_SECRET,
    log,
  })
  c.start()
  return c
}

async function sendRaw(port: number, frames: number, sealed: boolean): Promise<void> {
  const conn = sealed ? await connect(port) : await connectUnsealed(port)
  const payload = randomFillSync(new Uint8Array(MiB))
  resetStages()
  const started_at_ms = now_ms()
  for (let i = 0; i < frames; i++) await conn.send({ t: 'migration-pages', migration_id: 'raw', round: 0, seq: i }, payload)
  reply({ op: 'raw-sent', started_at_ms })
  // closed by the next command's connection or at exit; closing now could drop frames in flight
  setTimeout(() => conn.terminate(), 60_000).unref()
}

async function migrate(service: MigrationService, m: Extract<EndpointCommand, { op: 'migrate' }>): Promise<void> {
  // Fill memory before connecting: filling 1 GiB blocks this event loop for seconds, and a
  // connection that answers no ping for 2 s is cut by its peer.
  const vm = randomVm(`bench-${m.dirty_mib_per_s}`, m.memory_mib)
  const conn = await connect(m.port)
  const workload = new GuestWorkload(vm.memory, new RealClock(), {
    dirty_mib_per_s: m.dirty_mib_per_s,
    hot_fraction: 0.05,
    hot_write_share: 0.8,
    seed: m.seed,
  })
  vm.workload = workload
  workload.start()
  lag.reset()
  resetStages()
  try {
    const result = await service.migrate(vm, conn, { downtime_budget_ms: m.budget_ms, round_cap: m.round_cap }).result
    reply({ op: 'migrated', result, lag: lag.read() })
  } finally {
    workload.stop()
    conn.terminate()
  }
}

async function runSource(pool: PageDiffPool): Promise<void> {
  const service = new MigrationService({ host: 'bench-src', log, pool })
  process.on('message', (m: EndpointCommand) => {
    if (answerLag(m)) return
    const done = m.op === 'send-raw' ? sendRaw(m.port, m.frames, m.sealed) : m.op === 'migrate' ? migrate(service, m) : null
    if (m.op === 'exit') void pool.close().then(() => process.exit(0))
    done?.catch((e: unknown) => reply({ op: 'error', message: e instanceof Error ? e.message : String(e) }))
  })
  reply({ op: 'ready', port: null })
}

const [role, threadsArg] = process.argv.slice(2)
const threads = Number(threadsArg)
if ((role !== 'source' && role !== 'destination') || !Number.isInteger(threads) || threads < 1 || !process.send) {
  process.stderr.write(
    'migration-endpoint: run by scripts/bench/migration.ts (fork with IPC): migration-endpoint.ts source|destination THREADS\n',
  )
  process.exit(2)
}
// The parent going away (Ctrl-C on the bench, a crash) ends this process too.
process.on('disconnect', () => process.exit(0))
const pool = new PageDiffPool({ threads })
await (role === 'source' ? runSource(pool) : runDestination(pool))
