/**
 * The shell every lab process (host, witness, array, standalone host) runs in: its arguments, logger,
 * metrics and status endpoint, its peer server and mesh, and its link to the lab
 * controller (registration, directory, partitions, peer reports, timeline events).
 * Role code plugs in through `onPeer` and `emitEvent`; it never touches sockets.
 */
import { readFileSync } from 'node:fs'
import { Command, CommanderError, InvalidArgumentError } from 'commander'
import { RealClock } from './clock.js'
import { SkewedClock } from './skewed-clock.js'
import { HvlabError, describeError } from './errors.js'
import { labLayout, type LabLayout } from './lab-layout.js'
import { createFileLogger, type Logger } from './log.js'
import { createMetrics, type Metrics } from './metrics.js'
import type { Message, MessageOf, MessageType } from './protocol/messages.js'
import type { Role } from './protocol/runtime-messages.js'
import { startStatusServer, type StatusServer } from './status-server.js'
import type { DetailsOf, EventKind } from './timeline/events.js'
import {
  clusterView,
  dials,
  isClusterPeer,
  foreignPeersOf,
  loadTopology,
  peersOf,
  processSpec,
  type ProcessSpec,
  type Topology,
} from './topology.js'
import { readTlsIdentity, type TlsIdentity } from './pki/lab-pki.js'
import type { PeerConnection } from './transport/peer-connection.js'
import { PeerLink } from './transport/peer-link.js'
import { PeerMesh } from './transport/peer-mesh.js'
import { PeerServer, type PeerServerTls } from './transport/peer-server.js'
import { setRefusalLogRate } from './transport/refusal-log.js'
import { connectionLimitsOf, listenerLimitsOf } from './transport/topology-limits.js'
import { leaseTimings } from './consensus/lease-timings.js'
import { tickPhaseOf } from './periodic-task.js'
import { NoticeOutbox } from './notice-outbox.js'

/** Notices (events, VM locations) kept to send again after a reconnect; the oldest go first. */
const RECENT_NOTICES_MAX = 1000

export interface LabProcessArgs {
  name: string
  role: Role
  dir: string
  topologyFile: string
  controllerPort: number
}

export function parseLabProcessArgs(argv: string[], role: Role): LabProcessArgs {
  const port = (v: string): number => {
    const n = Number(v)
    if (!Number.isInteger(n) || n < 1 || n > 65535) throw new InvalidArgumentError('a TCP port, 1-65535')
    return n
  }
  const program = new Command(`hvlab-${role}`)
    .description(`one hvlab ${role} process; normally started by the lab controller (hvlab up)`)
    .requiredOption('--name <name>', 'this process’s name in the topology')
    .requiredOption('--dir <dir>', 'the lab’s data dir (secret, logs, data)')
    .requiredOption('--topology <file>', 'the lab’s topology file')
    .requiredOption('--controller-port <port>', 'the lab controller’s peer port on 127.0.0.1', port)
    .exitOverride()
  program.parse(argv, { from: 'user' })
  const o = program.opts<{ name: string; dir: string; topology: string; controllerPort: number }>()
  return { name: o.name, role, dir: o.dir, topologyFile: o.topology, controllerPort: o.controllerPort }
}

export class LabProcess {
  readonly started_ms = Date.now()
  private peerServer: PeerServer | undefined
  private statusServer: StatusServer | undefined
  private controllerLink: PeerLink | undefined
  private readonly peerHandlers: ((c: PeerConnection) => void)[] = []
  private readonly statusParts: (() => Record<string, unknown>)[] = []
  private readonly operatorHandlers: ((c: PeerConnection) => void)[] = []
  /** Events and VM locations for the controller, numbered and kept to send again after a reconnect (notice-outbox.ts). */
  private readonly notices = new NoticeOutbox<ControllerNotice>(RECENT_NOTICES_MAX)
  private registered = false
  /** For the peer server: the peers of other organisations that dial this process (over TLS). */
  private serverTls: PeerServerTls | undefined

  private constructor(
    readonly name: string,
    readonly role: Role,
    readonly site: string,
    readonly topology: Topology,
    readonly layout: LabLayout,
    readonly secret: string,
    readonly log: Logger,
    readonly metrics: Metrics,
    readonly mesh: PeerMesh,
    /** Every timestamp, lease, tick and timeout of the process: the real clock, or skewed by the lab (`hvlab clock set`). */
    readonly clock: SkewedClock,
    /** Where in each tick this process's periodic work runs (ms): its ticks, CSV checks and liveness probes share one grid (periodic-task.ts). */
    readonly tick_offset_ms: number,
  ) {}

