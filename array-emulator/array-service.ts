/**
 * The array process's shell: opens the volumes, LUN masking, fencing table and Remote
 * Copy groups in this process's data dir; answers host block I/O from peers (block-write
 * with the data as attachment → block-written; block-read → block-data), the Remote Copy
 * traffic of the partner array, and the operator's admin requests relayed from the CLI.
 * A bad request gets a clear HvlabError reply; nothing is written and the array keeps
 * serving everyone else.
 */
import { join } from 'node:path'
import { HvlabError } from '../shared/errors.js'
import type { LabProcess } from '../shared/lab-process.js'
import type { Message, MessageOf, MessageType } from '../shared/protocol/messages.js'
import type { RcPeerMessage } from '../shared/protocol/storage-messages.js'
import type { PeerConnection } from '../shared/transport/peer-connection.js'
import { createArrayMetrics } from './array-metrics.js'
import { BlockHashPool } from './block-hash-pool.js'
import { BlockIo } from './block-io.js'
import { patternData } from '../shared/block-pattern.js'
import { FencingTable } from './fencing.js'
import { LunMasking } from './lun-masking.js'
import { RemoteCopyService } from './remote-copy-service.js'
import { VolumeStore } from './volume-store.js'

const RC_PEER_TYPES = [
  'rc-hello',
  'rc-admit-peer',
  'rc-write',
  'rc-write-ack',
  'rc-write-nack',
  'rc-cycle-begin',
  'rc-blocks',
  'rc-blocks-ack',
  'rc-cycle-end',
  'rc-cycle-done',
  'rc-role-change',
  'rc-role-change-ack',
  'rc-dirty-set',
] as const satisfies readonly RcPeerMessage['t'][]

/** Worker threads hashing blocks for resync comparison (off the event loop). */
const HASH_IDLE_TIMEOUT_MS = 30_000
/** How long a partner may take to hash one batch of blocks before the batch is sent whole. */
const HASH_REQUEST_TIMEOUT_MS = 30_000
/** Groups of this array that resync at once; the others wait their turn. */

export interface ArrayService {
  store: VolumeStore
  masking: LunMasking
  fencing: FencingTable
  rc: RemoteCopyService
  io: BlockIo
  /** A clean stop, once the process's links are down: Remote Copy groups record a clean shutdown. */
  close(): Promise<void>
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
  const rc = await RemoteCopyService.open({
    dir: join(dir, 'remote-copy'),
    store,
    partners,
    timeScale: p.topology.timeScale,
    now: () => p.clock.now(),
    setTimer: (delay_ms, fn) => void p.clock.setTimer(delay_ms, fn),
    send: async (to, message, attachment) => {
      const c = p.mesh.connection(to)
      if (!c?.isOpen) return false
      try {
        await c.send(message, attachment)
        return true
      } catch (e) {
        log.debug({ to, t: message.t, err: String(e) }, 'could not send to the partner array; the link-down will settle it')
        return false
      }
    },
    emit: (kind, details) => p.emitEvent(kind, details),
    log,
    onResyncBytes: (n) => metrics.resyncBytes.inc(n),
    onResyncBlocksSkipped: (n) => metrics.resyncBlocksSkipped.inc(n),
    hashBlocks: (data, bs) => hashPool.hash(data, bs),
    requestHashes: async (to, message) => {
      const c = p.mesh.connection(to)
      if (!c?.isOpen) return undefined
      const r = await c.request(message, { timeout_ms: HASH_REQUEST_TIMEOUT_MS })
      if (r.message.t !== 'rc-hash-list')
        throw new HvlabError('HVLAB_E_PROTOCOL', `array ${to} answered rc-hash-request with ${r.message.t}`)
      return r.attachment
    },
    resync_groups_max: p.topology.limits.resync_groups_per_array,
    sync_write_timeout_ms: p.topology.limits.rc_sync_write_timeout_ms,
    inputs_queued_max: p.topology.limits.rc_group_inputs_queued_max,
  })
  const io = new BlockIo(store, masking, fencing, rc, metrics)
  metrics.volumes.set(store.list().length)

  // ---------------------------------------------------------------- peers: hosts' block I/O, partner arrays' Remote Copy
  const sameHost = (claimed: string, c: PeerConnection): void => {
    if (claimed !== c.remoteName) {
      metrics.refusals.inc({ reason: 'not-presented' })
      throw new HvlabError(
        'HVLAB_E_REFUSED',
        `${c.remoteName} sent I/O in the name of host ${claimed}; a host does I/O only as itself; nothing was read or written`,
      )
    }
  }
  const attachBlockIo = (c: PeerConnection): void => {
    c.onRequest('block-write', async ({ message: m, attachment }) => {
      sameHost(m.host, c)
      await io.write(m, attachment)
      return { message: { t: 'block-written', volume: m.volume, block: m.block, blocks: m.blocks } }
    })
    c.onRequest('block-read', async ({ message: m }) => {
      sameHost(m.host, c)
      const data = await io.read(m)
      return { message: { t: 'block-data', volume: m.volume, block: m.block, blocks: m.blocks }, attachment: data }
    })
  }
  const attachRemoteCopy = (c: PeerConnection): void => {
    c.onRequest('rc-hash-request', async ({ message: m }) => {
      const hashes = await rc.hashRequest(c.remoteName, m)
      return {
        message: { t: 'rc-hash-list', group: m.group, cycle: m.cycle, volume: m.volume, blocks: m.block_list.length },
        attachment: hashes,
      }
    })
    for (const t of RC_PEER_TYPES) {
      c.onMessage(t, ({ message, attachment }) => rc.peerMessage(c.remoteName, message as RcPeerMessage, attachment))
    }
  }
  // Each handler serves only the role that may call it: the peer's role is proved in its
  // handshake and checked against the topology. Others are answered "not a request this peer answers".
  p.onPeer((c) => {
    if (c.remoteRole === 'host') attachBlockIo(c)
    if (c.remoteRole === 'array') attachRemoteCopy(c)
  })
  p.mesh.on('peer-up', (c: PeerConnection) => {
    if (partners.includes(c.remoteName)) rc.linkUp(c.remoteName)
  })
  p.mesh.on('peer-down', (name: string) => {
    if (partners.includes(name)) rc.linkDown(name)
  })
  for (const name of p.mesh.connectedPeers()) if (partners.includes(name)) rc.linkUp(name)

