/**
 * Hyper-V Replica on the timeline (agent/replica/): a VM's replication cycles as its
 * primary sends them and the replica answers, missed cycles, resyncs and the health.
 */
import type { EventOf } from './events.js'
import { defineEvents, detail } from './details.js'

const vm = { vm: detail.name() }

export const replicaEvents = defineEvents({
  /** A cycle's shipment went to the replica (`again`: the unanswered one, sent again). */
  'replica.cycle-sent': { ...vm, cycle: detail.uint(), blocks: detail.uint(), bytes: detail.uint(), again: detail.flag() },
  'replica.cycle-applied': { ...vm, cycle: detail.uint() },
  /** A cycle came while the last shipment was still unanswered. */
  'replica.cycle-missed': { ...vm, in_flight: detail.uint() },
  /** `why`: log-over-half-disk, cycles-missing, or initial (initial replication, or a new primary without the log). */
  'replica.resync-needed': { ...vm, why: detail.word() },
  /** The VM moved (a live or quick migration) from `from` to `to`, and replication went on there from `from`'s last cycle `cycle`, without a resync. */
  'replica.primary-moved': { ...vm, from: detail.name(), to: detail.name(), cycle: detail.uint() },
  /** A resync ended: every block compared by hash, only those that differed sent. */
  'replica.resynced': { ...vm, blocks_compared: detail.uint(), blocks_sent: detail.uint() },
  /** Initial replication by media: the primary exported the VM's disk (its blocks holding data) to `file`. */
  'replica.exported': { ...vm, file: detail.text(), blocks: detail.uint() },
  /** The replica server imported an export as the replica's initial copy (the primary then sends only differences). */
  'replica.imported': { ...vm, blocks: detail.uint() },
  /** The guest quiesced (a VSS snapshot) and the cycle's log closed then: the replica takes an application-consistent point of it. */
  'replica.guest-quiesced': { ...vm, cycle: detail.uint(), waited_ms: detail.uint() },
  /** The guest did not quiesce in time: the cycle closed crash-consistent instead, and the guest resumed. */
  'replica.quiesce-timeout': { ...vm, cycle: detail.uint(), waited_ms: detail.uint() },
  /** Normal, Warning or Critical. */
  'replica.health': { ...vm, health: detail.word() },
})

export type ReplicaEventKind = keyof typeof replicaEvents
export type ReplicaEvent = EventOf<ReplicaEventKind>
