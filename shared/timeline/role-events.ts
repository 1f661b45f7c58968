/**
 * The cluster's roles (VMs as cluster roles) and nodes on the timeline: what the
 * coordinator's RoleController decides (agent/cluster/role-controller.ts), its service's
 * takeover, and each host's VmAgent when it stops a VM on its own (no quorum, health).
 */
import { defineEvents, detail } from './details.js'
import type { SourcedEventOf } from './events.js'

/** A role's state change (`role.<state>`, RoleController setState): where it is and why. */
const stateChange = { role: detail.name(), node: detail.name().nullable(), from: detail.word(), reason: detail.text() }
const onNode = { role: detail.name(), node: detail.name(), reason: detail.text() }
const move = { role: detail.name(), from: detail.name().nullable(), to: detail.name(), reason: detail.text() }

export const roleStateEvents = defineEvents({
  'role.stopped': stateChange,
  'role.pending': stateChange,
  'role.starting': stateChange,
  'role.running': stateChange,
  'role.stopping': stateChange,
  'role.failed': stateChange,
})

export const roleEvents = defineEvents({
  'role.created': { role: detail.name(), memory_mib: detail.number(), preferred_owners: detail.text() },
  /** The operator removed the role (`hvlab vm remove`); `from` is the state it was in (stopped or failed). */
  'role.removed': { role: detail.name(), from: detail.word() },
  /** `hvlab vm set`: the settings that changed, as `key=value` pairs. */
  'role.settings-changed': { role: detail.name(), changes: detail.text() },
  /** A role of priority none (No Auto Start) was not started elsewhere after a failure. */
  'role.no-auto-start': { role: detail.name(), node: detail.name().nullable(), reason: detail.text() },
  'role.stray': onNode,
  'role.storage-refused': onNode,
  'role.drain-stuck': onNode,
  'role.health-failed': onNode,
  'role.health-suspect': { ...onNode, check: detail.word().nullable() },
  'role.move-requested': { role: detail.name(), from: detail.name().nullable(), to: detail.name() },
  'role.move-planned': move,
  'role.migrating': { ...move, mode: detail.word() },
  'role.migrated': move,
  'role.migrate-failed': { ...onNode, to: detail.name() },
  'role.failed-over': move,
  'role.failure': { ...onNode, action: detail.word(), policy: detail.text() },
  'role.stopped-no-quorum': { node: detail.name(), vms: detail.names(), without_lease_ms: detail.number(), reason: detail.text() },
  'role.coordinator-started': { node: detail.name(), epoch: detail.uint(), roles: detail.uint(), paused: detail.names() },
  'role.coordinator-synced': { node: detail.name(), epoch: detail.uint(), roles: detail.uint() },
})

export const nodeEvents = defineEvents({
  'node.lost': { node: detail.name(), epoch: detail.uint() },
  /** `drain` and `failback` are 1 or 0. */
  'node.paused': { node: detail.name(), drain: detail.uint() },
  'node.resumed': { node: detail.name(), failback: detail.uint() },
  'node.drained': { node: detail.name() },
  /** The RoleController was fed an older membership epoch than it has; ignored. */
  'membership.stale': { epoch: detail.uint(), current_epoch: detail.uint() },
})

/** What the RoleController emits (its service adds the coordinator's own). */
export type RoleEventKind = keyof typeof roleStateEvents | keyof typeof roleEvents | keyof typeof nodeEvents

/** A RoleController's `emit` effect: one role or node event, stamped with the controller's time. */
export type RoleEvent = { readonly at_ms: number } & SourcedEventOf<RoleEventKind>