  // ---------------------------------------------------------------- storage admin: the operator, and the hosts' CLX
  // The array's management interface answers the operator (through the lab controller)
  // and the cluster's hosts (Cluster Extension provisions disks and runs failovers).
  const adminHandlers: ((c: PeerConnection) => void)[] = []
  const serveAdmin = <T extends MessageType>(t: T, handler: (m: MessageOf<T>) => Promise<Message> | Message): void => {
    p.serveOperator(t, handler)
    adminHandlers.push((c) => c.onRequest(t, async ({ message }) => ({ message: await handler(message) })))
  }

  // ---------------------------------------------------------------- operator: volumes and LUNs
  const listing = (): MessageOf<'volume-listing'> => ({
    t: 'volume-listing',
    block_size_bytes: store.block_size_bytes,
    volumes: store
      .list()
      .map((v) => ({ volume: v.volume, size_bytes: v.size_bytes, presented_to: masking.presentations(v.volume).map((x) => x.host) })),
  })
  const presentations = (volume: string): MessageOf<'lun-presentations'> => ({
    t: 'lun-presentations',
    volume,
    presentations: masking.presentations(volume).map((x) => ({ host: x.host, initiators: x.initiators })),
  })
  serveAdmin('volume-list', () => listing())
  serveAdmin('volume-create', async (m) => {
    const v = await store.create(m.volume, m.size_bytes)
    metrics.volumes.set(store.list().length)
    p.emitEvent('array.volume-created', { volume: v.volume, size_bytes: v.size_bytes })
    return listing()
  })
  serveAdmin('volume-grow', async (m) => {
    const group = rc.groupOfVolume(m.volume)
    if (group !== undefined)
      throw new HvlabError('HVLAB_E_STATE', `volume ${m.volume} is in remote copy group ${group}; its size is fixed while it is replicated`)
    const v = await store.grow(m.volume, m.size_bytes)
    p.emitEvent('array.volume-grown', { volume: v.volume, size_bytes: v.size_bytes })
    return listing()
  })
  serveAdmin('volume-remove', async (m) => {
    const group = rc.groupOfVolume(m.volume)
    if (group !== undefined)
      throw new HvlabError(
        'HVLAB_E_STATE',
        `volume ${m.volume} is in remote copy group ${group}; it cannot be removed while it is replicated`,
      )
    await store.remove(m.volume)
    await masking.forgetVolume(m.volume)
    await fencing.forget(m.volume)
    metrics.volumes.set(store.list().length)
    p.emitEvent('array.volume-removed', { volume: m.volume })
    return listing()
  })
  serveAdmin('lun-present', async (m) => {
    store.get(m.volume) // a clear error for an unknown volume
    await masking.present(m.volume, m.host, m.initiators)
    p.emitEvent('array.lun-presented', { volume: m.volume, host: m.host, initiators: m.initiators })
    return presentations(m.volume)
  })
  serveAdmin('lun-unpresent', async (m) => {
    await masking.unpresent(m.volume, m.host)
    p.emitEvent('array.lun-unpresented', { volume: m.volume, host: m.host })
    return presentations(m.volume)
  })

  // ---------------------------------------------------------------- operator: test/demo I/O
  p.serveOperator('block-write-pattern', async (m) => {
    const bs = store.block_size_bytes
    await io.write(m, patternData(m.pattern, m.block, m.blocks, bs))
    return { t: 'block-written', volume: m.volume, block: m.block, blocks: m.blocks }
  })
  p.serveOperator('block-digest-request', async (m) => {
    const d = await io.digest(m)
    return { t: 'block-digest', volume: m.volume, block: m.block, blocks: m.blocks, ...d }
  })

  // ---------------------------------------------------------------- operator: Remote Copy
  serveAdmin('rc-create', async (m) => ({ t: 'rc-status', groups: [await rc.create(m)] }))
  serveAdmin('rc-admit', async (m) => ({ t: 'rc-status', groups: [await rc.admit(m.group, m.volume, m.remote_volume)] }))
  serveAdmin('rc-verb', async (m) => ({ t: 'rc-status', groups: [await rc.verb(m.group, m.verb, m.force === true)] }))
  serveAdmin('rc-status-request', (m) => ({ t: 'rc-status', groups: rc.status(m.group) }))

  // Storage admin for the cluster's hosts (CLX, CSV); the operator's come through the controller link.
  p.onPeer((c) => {
    if (c.remoteRole === 'host') for (const attach of adminHandlers) attach(c)
  })

  p.addStatus(() => ({
    volumes: store.list().length,
    remote_copy: rc
      .status()
      .map((g) => ({ group: g.group, role: g.role, started: g.started, link_up: g.link_up, bytes_behind: g.bytes_behind })),
    resync: rc.resyncConcurrency(),
  }))
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