  static async start(args: LabProcessArgs): Promise<LabProcess> {
    const full = loadTopology(args.topologyFile)
    const spec = processSpec(full, args.name)
    // A cluster's process sees its own cluster as the topology's (clusterView); its peers and links come from the whole lab.
    const topology = spec.cluster === null ? full : clusterView(full, spec.cluster)
    if (spec.role !== args.role)
      throw new HvlabError('HVLAB_E_TOPOLOGY', `${args.name} is a ${spec.role} in the topology, not a ${args.role}`)
    const layout = labLayout(args.dir)
    const secret = readFileSync(layout.secretOf(spec.organisation), 'utf8').trim()
    const tls = tlsOf(full, spec, layout)
    const log = await createFileLogger({
      name: args.name,
      file: layout.processLog(args.name),
      file_bytes_max: topology.limits.log_file_bytes_max,
      files_kept: topology.limits.log_files_kept,
    })
    const metrics = createMetrics({ role: spec.role, site: spec.site })
    setRefusalLogRate(topology.limits.refusal_logs_per_s)
    const clock = new SkewedClock(new RealClock())
    const tick_offset_ms = tickPhaseOf(spec.name) * leaseTimings(topology).tick_ms
    const mesh = new PeerMesh({
      self: { name: spec.name, role: spec.role, organisation: spec.organisation },
      secret,
      tls: tls?.identity,
      peers: peersOf(full, spec.name),
      dials,
      log,
      metrics,
      limits: connectionLimitsOf(topology.limits, tick_offset_ms),
      clock,
    })
    const p = new LabProcess(spec.name, spec.role, spec.site, topology, layout, secret, log, metrics, mesh, clock, tick_offset_ms)
    p.serverTls = tls?.server
    // The shell's own listeners go first: a peer's handlers are attached, and its
    // connection on the timeline, before role code hears of it.
    p.mesh.on('peer-up', (c: PeerConnection) => {
      for (const h of p.peerHandlers) h(c)
      p.emitEvent('peer.connected', { peer: c.remoteName })
      p.reportPeers()
    })
    p.mesh.on('peer-down', (name: string, reason: string) => {
      p.emitEvent('peer.lost', { peer: name, reason })
      p.reportPeers()
    })
    return p
  }

  /** Is `conn` a fellow member of this process's cluster, or with `witness` its witness (topology.ts isClusterPeer)? */
  isClusterPeer(conn: Pick<PeerConnection, 'remoteName' | 'remoteRole'>, witness = false): boolean {
    return isClusterPeer(this.topology, conn, witness)
  }

  /** Role code: called for every new connection to a lab peer, to attach its handlers. */
  onPeer(handler: (connection: PeerConnection) => void): void {
    this.peerHandlers.push(handler)
    for (const name of this.mesh.connectedPeers()) {
      const c = this.mesh.connection(name)
      if (c) handler(c)
    }
  }

  /**
   * Role code: answers an operator's request of type `t`, which the CLI sends through the
   * lab controller (`ControlClient.request`). A thrown HvlabError reaches the CLI as is.
   */
  serveOperator<T extends MessageType>(t: T, handler: (message: MessageOf<T>) => Promise<Message> | Message): void {
    const attach = (c: PeerConnection): void => {
      c.onRequest(t, async ({ message }) => ({ message: await handler(message) }))
    }
    this.operatorHandlers.push(attach)
    const current = this.controllerLink?.current
    if (current) attach(current)
  }

  /** Role code: adds fields to GET /status. */
  addStatus(part: () => Record<string, unknown>): void {
    this.statusParts.push(part)
  }

  /** Puts an event on the lab-wide timeline (and in this process's log); its kind and details are declared in shared/timeline/. */
  emitEvent<K extends EventKind>(kind: K, details: DetailsOf<K>): void {
    const fields: Record<string, unknown> = { event: kind, ...details }
    this.log.info(fields, kind as string)
    this.notifyController({ t: 'event', at_ms: Date.now(), kind, source: this.name, details })
  }

