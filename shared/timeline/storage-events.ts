/**
 * Storage on the timeline: an array's volumes and LUNs (array-emulator/array-service.ts)
 * and the hosts' Cluster Shared Volumes (agent/csv/): created, coordinator moves, regions,
 * and each node's I/O path (direct, or redirected through the coordinator).
 */
import { defineEvents, detail } from './details.js'

const volume = { volume: detail.name(), size_bytes: detail.uint() }

export const arrayEvents = defineEvents({
  /** With `reason` when the array made it itself (a remote copy secondary). */
  'array.volume-created': { ...volume, reason: detail.text().optional() },
  'array.volume-grown': volume,
  'array.volume-removed': { volume: detail.name() },
  'array.lun-presented': { volume: detail.name(), host: detail.name(), initiators: detail.names() },
  'array.lun-unpresented': { volume: detail.name(), host: detail.name() },
  /** The lab set the array's disk faults (`hvlab array disk`): all off is a healthy disk. */
  'array.disk-faults-set': { fsync_delay_ms: detail.uint(), fsync_fails: detail.flag(), full: detail.flag() },
})

const region = { csv: detail.name(), region: detail.name(), coordinator: detail.name() }

export const csvEvents = defineEvents({
  'csv.created': { csv: detail.name(), array: detail.name(), volume: detail.name(), size_bytes: detail.uint(), coordinator: detail.name() },
  /** With `epoch` when a takeover moved it (its old node left the view). */
  'csv.coordinator-moved': {
    csv: detail.name(),
    from: detail.name(),
    to: detail.name(),
    reason: detail.text(),
    epoch: detail.uint().optional(),
  },
  'csv.region-allocated': { ...region, offset_block: detail.uint(), blocks: detail.uint() },
  'csv.region-released': region,
  /** The CSV's record left the cluster database (`hvlab csv remove`); `volume_removed`: its volume went from the array too. */
  'csv.removed': {
    csv: detail.name(),
    array: detail.name(),
    volume: detail.name(),
    coordinator: detail.name(),
    volume_removed: detail.flag(),
  },
  'csv.io-redirected': { csv: detail.name(), node: detail.name(), reason: detail.word(), detail: detail.text() },
  'csv.io-direct': { csv: detail.name(), node: detail.name(), redirected_ms: detail.number() },
})
