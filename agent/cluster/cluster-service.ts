/**
 * The shell that runs a host's Membership state machine in a real process: it restores
 * the host's record from disk (so a restarted host rejoins with its epochs and catches
 * up), feeds it the cluster messages peers send (after checking that `from` is the
 * authenticated peer), ticks it on the clock, and carries out its effects through the
 * cluster driver (a persist is durable in cluster.json before the effects after it run).
 */
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import type { Clock } from '../../shared/clock.js'
import { sentByConnectedPeer } from '../../shared/consensus/cluster-link.js'
import type { ClusterCommand, ClusterEvent, ClusterInput } from '../../shared/consensus/cluster-effects.js'
import { readDurableJson, writeDurableJson } from '../../shared/durable-json.js'
import { HvlabError, describeError } from '../../shared/errors.js'
import type { EmitEvent } from '../../shared/timeline/events.js'
import { flattenEventDetails } from '../../shared/timeline/flatten.js'
import { clusterDriver, timerOn, type ClusterDriver } from '../../shared/machine/cluster-driver.js'
import type { ClusterMessage, ClusterStatus } from '../../shared/protocol/cluster-messages.js'
import { clusterStatus } from './cluster-status.js'
import { Membership, type MembershipConfig, type NodeRecord } from './membership.js'
import { parseNodeRecord } from './node-record.js'

export const CLUSTER_RECORD_FILE = 'cluster.json'

export interface ClusterLog {
  info(o: object, msg: string): void
  warn(o: object, msg: string): void
  error(o: object, msg: string): void
}

export interface ClusterServiceDeps {
  config: MembershipConfig
  clock: Clock
  /** This host's own data dir (created if missing). */
  data_dir: string
  send(to: string, message: ClusterMessage): void
  isConnected(peer: string): boolean
  emitEvent: EmitEvent
  log: ClusterLog
  /** Effect batches queued at most; beyond, peers' messages are dropped and commands refused. */
  inputs_queued_max: number
  /** The record could not be written: the host must stop (see cluster-driver.ts). */
  onFatal(error: unknown): void
}

export type ClusterEventListener = (event: ClusterEvent, now_ms: number) => void

export class ClusterService {
  private readonly runner: ClusterDriver<NodeRecord>
  private readonly listeners: ClusterEventListener[] = []
  private stopped = false

  private constructor(
    private readonly deps: ClusterServiceDeps,
    readonly membership: Membership,
    readonly restored: boolean,
  ) {
    this.runner = clusterDriver<NodeRecord>(
      (input) => membership.step(input, deps.clock.now()),
      {
        armTimer: timerOn(deps.clock),
        send: (to, m) => deps.send(to, m),
        persist: (record) => writeDurableJson(this.recordFile, record),
        emit: (e) => this.onEvent(e),
        onTimer: (token) => this.step({ kind: 'timer', token }),
        onFatal: (e) => deps.onFatal(e),
      },
      { bound: { batches_max: deps.inputs_queued_max, log: deps.log }, defer_start: true },
    )
  }

  /** Reads this host's record (if any) and builds its state machine; nothing runs yet. */
  static async open(deps: ClusterServiceDeps): Promise<ClusterService> {
    await mkdir(deps.data_dir, { recursive: true })
    const file = join(deps.data_dir, CLUSTER_RECORD_FILE)
    const raw = await readDurableJson(file)
    const now = deps.clock.now()
    if (raw === undefined) return new ClusterService(deps, new Membership(deps.config, null, now), false)
    const record = parseNodeRecord(raw, file)
    deps.log.info({ epoch: record.view.epoch, db_epoch: record.db.db_epoch }, 'cluster record restored; rejoining')
    return new ClusterService(deps, Membership.restore(deps.config, record, now), true)
  }

  get recordFile(): string {
    return join(this.deps.data_dir, CLUSTER_RECORD_FILE)
  }

  /** Arms the tick; the host starts heartbeating and, when due, forming a view. */
  start(): void {
    const now = this.deps.clock.now()
    if (this.restored)
      this.deps.emitEvent('cluster.node-restored', { epoch: this.membership.view().epoch, db_epoch: this.membership.database().db_epoch })
    void this.runner.run(this.membership.start(now))
  }

  /** Stops the state machine; resolves once a record write under way has finished. */
  stop(): Promise<void> {
    this.stopped = true
    return this.runner.stop()
  }

  /** Listens to the state machine's events (for the role layer); called after the timeline got them. */
  onClusterEvent(listener: ClusterEventListener): void {
    this.listeners.push(listener)
  }

  /** A cluster message from an authenticated peer; one whose `from` is someone else is dropped. */
  receive(message: ClusterMessage, authenticated_from: string): void {
    if (!sentByConnectedPeer(message, authenticated_from, this.deps.log)) return
    if (!this.runner.admits()) return
    this.step({ kind: 'message', message })
  }

  /** An operator command; a refusal throws HvlabError before anything changes. */
  command(command: ClusterCommand): void {
    if (!this.runner.admits())
      throw new HvlabError(
        'HVLAB_E_BACKPRESSURE',
        `this host's cluster state machine has ${this.runner.backlog} steps waiting for its record to be written; try again shortly`,
      )
    this.step({ kind: 'command', command })
  }

  status(): ClusterStatus {
    const w = this.deps.config.witness
    return clusterStatus(this.membership, this.deps.clock.now(), w !== null && this.deps.isConnected(w))
  }

  private step(input: ClusterInput): void {
    if (this.stopped) return
    this.runner.feed(input)
  }

  private onEvent(e: ClusterEvent): void {
    this.deps.emitEvent(e.kind, flattenEventDetails(e.details))
    const now = this.deps.clock.now()
    for (const l of this.listeners) {
      try {
        l(e, now)
      } catch (err) {
        this.deps.log.error({ err: describeError(err), event: e.kind }, 'a cluster event listener failed')
      }
    }
  }
}