  /** A host tells the lab's virtual switch where a VM is (guest-messages.ts vm-location); the switch never reads the timeline. */
  announceVm(location: Omit<MessageOf<'vm-location'>, 't'>): void {
    this.notifyController({ t: 'vm-location', ...location })
  }

  private notifyController(unnumbered: ControllerNotice): void {
    // Kept whether or not it goes out now: a connection can die with it unread (see register).
    const notice = this.notices.add(unnumbered)
    const c = this.controllerLink?.current
    if (c && this.registered) {
      c.send(notice).catch((e: unknown) =>
        this.log.warn(
          { err: describeError(e), t: notice.t, ...(notice.t === 'event' ? { kind: notice.kind } : { vm: notice.vm }) },
          `could not send ${notice.t} to the controller`,
        ),
      )
    }
  }

  status(): Record<string, unknown> {
    return {
      name: this.name,
      role: this.role,
      site: this.site,
      pid: process.pid,
      uptime_ms: Date.now() - this.started_ms,
      peers: this.mesh.connectedPeers(),
      blocked: this.mesh.blockedPeers(),
      link_faults: this.mesh.linkFaults().map(({ shape, ...f }) => ({ ...f, ...shape })),
      clock_skew: this.clock.skew(),
      ...Object.assign({}, ...this.statusParts.map((f) => f())),
    }
  }

  async stop(): Promise<void> {
    this.controllerLink?.stop()
    this.mesh.stop()
    await this.peerServer?.close()
    await this.statusServer?.close()
  }

  /**
   * Accepts peers and registers with the controller. Called once the role's setup has
   * attached its handlers: a peer that connected earlier would send messages no handler
   * knows yet (an array's partner sends rc-hello at once) and be refused as a protocol
   * error, and the controller would report the process up before it can serve.
   */
  async serve(controllerPort: number): Promise<void> {
    this.peerServer = await PeerServer.listen({
      name: this.name,
      role: this.role,
      secret: this.secret,
      tls: this.serverTls,
      log: this.log,
      metrics: this.metrics,
      ...listenerLimitsOf(this.topology.limits, this.tick_offset_ms),
      roleOf: (name) => this.mesh.roleOf(name),
      admit: (remote) => this.mesh.admit(remote),
      onPeer: (c) => this.mesh.accept(c),
      clock: this.clock,
    })
    this.statusServer = await startStatusServer({
      registry: this.metrics.registry,
      status: () => this.status(),
      log: this.log,
      limits: this.topology.limits,
      eventLoopLag: this.metrics.eventLoopLag,
    })
    const link = new PeerLink(
      {
        name: this.name,
        role: this.role,
        secret: this.secret,
        expectName: 'controller',
        expectRole: 'controller',
        log: this.log,
        limits: connectionLimitsOf(this.topology.limits, this.tick_offset_ms),
        backoff: { initial_ms: 50, max_ms: 1000, jitter: 0.2 },
        clock: this.clock,
      },
      { host: '127.0.0.1', port: controllerPort },
    )
    link.on('up', (c: PeerConnection) => void this.register(c))
    link.on('down', () => (this.registered = false))
    this.controllerLink = link
    link.start()
  }

  private async register(c: PeerConnection): Promise<void> {
    for (const attach of this.operatorHandlers) attach(c)
    c.onMessage('directory', ({ message }) => this.mesh.updateDirectory(message.entries))
    c.onMessage('partition-set', ({ message }) => {
      this.log.info({ blocked: message.blocked }, 'partition set by the lab')
      this.mesh.setBlocked(message.blocked)
      this.reportPeers()
    })
    c.onMessage('clock-set', ({ message }) => {
      this.log.info({ offset_ms: message.offset_ms, drift: message.drift }, 'clock skew set by the lab')
      this.clock.setSkew({ offset_ms: message.offset_ms, drift: message.drift })
    })
    c.onMessage('link-reset', ({ message }) => {
      this.log.info({ peers: message.peers }, 'connections reset by the lab')
      this.mesh.resetConnections(message.peers)
    })
    c.onMessage('link-set', ({ message }) => {
      this.log.info({ links: message.links }, 'link faults set by the lab')
      this.mesh.setLinkFaults(
        message.links.map(({ peer, deaf, no_new_connections, ...shape }) => ({ peer, deaf, no_new_connections, shape })),
      )
    })
    try {
      const reply = await c.request({
        t: 'register',
        name: this.name,
        role: this.role,
        site: this.site,
        pid: process.pid,
        peerEndpoint: { host: '127.0.0.1', port: this.peerServer!.port },
        httpEndpoint: { host: '127.0.0.1', port: this.statusServer!.port },
      })
      this.registered = true
      // What the controller has not taken from this process goes again, in order.
      const through = reply.message.t === 'registered' ? reply.message.notices_through : 0
      for (const notice of this.notices.after(through)) void c.send(notice).catch(() => {})
      this.reportPeers()
    } catch (e) {
      this.log.error({ err: describeError(e) }, 'registration with the controller failed')
      c.terminate()
    }
  }

