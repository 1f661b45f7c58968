/**
 * The file-share witness's state machine (pure). It is one voter of the cluster, by the
 * acceptor rules every voter follows (shared/consensus/acceptor.ts): it confirms the
 * current view's quorum lease, reports how long the leases it confirmed last, and keeps
 * on disk only a small record with the newest view epoch and cluster-database epoch it
 * has seen. A host whose database is
 * older than that record cannot form the cluster with the witness's vote ("partition in
 * time"): the witness refuses it, and has no database contents to give it.
 */
import {
  NOT_HEARD,
  emptyAcceptorRecord,
  onAccept,
  onDecided,
  onLeaseRequest,
  onPrepare,
  startedAcceptor,
  type AcceptorRecord,
  type AcceptorSettings,
  type CoordinatorHeard,
} from '../shared/consensus/acceptor.js'
import type { ClusterEvent, ClusterInput, Effect } from '../shared/consensus/cluster-effects.js'
import type { ClusterMessage } from '../shared/protocol/cluster-messages.js'
import type { ClusterDetailsOf, WitnessEventKind } from '../shared/timeline/cluster-events.js'

export type ArbiterRecord = AcceptorRecord
export type ArbiterEffect = Effect<ArbiterRecord>

export interface ArbiterConfig extends AcceptorSettings {
  /** The witness's own name (what hosts address it by and count its vote as). */
  name: string
  /** The hosts allowed to talk to it. */
  nodes: readonly string[]
}

export class Arbiter {
  private rec: AcceptorRecord
  /** The coordinator whose lease request the witness last confirmed (in memory). */
  private heard: CoordinatorHeard = NOT_HEARD

  /** A witness started at `now_ms`, fresh or (with `record`) from its persisted record. */
  constructor(
    private readonly config: ArbiterConfig,
    now_ms: number,
    record: ArbiterRecord = emptyAcceptorRecord(),
  ) {
    this.rec = startedAcceptor(structuredClone(record), now_ms, config)
  }

  record(): Readonly<ArbiterRecord> {
    return this.rec
  }

  step(input: ClusterInput, now_ms: number): ArbiterEffect[] {
    if (input.kind !== 'message') return []
    const m = input.message
    if (!this.config.nodes.includes(m.from)) return []
    return this.onMessage(m, now_ms)
  }

  private onMessage(m: ClusterMessage, now_ms: number): ArbiterEffect[] {
    const self = this.config.name
    switch (m.t) {
      case 'cluster-prepare': {
        const r = onPrepare(self, this.rec, m, { now_ms, settings: this.config, heard: this.heard })
        return this.reply(m.from, r.record, r.changed, r.reply)
      }
      case 'cluster-accept': {
        const r = onAccept(self, this.rec, m, { now_ms, settings: this.config, heard: this.heard })
        return this.reply(m.from, r.record, r.changed, r.reply)
      }
      case 'cluster-commit': {
        const before = this.rec.committed_epoch
        const r = onDecided(this.rec, m.view.epoch, m.db.db_epoch)
        if (!r.changed) return []
        const out = this.adopt(r.record)
        if (r.record.committed_epoch > before)
          out.push(this.event('witness.epoch-recorded', { epoch: r.record.committed_epoch, db_epoch: r.record.db_epoch }))
        return out
      }
      case 'cluster-lease-request': {
        // A lease request proves its epoch was decided: the witness needs no more than the epoch.
        const out: ArbiterEffect[] = []
        if (m.epoch > this.rec.committed_epoch) {
          out.push(...this.adopt(onDecided(this.rec, m.epoch, m.db_epoch).record))
        }
        const r = onLeaseRequest(self, this.rec, m, this.config)
        if (!r) return out
        this.heard = { epoch: m.epoch, coordinator: m.from, at_ms: now_ms }
        out.push({ kind: 'send', to: m.from, message: r.ack, liveness: true })
        if (!r.durable) {
          this.rec = r.record
          return out
        }
        return [...out, ...this.reply(m.from, r.record, true, { ...r.ack, db_epoch: r.record.db_epoch })]
      }
      default:
        return []
    }
  }

  private adopt(record: AcceptorRecord): ArbiterEffect[] {
    if (record.committed_epoch < this.rec.committed_epoch || record.db_epoch < this.rec.db_epoch) {
      throw new Error(`witness epochs would go backwards: ${JSON.stringify(this.rec)} -> ${JSON.stringify(record)}`)
    }
    this.rec = record
    return [{ kind: 'persist', record }]
  }

  private reply(to: string, record: AcceptorRecord, changed: boolean, message: ClusterMessage): ArbiterEffect[] {
    const out: ArbiterEffect[] = changed ? this.adopt(record) : []
    out.push({ kind: 'send', to, message })
    return out
  }

  private event<K extends WitnessEventKind>(kind: K, details: ClusterDetailsOf<K>): ArbiterEffect {
    const event = { kind, source: this.config.name, details } as ClusterEvent
    return { kind: 'emit', event }
  }
}
