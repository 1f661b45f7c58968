/**
 * The array process's shell: opens the volumes, LUN masking, fencing table and Remote
 * Copy groups in this process's data dir; answers host block I/O from peers (block-write
 * with the data as attachment → block-written; block-read → block-data), the Remote Copy
 * traffic of the partner array, and the operator's admin requests relayed from the CLI.
 * A bad request gets a clear HvlabError reply; nothing is written and the array keeps
 * serving everyone else.
 *
 * The parts: host-block-io-handlers.ts (hosts' I/O), partner-array-link.ts (Remote Copy
 * with the partner arrays), storage-admin.ts with volume-, lun- and remote-copy-admin-
 * handlers.ts (the management interface), operator-block-io-handlers.ts (test/demo I/O).
 */
import { join } from 'node:path'
import type { LabProcess } from '../shared/lab-process.js'
import type { Logger } from '../shared/log.js'
import { createArrayMetrics, type ArrayMetrics } from './array-metrics.js'
import { BlockHashPool } from './block-hash-pool.js'
import { BlockIo } from './block-io.js'
import { FencingTable } from './fencing.js'
import { attachBlockIo } from './host-block-io-handlers.js'
import { serveLunAdmin } from './lun-admin-handlers.js'
import { LunMasking } from './lun-masking.js'
import { serveOperatorBlockIo } from './operator-block-io-handlers.js'
import { attachRemoteCopy, followPartnerLinks, partnerArrayTraffic } from './partner-array-link.js'
import { serveRemoteCopyAdmin } from './remote-copy-admin-handlers.js'
import { RemoteCopyService } from './remote-copy-service.js'
import { StorageAdmin } from './storage-admin.js'
import { serveVolumeAdmin } from './volume-admin-handlers.js'
import { VolumeStore } from './volume-store.js'

/** Worker threads hashing blocks for resync comparison (off the event loop). */
const HASH_IDLE_TIMEOUT_MS = 30_000

export interface ArrayService {
  store: VolumeStore
  masking: LunMasking
  fencing: FencingTable
  rc: RemoteCopyService
  io: BlockIo
  /** A clean stop, once the process's links are down: Remote Copy groups record a clean shutdown. */
  close(): Promise<void>
}

interface RemoteCopyParts {
  dir: string
  store: VolumeStore
  partners: readonly string[]
  metrics: ArrayMetrics
  hashPool: BlockHashPool
}

/** The Remote Copy groups in `dir`, pairing with `partners` over the process's mesh. */
function openRemoteCopy(p: LabProcess, log: Logger, parts: RemoteCopyParts): Promise<RemoteCopyService> {
  const { dir, store, partners, metrics, hashPool } = parts
  return RemoteCopyService.open({
    dir: join(dir, 'remote-copy'),
    store,
    partners,
    timeScale: p.topology.timeScale,
    now: () => p.clock.now(),
    setTimer: (delay_ms, fn) => void p.clock.setTimer(delay_ms, fn),
    ...partnerArrayTraffic(p, log),
    emit: (kind, details) => p.emitEvent(kind, details),
    log,
    onResyncBytes: (n) => metrics.resyncBytes.inc(n),
    onResyncBlocksSkipped: (n) => metrics.resyncBlocksSkipped.inc(n),
    hashBlocks: (data, bs) => hashPool.hash(data, bs),
    resync_groups_max: p.topology.limits.resync_groups_per_array,
    sync_write_timeout_ms: p.topology.limits.rc_sync_write_timeout_ms,
    inputs_queued_max: p.topology.limits.rc_group_inputs_queued_max,
  })
}

/** The array's fields in GET /status. */
function arrayStatus(store: VolumeStore, rc: RemoteCopyService): Record<string, unknown> {
  return {
    volumes: store.list().length,
    remote_copy: rc
      .status()
      .map((g) => ({ group: g.group, role: g.role, started: g.started, link_up: g.link_up, bytes_behind: g.bytes_behind })),
    resync: rc.resyncConcurrency(),
    disk_faults: store.diskFaults(),
  }
}

export async function startArrayService(p: LabProcess): Promise<ArrayService> {
  const dir = p.layout.processData(p.name)
  const log = p.log.child({ component: 'array' })
  const metrics = createArrayMetrics(p.metrics.registry)
  const store = await VolumeStore.open(join(dir, 'volumes'))
  const masking = await LunMasking.open(dir)
  const fencing = await FencingTable.open(dir)
  const partners = p.topology.arrays.map((a) => a.name).filter((n) => n !== p.name)
  const hashPool = new BlockHashPool({ threads: p.topology.limits.block_hash_threads, idle_timeout_ms: HASH_IDLE_TIMEOUT_MS })
  const rc = await openRemoteCopy(p, log, { dir, store, partners, metrics, hashPool })
  const io = new BlockIo(store, masking, fencing, rc, metrics)
  metrics.volumes.set(store.list().length)

  // Each handler serves only the role that may call it: the peer's role is proved in its
  // handshake and checked against the topology. Others are answered "not a request this peer answers".
  p.onPeer((c) => {
    if (c.remoteRole === 'host') attachBlockIo(c, io, metrics)
    if (c.remoteRole === 'array') attachRemoteCopy(c, rc)
  })
  followPartnerLinks(p, partners, rc)

  const admin = new StorageAdmin(p)
  serveVolumeAdmin(admin, p, { store, masking, fencing, rc, metrics })
  serveLunAdmin(admin, p, store, masking)
  serveOperatorBlockIo(p, store, io)
  serveRemoteCopyAdmin(admin, rc)
  // The operator's alone (hvlab array disk), not a host's: a disk fault is the lab's to inject.
  p.serveOperator('disk-fault-set', (m) => {
    const { fsync_delay_ms, fsync_fails, full } = m
    store.setDiskFaults({ fsync_delay_ms, fsync_fails, full })
    p.emitEvent('array.disk-faults-set', { fsync_delay_ms, fsync_fails, full })
    return { t: 'disk-faults', ...store.diskFaults() }
  })
  admin.serveHosts()

  p.addStatus(() => arrayStatus(store, rc))
  log.info({ dir, volumes: store.list().length, groups: rc.groupNames() }, 'array service ready')

  return {
    store,
    masking,
    fencing,
    rc,
    io,
    async close() {
      await rc.shutdown()
      await hashPool.close()
      await store.close()
    },
  }
}
