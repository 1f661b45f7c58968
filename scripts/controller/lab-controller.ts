/**
 * The lab controller: spawns every process of the topology and watches it, holds the
 * directory of where each one listens, injects faults (signals, partitions), and keeps
 * the lab-wide timeline. A process that dies by itself is reported with its exit code
 * or signal and its last log lines, and is not restarted unless the user says so.
 */
import { LAB_NODE_ARGS, withAllocatorEnv } from '../../shared/lab-runtime.js'
import { spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { chmodSync, copyFileSync, existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { RealClock } from '../../shared/clock.js'
import { NoticeIntake } from '../../shared/notice-outbox.js'
import { HvlabError, describeError } from '../../shared/errors.js'
import { parseLagFigures, type LagFigures } from '../../shared/event-loop-lag.js'
import { writeDurableJson } from '../../shared/durable-json.js'
import { prepareLabDir } from '../../shared/lab-dir.js'
import { labLayout, rotatedPaths, type LabLayout } from '../../shared/lab-layout.js'
import { createFileLogger, type Logger } from '../../shared/log.js'
import { validateMessage, type Message } from '../../shared/protocol/messages.js'
import type { ClusterStatus } from '../../shared/protocol/cluster-messages.js'
import type { Role } from '../../shared/protocol/runtime-messages.js'
import {
  loadTopology,
  organisationsOf,
  clustersOf,
  peersOf,
  processesOf,
  processesWithForeignPeers,
  type ProcessSpec,
  type Topology,
} from '../../shared/topology.js'
import { prepareLabPki } from '../../shared/pki/lab-pki.js'
import { LAB_ORGANISATION } from '../../shared/organisation.js'
import { bundlePath, type BundleName } from '../build/build.mjs'
import type { Endpoint } from '../../shared/transport/peer-client.js'
import type { PeerConnection } from '../../shared/transport/peer-connection.js'
import { PeerServer } from '../../shared/transport/peer-server.js'
import { setRefusalLogRate } from '../../shared/transport/refusal-log.js'
import { listenerLimitsOf } from '../../shared/transport/topology-limits.js'
import type { DetailsOf, EventKind } from '../../shared/timeline/events.js'
import { readRunningControl, type ControlFile } from './control-file.js'
import { takeEvent } from './event-intake.js'
import { LinkTable, topologyNetwork, type LinkRow } from './link-table.js'
import { partitionShape, type Cut, type PartitionShape } from './partition-shapes.js'
import { lastLinesOf } from './log-tail.js'
import type { SignalName } from './signals.js'
import type { ClockSkew } from '../../shared/skewed-clock.js'
import { mulberry32 } from '../../shared/seeded-random.js'
import { CLOCK_DRIFT_MAX, CLOCK_OFFSET_MS_MAX, checkFaultOption } from '../../shared/fault-limits.js'
import type { LinkShape } from '../../shared/transport/link-shaper.js'
import { Timeline, timelineLimits } from './timeline.js'
import { SWITCH_INFLIGHT_PER_HOST_MAX, VirtualSwitch } from './virtual-switch.js'

export type ProcessState = 'starting' | 'up' | 'down' | 'paused'

export interface ProcessExit {
  code: number | null
  signal: string | null
  at_ms: number
  /** Whether the lab (down, kill, restart) caused it, or the process died by itself. */
  requested: boolean
  lastLogLines: string[]
}

interface ProcessRecord {
  spec: ProcessSpec
  state: ProcessState
  child: ChildProcess | undefined
  pid: number | undefined
  started_ms: number | undefined
  peerEndpoint: Endpoint | undefined
  httpEndpoint: Endpoint | undefined
  peers: string[]
  link: PeerConnection | undefined
  lastExit: ProcessExit | undefined
  starts: number
  expectExit: boolean
  stderrTail: string[]
  /** Its event-loop lag as its GET /status last reported it (refreshed every second while someone reads status). */
  eventLoopLag: LagFigures | null
  /** The numbered notices taken from it (shared/notice-outbox.ts). */
  notices: NoticeIntake
}

export interface ProcessStatus {
  name: string
  role: Role
  site: string
  /** The failover cluster of a host, witness or array; null: a standalone host. */
  cluster: string | null
  pid: number | null
  state: ProcessState
  uptime_ms: number | null
  peers: string[]
  expectedPeers: string[]
  /** Peers it cannot make a connection with: partitioned either way, or one way (link-table.ts). */
  blocked: string[]
  /** The skew the lab set on its clock (`hvlab clock set`), or null. */
  clockSkew: ClockSkew | null
  peerPort: number | null
  metricsPort: number | null
  starts: number
  lastExit: ProcessExit | null
  /** Its event-loop lag over its last 10–20 s, from its GET /status (every second while someone reads status); null while unknown. */
  eventLoopLag: LagFigures | null
}

/** A failover cluster as each up host and its witness report it on GET /status (refreshed every second while someone reads status). */
export interface LabClusterStatus {
  /** The cluster's name (absent in the status of older labs: the only one). */
  name?: string
  /** Each up host's own view of the quorum; a host that did not answer in time is absent. */
  hosts: Record<string, ClusterStatus>
  /** The witness's record: newest epochs seen and the coordinator holding its vote. */
  witness: { committed_epoch: number; db_epoch: number; lease_epoch: number; vote_holder: string | null } | null
  refreshed_ms: number
}

export interface LabStatus {
  lab: {
    name: string
    dir: string
    controllerPid: number
    started_ms: number
    /** Every process is up and linked to every peer it is not partitioned from. */
    healthy: boolean
    /**
     * Every failover cluster has formed: each of its hosts holds the quorum lease of one
     * view that has them all as members (as last refreshed). Null: no hosts, no cluster.
     */
    clusterFormed: boolean | null
    /** The controller's own status/metrics port (controller-health.ts) and event-loop lag; null when it serves none. */
    metricsPort: number | null
    eventLoopLag: LagFigures | null
  }
  processes: ProcessStatus[]
  partitions: { a: string[]; b: string[] }[]
  /** Each direction of a link with a fault (link-table.ts): shaping, or a one-way cut. */
  links: LinkRow[]
  /** The first failover cluster (the topology's top-level one). */
  cluster?: LabClusterStatus
  /** Every further cluster (topology `clusters`), in topology order; absent when there is none. */
  clusters?: LabClusterStatus[]
}

/** How long the controller waits for one process's GET /status, and how often it asks. */
const CLUSTER_STATUS_TIMEOUT_MS = 500
const CLUSTER_STATUS_REFRESH_MS = 1000
/** How long after the last status read the background refresh goes on. */
const CLUSTER_STATUS_WATCH_MS = 5_000

/** One process's GET /status, or undefined when it is not up or did not answer in time. */
async function fetchProcessStatus(r: ProcessRecord): Promise<Record<string, unknown> | undefined> {
  if (r.state !== 'up' || !r.httpEndpoint) return undefined
  try {
    const res = await fetch(`http://${r.httpEndpoint.host}:${r.httpEndpoint.port}/status`, {
      signal: AbortSignal.timeout(CLUSTER_STATUS_TIMEOUT_MS),
    })
    return res.ok ? ((await res.json()) as Record<string, unknown>) : undefined
  } catch {
    return undefined
  }
}

/** The bundle (dist/, scripts/build/build.mjs) each role's processes run. */
const ROLE_BUNDLE: Record<Role, BundleName> = { host: 'host', witness: 'witness', array: 'array', standalone: 'standalone' }

/** Hyper-V hosts run VMs: cluster members, and standalone hosts (a replica server after a Replica failover). */
const runsVms = (role: Role): boolean => role === 'host' || role === 'standalone'

const STOP_GRACE_MS = 3_000
/** A guest-ping the switch forwards may wait this long: the host holds it while the guest is paused (GUEST_HOLD_MS) plus slack. */
const GUEST_PING_TIMEOUT_MS = 8_000

/** The controller process's own status/metrics endpoint (controller-health.ts). */
export interface ControllerHealth {
  port: number
  eventLoopLag: { read(): LagFigures | null }
}

export interface LabControllerOptions {
  dir: string
  topologyFile?: string
  log?: Logger
}

export class LabController {
  readonly timeline: Timeline
  readonly started_ms = Date.now()
  /** The lab's virtual switch: VM addresses → the host that runs each (learned from the hosts' own announcements). */
  readonly vswitch: VirtualSwitch
  private readonly records = new Map<string, ProcessRecord>()
  private readonly partitions: { a: string[]; b: string[] }[] = []
  private readonly links: LinkTable
  /** Each process's clock skew as the lab set it (`hvlab clock set`); absent: none. */
  private readonly clockSkews = new Map<string, ClockSkew>()
  private server: PeerServer | undefined
  private stopping = false
  /** Each cluster's status, the first cluster first (as last refreshed); empty before the first refresh. */
  private clusterStatuses: LabClusterStatus[] = []
  private health: ControllerHealth | undefined
  private clusterRefresh: NodeJS.Timeout | undefined
  private refreshing: Promise<void> | undefined
  private watched_until_ms = 0

  private constructor(
    readonly topology: Topology,
    readonly layout: LabLayout,
    readonly secret: string,
    readonly log: Logger,
    timeline: Timeline,
    /** Each organisation's secret (the lab's own is `secret`): a process proves its organisation's. */
    private readonly organisationSecrets: ReadonlyMap<string, string>,
  ) {
    this.timeline = timeline
    this.links = new LinkTable(topologyNetwork(topology))
    this.vswitch = new VirtualSwitch({
      clock: new RealClock(),
      forward: async (host, ping) => {
        const link = this.records.get(host)?.link
        if (!link?.isOpen) throw new HvlabError('HVLAB_E_CLOSED', `${host} is not connected to the lab controller`)
        const r = await link.request(ping, { timeout_ms: GUEST_PING_TIMEOUT_MS })
        if (r.message.t !== 'guest-pong' && r.message.t !== 'guest-unavailable')
          throw new HvlabError('HVLAB_E_PROTOCOL', `${host} answered a guest-ping with ${r.message.t}`)
        return r.message
      },
      // Half of a link's requests in flight at most: the other half stays for the operator's.
      inflight_per_host_max: Math.max(1, Math.min(SWITCH_INFLIGHT_PER_HOST_MAX, Math.floor(topology.limits.requests_in_flight_max / 2))),
      onMoved: (m) => this.event('switch.vm-moved', { ...m }),
      wallNow: () => Date.now(),
    })
    for (const spec of processesOf(topology)) {
      this.records.set(spec.name, {
        spec,
        state: 'down',
        child: undefined,
        pid: undefined,
        started_ms: undefined,
        peerEndpoint: undefined,
        httpEndpoint: undefined,
        peers: [],
        link: undefined,
        lastExit: undefined,
        starts: 0,
        expectExit: false,
        stderrTail: [],
        eventLoopLag: null,
        notices: new NoticeIntake(),
      })
    }
  }

  /** Prepares the data dir (secrets, certificates, topology copy) and listens; spawns nothing yet. */
  static async create(options: LabControllerOptions): Promise<LabController> {
    const layout = labLayout(options.dir)
    const topology = loadTopology(options.topologyFile)
    prepareLabDir(layout)
    const running = readRunningControl(layout)
    if (running)
      throw new HvlabError(
        'HVLAB_E_STATE',
        `a lab is already running in ${layout.root} (controller pid ${running.pid}); run \`hvlab down --dir ${options.dir}\` first, or use another --dir`,
      )
    if (options.topologyFile) copyFileSync(options.topologyFile, layout.topology)
    else writeFileSync(layout.topology, JSON.stringify(topology, null, 2))
    // Certificates only where a link runs between organisations: a lab of one issues none.
    const needCertificates = processesWithForeignPeers(topology)
    if (needCertificates.length > 0) await prepareLabPki(layout, needCertificates)
    const secrets = new Map(organisationsOf(topology).map((o) => [o, ensureSecret(layout.secretOf(o))]))
    const secret = secrets.get(LAB_ORGANISATION)!
    const log =
      options.log ??
      (await createFileLogger({
        name: 'controller',
        file: layout.controllerLog,
        file_bytes_max: topology.limits.log_file_bytes_max,
        files_kept: topology.limits.log_files_kept,
      }))
    const timeline = await Timeline.open(layout.events, timelineLimits(topology.limits), (e) =>
      log.error({ err: describeError(e) }, 'cannot write the timeline file'),
    )
    const controller = new LabController(topology, layout, secret, log, timeline, secrets)
    await controller.listen()
    return controller
  }

  /** The controller's own status/metrics endpoint, shown in `lab` of status. */
  setHealth(health: ControllerHealth): void {
    this.health = health
  }

  get peerPort(): number {
    return this.server!.port
  }

  /** Spawns every process of the topology. */
  startAll(): void {
    this.event('lab.started', { topology: this.topology.name, dir: this.layout.root, processes: this.records.size })
    for (const name of this.records.keys()) this.spawnProcess(name)
  }

  status(): LabStatus {
    const now = Date.now()
    const processes = [...this.records.values()].map((r): ProcessStatus => ({
      name: r.spec.name,
      role: r.spec.role,
      cluster: r.spec.cluster,
      site: r.spec.site,
      pid: r.state === 'down' ? null : (r.pid ?? null),
      state: r.state,
      uptime_ms: r.state === 'down' || r.started_ms === undefined ? null : now - r.started_ms,
      peers: r.state === 'down' ? [] : r.peers,
      expectedPeers: peersOf(this.topology, r.spec.name).map((p) => p.name),
      blocked: this.unreachableFrom(r.spec.name),
      clockSkew: this.clockSkews.get(r.spec.name) ?? null,
      peerPort: r.state === 'down' ? null : (r.peerEndpoint?.port ?? null),
      metricsPort: r.state === 'down' ? null : (r.httpEndpoint?.port ?? null),
      starts: r.starts,
      lastExit: r.lastExit ?? null,
      eventLoopLag: r.state === 'up' ? r.eventLoopLag : null,
    }))
    const healthy = processes.every((p) => p.state === 'up' && p.expectedPeers.every((e) => p.peers.includes(e) || p.blocked.includes(e)))
    this.keepClusterStatusFresh()
    return {
      lab: {
        name: this.topology.name,
        dir: this.layout.root,
        controllerPid: process.pid,
        started_ms: this.started_ms,
        healthy,
        clusterFormed: this.clusterFormed(),
        metricsPort: this.health?.port ?? null,
        eventLoopLag: this.health?.eventLoopLag.read() ?? null,
      },
      processes,
      partitions: this.partitions.map((p) => ({ a: [...p.a], b: [...p.b] })),
      links: this.links.list(),
      ...(this.clusterStatuses[0] ? { cluster: this.clusterStatuses[0] } : {}),
      ...(this.clusterStatuses.length > 1 ? { clusters: this.clusterStatuses.slice(1) } : {}),
    }
  }

  private clusterFormed(): boolean | null {
    if (this.clusterStatuses.length === 0) return false
    return clustersOf(this.topology).every((c, i) => {
      const names = c.hosts.map((h) => h.name).sort()
      const views = names.map((n) => this.clusterStatuses[i]?.hosts[n])
      const everyone = names.join(',')
      return views.every(
        (v) => v !== undefined && v.holds_lease && v.epoch === views[0]!.epoch && [...v.members].sort().join(',') === everyone,
      )
    })
  }

  /**
   * The lab's status with the `cluster` part and the processes' lag refreshed within the
   * last refresh interval or two: when nobody has asked for a while the background refresh
   * has stopped, and this waits for one refresh first (at most CLUSTER_STATUS_TIMEOUT_MS).
   */
  async currentStatus(): Promise<LabStatus> {
    const first = this.clusterStatuses[0]
    const fresh = first !== undefined && Date.now() - first.refreshed_ms <= 2 * CLUSTER_STATUS_REFRESH_MS
    if (!fresh) await this.refreshClusterStatus()
    return this.status()
  }

  /**
   * Keeps the `cluster` part of status and the processes' event-loop lag refreshed every
   * CLUSTER_STATUS_REFRESH_MS while someone reads status (CLUSTER_STATUS_WATCH_MS since the
   * last read), from every up process's GET /status. An idle lab nobody watches is not
   * polled: 19 requests a second cost a 16-host lab about 4 % of a core.
   */
  private keepClusterStatusFresh(): void {
    this.watched_until_ms = Date.now() + CLUSTER_STATUS_WATCH_MS
    if (this.clusterRefresh || this.stopping) return
    const loop = (): void => {
      if (this.stopping || Date.now() >= this.watched_until_ms) return void (this.clusterRefresh = undefined)
      void this.refreshClusterStatus().finally(() => {
        if (!this.stopping) this.clusterRefresh = setTimeout(loop, CLUSTER_STATUS_REFRESH_MS).unref()
      })
    }
    this.clusterRefresh = setTimeout(loop, 0).unref()
  }

  /** One refresh of every up process's GET /status; concurrent callers share it. */
  private refreshClusterStatus(): Promise<void> {
    this.refreshing ??= this.fetchClusterStatus().finally(() => (this.refreshing = undefined))
    return this.refreshing
  }

  private async fetchClusterStatus(): Promise<void> {
    const answers = await Promise.all([...this.records.values()].map(async (r) => [r, await fetchProcessStatus(r)] as const))
    const refreshed_ms = Date.now()
    const statuses = clustersOf(this.topology).map((c): LabClusterStatus => ({ name: c.name, hosts: {}, witness: null, refreshed_ms }))
    for (const [r, s] of answers) {
      // A process that did not answer within the timeout shows no lag: not a stale figure.
      r.eventLoopLag = parseLagFigures(s?.event_loop_lag)
      const status = statuses.find((c) => c.name === r.spec.cluster)
      if (status === undefined) continue
      if (s?.cluster && r.spec.role === 'host') status.hosts[r.spec.name] = s.cluster as ClusterStatus
      if (s?.witness && r.spec.role === 'witness') status.witness = s.witness as LabClusterStatus['witness']
    }
    this.clusterStatuses = statuses
  }

  /** Sends a signal to one process: KILL/TERM end it, STOP pauses it, CONT resumes it. */
  kill(name: string, signal: SignalName): ProcessStatus {
    const r = this.record(name)
    if (r.state === 'down' || !r.child) throw new HvlabError('HVLAB_E_STATE', `${name} is not running; \`hvlab restart ${name}\` starts it`)
    if (signal === 'CONT' && r.state !== 'paused')
      throw new HvlabError('HVLAB_E_STATE', `${name} is not paused; only a process stopped with --signal STOP can be continued`)
    if (signal === 'STOP' && r.state === 'paused')
      throw new HvlabError('HVLAB_E_STATE', `${name} is already paused; use --signal CONT to resume it`)
    if (signal === 'KILL' || signal === 'TERM') r.expectExit = true
    r.child.kill(`SIG${signal}`)
    if (signal === 'STOP') r.state = 'paused'
    if (signal === 'CONT') r.state = r.link?.isOpen ? 'up' : 'starting'
    this.event('process.signalled', { process: name, signal: `SIG${signal}` })
    return this.status().processes.find((p) => p.name === name)!
  }

  /**
   * Sends a signal to every process of a site that it applies to (a running one for KILL,
   * TERM and STOP, a paused one for CONT): a whole site lost at once.
   */
  killSite(site: string, signal: SignalName): ProcessStatus[] {
    if (!this.topology.sites.some((s) => s.name === site))
      throw new HvlabError('HVLAB_E_NOT_FOUND', `no site named ${site}; known: ${this.topology.sites.map((s) => s.name).join(', ')}`)
    const applies = (r: ProcessRecord): boolean =>
      signal === 'CONT' ? r.state === 'paused' : r.state !== 'down' && r.child !== undefined && !(signal === 'STOP' && r.state === 'paused')
    const targets = [...this.records.values()].filter((r) => r.spec.site === site && applies(r))
    if (targets.length === 0)
      throw new HvlabError('HVLAB_E_STATE', `no process of site ${site} can take SIG${signal} now (\`hvlab status\` shows their states)`)
    return targets.map((r) => this.kill(r.spec.name, signal))
  }

  /**
   * Sets a process's clock skew (shared/skewed-clock.ts) from now on; it is set again
   * when the process restarts, as a machine's clock stays off across a restart. A zero
   * offset and drift clears it.
   */
  setClock(name: string, skew: ClockSkew): ClockSkew {
    const r = this.record(name)
    checkFaultOption('--offset-ms', skew.offset_ms, -CLOCK_OFFSET_MS_MAX, CLOCK_OFFSET_MS_MAX)
    checkFaultOption('--drift', skew.drift, -CLOCK_DRIFT_MAX, CLOCK_DRIFT_MAX)
    if (skew.offset_ms === 0 && skew.drift === 0) this.clockSkews.delete(name)
    else this.clockSkews.set(name, { ...skew })
    void r.link?.send({ t: 'clock-set', ...skew }).catch(() => {})
    this.event('clock.set', { process: name, offset_ms: skew.offset_ms, drift: skew.drift })
    return { ...skew }
  }

  /** Starts a process again with its data intact; a running one is stopped first. */
  async restart(name: string): Promise<void> {
    const r = this.record(name)
    if (r.state !== 'down') await this.stopProcess(r)
    this.spawnProcess(name)
  }

  /**
   * Forwards an operator's request (from the CLI) to one process over its authenticated
   * link and returns the reply. The message is validated here first; the process decides
   * whether it answers that request type.
   */
  async relay(name: string, raw: unknown, timeout_ms?: number): Promise<{ message: Message }> {
    const r = this.record(name)
    let message: Message
    try {
      message = validateMessage(raw, false)
    } catch (e) {
      throw new HvlabError('HVLAB_E_USAGE', describeError(e))
    }
    if (!r.link?.isOpen)
      throw new HvlabError(
        'HVLAB_E_PROCESS_DOWN',
        `${name} is ${r.state}${r.state === 'down' ? `; \`hvlab restart ${name}\` starts it` : ' and not connected to the lab controller right now'}`,
      )
    try {
      const reply = await r.link.request(message, timeout_ms === undefined ? {} : { timeout_ms })
      return { message: reply.message }
    } catch (e) {
      // The message is valid (checked above), but the process does not answer it as a request
      // (a one-way message, a reply, or not from the controller): the operator's mistake.
      if (e instanceof HvlabError && e.code === 'HVLAB_E_UNSUPPORTED')
        throw new HvlabError(
          'HVLAB_E_WRONG_PROCESS',
          `${name} refused ${message.t}: ${describeError(e)}; send a request that ${name} answers (is the CLI the same version as the running lab?)`,
          { cause: e },
        )
      throw e
    }
  }

  /**
   * Cuts every process of side `a` from every process of side `b` (names or sites): both
   * ways (connections cut at once), or `one_way`: what `a` sends `b` is lost (link-table.ts).
   */
  partition(a: string[], b: string[], one_way = false): { a: string[]; b: string[]; one_way: boolean } {
    const p = { ...this.sides(a, b, 'a partition'), one_way }
    if (one_way) {
      this.links.cut(p.a, p.b)
      this.pushLinks()
    } else {
      this.partitions.push({ a: p.a, b: p.b })
      this.pushPartitions()
    }
    this.event('network.partitioned', p)
    return p
  }

  /**
   * A partition of one of Jepsen's shapes over every process of the lab (partition-shapes.ts):
   * its both-way cuts join the partition list. The seed (random when not given) decides
   * the halves, the bridge and the ring, and is returned so the same shape can be asked again.
   */
  partitionShaped(
    shape: PartitionShape,
    options: { isolate?: string; seed?: number },
  ): { shape: PartitionShape; seed: number; cuts: Cut[] } {
    const seed = options.seed ?? Math.floor(Math.random() * 2 ** 32)
    const cuts = partitionShape(shape, [...this.records.keys()], mulberry32(seed), options.isolate)
    for (const c of cuts) this.partitions.push(c)
    this.pushPartitions()
    for (const c of cuts) this.event('network.partitioned', { ...c, one_way: false })
    return { shape, seed, cuts }
  }

  /** Shapes the links from side `a` to side `b`, and back unless `one_way` (replacing their shaping). */
  setLinks(a: string[], b: string[], shaping: LinkShape, one_way = false): LinkRow[] {
    const { a: sideA, b: sideB } = this.sides(a, b, 'a link')
    this.links.shape(sideA, sideB, shaping)
    if (!one_way) this.links.shape(sideB, sideA, shaping)
    this.pushLinks()
    this.event('network.link-set', { a: sideA, b: sideB, one_way, ...shaping })
    return this.links.list()
  }

  /** Resets every connection between a process of side `a` and one of side `b` now (both ends cut it; they dial again). */
  resetLinks(a: string[], b: string[]): { a: string[]; b: string[] } {
    const p = this.sides(a, b, 'a reset')
    const tell = (side: string[], peers: string[]): void => {
      for (const name of side)
        void this.records
          .get(name)
          ?.link?.send({ t: 'link-reset', peers })
          .catch(() => {})
    }
    tell(p.a, p.b)
    tell(p.b, p.a)
    this.event('network.reset', p)
    return p
  }

  linkRows(): LinkRow[] {
    return this.links.list()
  }

  /** Removes every partition and every link fault. */
  heal(): void {
    const had = this.partitions.length
    const links = this.links.list().length
    this.partitions.length = 0
    this.links.clear()
    this.pushPartitions()
    this.pushLinks()
    this.event('network.healed', { partitionsRemoved: had, linksCleared: links })
  }

  private sides(a: string[], b: string[], what: string): { a: string[]; b: string[] } {
    const sideA = this.expand(a)
    const sideB = this.expand(b)
    const overlap = sideA.filter((n) => sideB.includes(n))
    if (overlap.length > 0) throw new HvlabError('HVLAB_E_USAGE', `${overlap.join(', ')} cannot be on both sides of ${what}`)
    return { a: sideA, b: sideB }
  }

  /** Stops every process (TERM, then KILL after a grace period) and the controller's servers. */
  async down(): Promise<void> {
    if (this.stopping) return
    this.stopping = true
    this.event('lab.stopping', {})
    await Promise.all([...this.records.values()].map((r) => (r.state === 'down' ? undefined : this.stopProcess(r))))
    await this.server?.close()
    rmSync(this.layout.control, { force: true })
    this.event('lab.stopped', {})
    this.timeline.close()
  }

  /** Writes control.json atomically (temp file, rename): a reader sees the old file or the new, never a torn one that reads as "no lab running". */
  async writeControlFile(httpPort: number): Promise<void> {
    const control: ControlFile = {
      pid: process.pid,
      httpPort,
      peerPort: this.peerPort,
      topology: this.topology.name,
      started_ms: this.started_ms,
    }
    await writeDurableJson(this.layout.control, control)
  }

  private async listen(): Promise<void> {
    setRefusalLogRate(this.topology.limits.refusal_logs_per_s)
    this.server = await PeerServer.listen({
      name: 'controller',
      role: 'controller',
      secret: (name) => {
        const organisation = this.records.get(name)?.spec.organisation
        return organisation === undefined ? undefined : this.organisationSecrets.get(organisation)
      },
      log: this.log,
      ...listenerLimitsOf(this.topology.limits),
      // Only the topology's processes, each in its own role (HVLAB_E_AUTH otherwise).
      roleOf: (name) => this.records.get(name)?.spec.role,
      onPeer: (c) => this.attach(c),
    })
  }

  private attach(c: PeerConnection): void {
    const r = this.records.get(c.remoteName)!
    r.link?.terminate()
    r.link = c
    c.onRequest('register', ({ message }) => {
      if (message.name !== c.remoteName)
        throw new HvlabError('HVLAB_E_REFUSED', `registration for ${message.name} on ${c.remoteName}'s connection`)
      r.peerEndpoint = message.peerEndpoint
      r.httpEndpoint = message.httpEndpoint
      if (r.pid !== message.pid)
        this.log.warn({ process: r.spec.name, spawned: r.pid, registered: message.pid }, 'registered pid differs from spawned pid')
      if (r.state === 'starting') {
        r.state = 'up'
        this.event('process.up', {
          process: r.spec.name,
          pid: message.pid,
          peerPort: message.peerEndpoint.port,
          metricsPort: message.httpEndpoint.port,
        })
      }
      const notices_through = r.notices.register(message.pid)
      this.pushDirectory()
      void c.send({ t: 'partition-set', blocked: this.blockedFor(r.spec.name) }).catch(() => {})
      void c.send({ t: 'link-set', links: this.linkFaultsFor(r.spec.name) }).catch(() => {})
      const skew = this.clockSkews.get(r.spec.name)
      if (skew) void c.send({ t: 'clock-set', ...skew }).catch(() => {})
      // Pings that waited for this host's link go out again.
      if (runsVms(r.spec.role)) queueMicrotask(() => this.vswitch.hostUp(r.spec.name))
      return { message: { t: 'registered', notices_through } }
    })
    c.onMessage('peers-report', ({ message }) => {
      r.peers = [...message.connected].sort()
    })
    // Checked against its kind's schema first: a bad one is refused and logged, the link kept.
    c.onMessage('event', ({ message }) => {
      if (r.notices.fresh(message.n)) takeEvent(this.timeline, this.log, c.remoteName, message)
    })
    // A host's own announcements of where its VMs are teach the virtual switch (never the timeline).
    c.onMessage('vm-location', ({ message }) => {
      if (!r.notices.fresh(message.n)) return
      if (runsVms(r.spec.role)) this.vswitch.located(c.remoteName, message)
      else this.log.warn({ process: c.remoteName, vm: message.vm }, 'a process that runs no vms announced a vm location; ignored')
    })
    c.once('close', () => {
      if (r.link === c) r.link = undefined
    })
  }

  private spawnProcess(name: string): void {
    const r = this.record(name)
    if (this.stopping) throw new HvlabError('HVLAB_E_STATE', 'the lab is stopping')
    if (r.state !== 'down') throw new HvlabError('HVLAB_E_STATE', `${name} is already ${r.state}`)
    const args = [
      ...LAB_NODE_ARGS, // shared/lab-runtime.ts
      bundlePath(ROLE_BUNDLE[r.spec.role]),
      '--name',
      name,
      '--dir',
      this.layout.root,
      '--topology',
      this.layout.topology,
      '--controller-port',
      String(this.peerPort),
    ]
    const env = withAllocatorEnv({ ...process.env, NODE_OPTIONS: '' }) // shared/lab-runtime.ts
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe', 'ipc'], env })
    r.child = child
    r.pid = child.pid
    r.state = 'starting'
    r.started_ms = Date.now()
    r.peers = []
    r.starts += 1
    r.expectExit = false
    r.stderrTail = []
    child.stderr?.setEncoding('utf8')
    child.stderr?.on('data', (chunk: string) => {
      r.stderrTail.push(...chunk.split('\n').filter((l) => l.length > 0))
      if (r.stderrTail.length > 20) r.stderrTail.splice(0, r.stderrTail.length - 20)
    })
    child.on('error', (e) => this.log.error({ process: name, err: describeError(e) }, 'spawn failed'))
    child.on('exit', (code, signal) => this.onExit(r, child, code, signal))
    this.event('process.started', { process: name, role: r.spec.role, site: r.spec.site, pid: child.pid ?? null })
  }

  private onExit(r: ProcessRecord, child: ChildProcess, code: number | null, signal: NodeJS.Signals | null): void {
    if (r.child !== child) return
    const exit: ProcessExit = {
      code,
      signal,
      at_ms: Date.now(),
      requested: r.expectExit || this.stopping,
      lastLogLines: [...lastLinesOf(rotatedPaths(this.layout.processLog(r.spec.name)), 10), ...r.stderrTail.slice(-10)],
    }
    r.state = 'down'
    r.child = undefined
    r.lastExit = exit
    this.vswitch.forgetHost(r.spec.name)
    r.link?.terminate()
    r.link = undefined
    r.peers = []
    this.event(exit.requested ? 'process.exited' : 'process.crashed', {
      process: r.spec.name,
      pid: r.pid ?? null,
      code,
      signal,
      requested: exit.requested,
      lastLogLines: exit.requested ? [] : exit.lastLogLines,
    })
    if (!exit.requested)
      this.log.error({ process: r.spec.name, code, signal, lastLogLines: exit.lastLogLines }, 'process died by itself; not restarting it')
  }

  private async stopProcess(r: ProcessRecord): Promise<void> {
    const child = r.child
    if (!child) return
    r.expectExit = true
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
    if (r.state === 'paused') child.kill('SIGCONT')
    child.kill('SIGTERM')
    const timer = setTimeout(() => child.kill('SIGKILL'), STOP_GRACE_MS)
    await exited
    clearTimeout(timer)
  }

  private pushDirectory(): void {
    const entries = [...this.records.values()]
      .filter((r) => r.peerEndpoint && r.state !== 'down')
      .map((r) => ({ name: r.spec.name, role: r.spec.role, site: r.spec.site, peerEndpoint: r.peerEndpoint! }))
    for (const r of this.records.values()) void r.link?.send({ t: 'directory', entries }).catch(() => {})
  }

  private pushPartitions(): void {
    for (const r of this.records.values()) void r.link?.send({ t: 'partition-set', blocked: this.blockedFor(r.spec.name) }).catch(() => {})
  }

  private pushLinks(): void {
    for (const r of this.records.values()) void r.link?.send({ t: 'link-set', links: this.linkFaultsFor(r.spec.name) }).catch(() => {})
  }

  /** What `name` applies on its links: its faults over the topology's network. */
  private linkFaultsFor(name: string) {
    return this.links.faultsFor(
      name,
      peersOf(this.topology, name).map((p) => p.name),
    )
  }

  /** Peers `name` cannot make a connection with: partitioned from it either way or one way. */
  private unreachableFrom(name: string): string[] {
    const cut = this.linkFaultsFor(name)
      .filter((f) => f.no_new_connections)
      .map((f) => f.peer)
    return [...new Set([...this.blockedFor(name), ...cut])].sort()
  }

  private blockedFor(name: string): string[] {
    const blocked = new Set<string>()
    for (const p of this.partitions) {
      if (p.a.includes(name)) p.b.forEach((n) => blocked.add(n))
      if (p.b.includes(name)) p.a.forEach((n) => blocked.add(n))
    }
    return [...blocked].sort()
  }

  /** Process or site names → process names. */
  private expand(names: string[]): string[] {
    if (names.length === 0) throw new HvlabError('HVLAB_E_USAGE', 'each side of a partition needs at least one process or site')
    const out = new Set<string>()
    for (const n of names) {
      if (this.records.has(n)) out.add(n)
      else if (this.topology.sites.some((s) => s.name === n))
        processesOf(this.topology)
          .filter((p) => p.site === n)
          .forEach((p) => out.add(p.name))
      else
        throw new HvlabError(
          'HVLAB_E_NOT_FOUND',
          `${n} is neither a process nor a site of lab ${this.topology.name}; known sites: ${this.topology.sites.map((s) => s.name).join(', ')}`,
        )
    }
    return [...out].sort()
  }

  private record(name: string): ProcessRecord {
    const r = this.records.get(name)
    if (!r) throw new HvlabError('HVLAB_E_NOT_FOUND', `no process named ${name}; known: ${[...this.records.keys()].join(', ')}`)
    return r
  }

  private event<K extends EventKind>(kind: K, details: DetailsOf<K>): void {
    this.timeline.append({ at_ms: Date.now(), kind, source: 'lab', details })
    const fields: Record<string, unknown> = { event: kind, ...details }
    this.log.info(fields, kind as string)
  }
}

/** The secret in `file` (mode 0600), a new one when it has none that is whole. */
function ensureSecret(file: string): string {
  if (existsSync(file)) {
    const s = readFileSync(file, 'utf8').trim()
    if (/^[0-9a-f]{64}$/.test(s)) {
      chmodSync(file, 0o600)
      return s
    }
  }
  const secret = randomBytes(32).toString('hex')
  writeFileSync(file, secret + '\n', { mode: 0o600 })
  chmodSync(file, 0o600)
  return secret
}
