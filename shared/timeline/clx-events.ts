/**
 * Cluster extension (CLX) on the timeline: a host checks, switches over or fails over a
 * VM's remote copy group before it starts or moves the VM (agent/clx/clx-service.ts),
 * refuses when it may not, and provisions a replicated disk for a new VM.
 */
import { defineEvents, detail } from './details.js'

const vm = { vm: detail.name(), group: detail.name(), host: detail.name() }

export const clxEvents = defineEvents({
  'clx.checked': { ...vm, for: detail.word(), action: detail.word() },
  'clx.switchover': {
    ...vm,
    from_array: detail.name(),
    to_array: detail.name(),
    verb: detail.word(),
    role: detail.word(),
    context: detail.word(),
  },
  'clx.failover': { ...vm, array: detail.name(), role: detail.word(), forced: detail.flag(), why: detail.text(), context: detail.word() },
  'clx.refused': { ...vm, reason: detail.word(), context: detail.word(), forceable: detail.flag(), message: detail.text() },
  'clx.disk-provisioned': {
    vm: detail.name(),
    group: detail.name(),
    volume: detail.name(),
    size_bytes: detail.uint(),
    primary: detail.name(),
    secondary: detail.name(),
    /** sync, or periodic with its period as the array runs it (the lab's timeScale applied); absent in events of older labs: sync. */
    mode: detail.word().optional(),
    period_ms: detail.uint().optional(),
    /** Disks of the VM, each a volume of `size_bytes` in the group (`volume` is disk 0); absent: 1. */
    disks: detail.uint().optional(),
  },
})