  private reportPeers(): void {
    this.controllerLink?.current?.send({ t: 'peers-report', connected: this.mesh.connectedPeers() }).catch(() => {})
  }
}

/**
 * A process with peers of other organisations reads its certificate (it dials them over
 * TLS), and serves TLS when one of them dials it; one without reads none.
 */
function tlsOf(topology: Topology, spec: ProcessSpec, layout: LabLayout): { identity: TlsIdentity; server?: PeerServerTls } | undefined {
  const others = foreignPeersOf(topology, spec.name)
  if (others.length === 0) return undefined
  const identity = readTlsIdentity(layout, spec.name)
  const organisations = new Map(peersOf(topology, spec.name).map((p) => [p.name, p.organisation]))
  const dialsUs = others.some((p) => dials(p.name, spec.name))
  const server = dialsUs
    ? { identity, organisation: spec.organisation, organisationOf: (name: string) => organisations.get(name) }
    : undefined
  return { identity, server }
}

/** One-way messages a process sends the controller, queued alike while it is unreachable. */
type ControllerNotice = MessageOf<'event'> | MessageOf<'vm-location'>

/** What a role's setup may return: its clean stop, run after the process's links are down. */
export type Shutdown = () => Promise<void>

/**
 * The `main` of a lab process: parse arguments, start the shell, run the role's setup,
 * then serve peers and the controller; on SIGTERM/SIGINT stop the links, then run the
 * role's shutdown. Bad arguments end the process with a clear message.
 */
export async function runLabProcess(role: Role, setup: (p: LabProcess) => Promise<Shutdown | void> | Shutdown | void): Promise<void> {
  let p: LabProcess
  let shutdown: Shutdown | void
  try {
    const args = parseLabProcessArgs(process.argv.slice(2), role)
    p = await LabProcess.start(args)
    shutdown = await setup(p)
    await p.serve(args.controllerPort)
  } catch (e) {
    // commander has already printed its own usage error or help text
    if (e instanceof CommanderError) process.exit(e.exitCode)
    process.stderr.write(`hvlab-${role}: ${describeError(e)}\n`)
    process.exit(2)
  }
  p.log.info({ pid: process.pid }, `${role} ${p.name} started`)
  let stopping = false
  const stop = (signal: string): void => {
    if (stopping) return
    stopping = true
    p.log.info({ signal }, 'stopping')
    p.stop()
      .then(() => shutdown?.())
      .catch((e: unknown) => p.log.error({ err: describeError(e) }, 'clean shutdown failed'))
      .finally(() => process.exit(0))
    setTimeout(() => process.exit(0), 3000).unref()
  }
  process.on('SIGTERM', () => stop('SIGTERM'))
  process.on('SIGINT', () => stop('SIGINT'))
  // Started by a controller: a lab's processes never outlive it, even a kill -9 of it.
  if (process.connected) process.on('disconnect', () => stop('controller gone'))
  // Fail-stop: a process whose role state may be broken ends (exit 1), and the controller reports
  // it crashed with these last lines; its peers see it lost, as after a kill -9. Never limp on.
  const failStop = (what: string, e: unknown): void => {
    const stack = e instanceof Error ? e.stack : undefined
    p.log.fatal({ err: describeError(e), stack }, what)
    process.stderr.write(`hvlab-${role} ${p.name}: ${what}: ${stack ?? describeError(e)}\n`)
    process.exit(1)
  }
  process.on('uncaughtException', (e) => failStop('uncaught exception', e))
  process.on('unhandledRejection', (reason) => failStop('unhandled rejection', reason))
}
