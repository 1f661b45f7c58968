/**
 * Remote Copy on the timeline: what an array's RemoteCopyGroup emits
 * (array-emulator/remote-copy-group.ts; every event names its group and the array's role
 * in it) and what the service says when it creates a group or finds its journal damaged.
 */
import { defineEvents, detail } from './details.js'
import type { DetailsOf } from './events.js'

const group = { group: detail.name(), role: detail.word() }
const cycle = { ...group, cycle: detail.uint() }

export const rcEvents = defineEvents({
  'rc.created': { ...group, partner: detail.name(), mode: detail.word() },
  'rc.journal-damaged': { group: detail.name(), lines_skipped: detail.uint(), rollback_snapshot_damaged: detail.flag() },
  'rc.started': group,
  /** With `reason` when the group stopped itself (the link went down, auto_recover off). */
  'rc.stopped': { ...group, reason: detail.text().optional() },
  'rc.admitted': { ...group, volume: detail.name(), remote_volume: detail.name() },
  /** A volume left the group (dismissrcopyvv); it stays on the array. */
  'rc.volume-dismissed': { ...group, volume: detail.name(), remote_volume: detail.name() },
  /** The group was removed from this array (removercopygroup); `volumes` were dismissed with it and stay on the array. */
  'rc.group-removed': { ...group, volumes: detail.names() },
  'rc.failover': { ...group, from: detail.word(), to: detail.word(), rolled_back: detail.flag() },
  'rc.reversed': group,
  'rc.switchover-started': group,
  'rc.switchover-aborted': { ...group, reason: detail.text() },
  'rc.link-up': group,
  'rc.link-down': { ...group, pending_sync_writes: detail.uint() },
  'rc.link-failed': { ...group, code: detail.word(), reason: detail.text(), pending_sync_writes: detail.uint() },
  'rc.role-change-unconfirmed': { ...group, op: detail.word() },
  /** The partner answered a role change: `from` on the side that changed, `partner` on the one that asked. */
  'rc.role-changed': { ...group, op: detail.word(), from: detail.word().optional(), to: detail.word(), partner: detail.word().optional() },
  'rc.both-primary': {
    ...group,
    local: detail.word(),
    partner: detail.word(),
    generation: detail.uint(),
    partner_generation: detail.uint(),
  },
  'rc.auto-recover': { ...group, partner: detail.name() },
  'rc.sync-started': { ...cycle, blocks: detail.uint().optional() },
  'rc.synced': { ...cycle, consistent_at_ms: detail.time_ms(), bytes_behind: detail.uint().optional() },
  'rc.sync-interrupted': cycle,
})

export type RcEventKind = keyof typeof rcEvents

/** A group's `emit` effect: one Remote Copy event with its details (its group and role included). */
export type RcEmitEffect = { [K in RcEventKind]: { kind: 'emit'; event: K; details: DetailsOf<K> } }[RcEventKind]

/** What a group gives for `kind`: it adds its group and role itself (an event may name the new role). */
export type RcGroupDetailsOf<K extends RcEventKind> = Omit<DetailsOf<K>, 'group' | 'role'> & { role?: string }

/** A group's event: its group and role, then the kind's own details. */
export function rcEmit<K extends RcEventKind>(kind: K, group: { group: string; role: string }, details: RcGroupDetailsOf<K>): RcEmitEffect {
  // group + RcGroupDetailsOf<K> is DetailsOf<K>; TypeScript cannot see that for a generic K.
  return { kind: 'emit', event: kind, details: { ...group, ...details } } as unknown as RcEmitEffect
}
