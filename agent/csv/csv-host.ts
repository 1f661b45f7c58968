/**
 * Puts Cluster Shared Volumes into a host process: one CsvVolume per CSV (the I/O path),
 * the coordinator node's metadata work (region allocate/release, serialized per CSV), the
 * I/O it does for nodes that lost their path, the takeover of CSVs whose coordinator
 * node left the cluster view (decided by the cluster's coordinator with
 * coordinator-choice.ts), the hand-off of CSVs whose coordinator node lost its own path to
 * the array (it checks that path every second and gives the CSV to the first member that
 * has one), the operator requests (`hvlab csv …`) and `csv` in GET /status.
 */
import { Counter } from 'prom-client'
import { patternData, sha256Hex } from '../../shared/block-pattern.js'
import { SerialQueue } from '../../shared/serial-queue.js'
import { HvlabError, describeError } from '../../shared/errors.js'
import type { LabProcess } from '../../shared/lab-process.js'
import type { CsvInfo } from '../../shared/protocol/csv-messages.js'
import type { Message, MessageOf } from '../../shared/protocol/messages.js'
import type { ClusterService } from '../cluster/cluster-service.js'
import { expectReply, isUnreachable, meshArrayAdmin } from '../clx/array-admin.js'
import { coordinatorCandidates, coordinatorMoves } from './coordinator-choice.js'
import { CsvDatabase } from './csv-database.js'
import {
  CSVS_MAX,
  REGIONS_PER_CSV_MAX,
  blockCount,
  checkCsvName,
  checkRegionName,
  csvKey,
  csvVolumeName,
  encodeCsv,
  encodeRegion,
  regionKey,
  type CsvEntry,
  type RegionRecord,
} from './csv-record.js'
import { CsvVolume, type CoordinatorPath, type DirectPath } from './csv-volume.js'
import { allocateBlocks } from './region-allocation.js'

export const CSV_IO_TIMEOUT_MS = 3000
export const CSV_ADMIN_TIMEOUT_MS = 5000
const PROBE_INTERVAL_MS = 1000
const RECONCILE_INTERVAL_MS = 500
const MOVE_PENDING_MS = 5000
const STRANDED_LOG_INTERVAL_MS = 30_000

export interface CsvHost {
  /** The I/O path of CSV `name` on this host (what a VM disk writer uses); throws if there is no such CSV. */
  volume(name: string): CsvVolume
  /** CSV `name` as this host's copy of the cluster database has it; throws HVLAB_E_NOT_FOUND if there is none. */
  entry(name: string): CsvEntry
}

export function startCsvHost(p: LabProcess, cluster: ClusterService): CsvHost {
  const log = p.log.child({ component: 'csv' })
  const m = cluster.membership
  const db = new CsvDatabase(cluster, p.clock)
  const admin = meshArrayAdmin(p.mesh)
  const volumes = new Map<string, CsvVolume>()
  const metadataQueues = new Map<string, SerialQueue>()
  const bytes = new Counter({
    name: 'hvlab_csv_io_bytes_total',
    help: 'Bytes this host wrote or read on Cluster Shared Volumes, by path (direct, redirected, served for others)',
    labelNames: ['path'],
    registers: [p.metrics.registry],
  })
  const siteOf = (node: string): string | undefined => p.topology.hosts.find((h) => h.name === node)?.site
  const arraySite = (array: string): string | null => p.topology.arrays.find((a) => a.name === array)?.site ?? null
  const sleep = (ms: number): Promise<void> => new Promise((r) => p.clock.setTimer(ms, r))

  const requireQuorum = (what: string): void => {
    if (!m.holdsLease(p.clock.now()))
      throw new HvlabError(
        'HVLAB_E_STATE',
        `cannot ${what}: ${p.name} holds no cluster quorum now; retry when \`hvlab cluster status\` shows quorum HELD`,
      )
  }
  const mustExist = (name: string): CsvEntry => {
    const e = db.entry(name)
    if (e === undefined)
      throw new HvlabError(
        'HVLAB_E_NOT_FOUND',
        `there is no CSV ${name}; \`hvlab csv list\` shows the CSVs, \`hvlab csv create\` makes one`,
      )
    return e
  }
  const setOwner = (e: CsvEntry, owner: string): Promise<void> =>
    db.commit(
      csvKey(e.name),
      encodeCsv({ array: e.array, volume: e.volume, size_bytes: e.size_bytes, block_size_bytes: e.block_size_bytes, owner }),
    )
  const peer = (name: string) => {
    const c = p.mesh.connection(name)
    if (!c?.isOpen) throw new HvlabError('HVLAB_E_CLOSED', `${p.name} has no connection to ${name} now`)
    return c
  }
  const ask = async <T extends Message['t']>(
    to: string,
    message: Message,
    expect: T,
    attachment?: Uint8Array,
  ): Promise<{ message: MessageOf<T>; attachment: Buffer }> => {
    const r = await peer(to).request(message, {
      timeout_ms: CSV_IO_TIMEOUT_MS,
      ...(attachment ? { attachment: Buffer.from(attachment.buffer, attachment.byteOffset, attachment.byteLength) } : {}),
    })
    if (r.message.t !== expect) throw new HvlabError('HVLAB_E_PROTOCOL', `${to} answered ${r.message.t}, expected ${expect}`)
    return { message: r.message as MessageOf<T>, attachment: r.attachment }
  }

  // ---------------------------------------------------------------- the coordinator node's metadata work
  const changeRegion = (csv: string, region: string, size_bytes: number | null): Promise<RegionRecord | null> => {
    let q = metadataQueues.get(csv)
    if (!q) metadataQueues.set(csv, (q = new SerialQueue()))
    return q.run(async () => {
      const e = mustExist(csv)
      if (e.owner !== p.name)
        throw new HvlabError(
          'HVLAB_E_STATE',
          `${p.name} is not the coordinator node of CSV ${csv} (${e.owner} is); retry, the request follows the coordinator`,
        )
      requireQuorum(`change the regions of CSV ${csv}`)
      const existing = e.regions.get(region)
      if (size_bytes === null) {
        if (existing === undefined) return null
        await db.commit(regionKey(csv, region), null)
        p.emitEvent('csv.region-released', { csv, region, coordinator: p.name })
        return null
      }
      const blocks = Math.ceil(size_bytes / e.block_size_bytes)
      if (existing !== undefined) {
        if (existing.blocks === blocks) return existing
        throw new HvlabError(
          'HVLAB_E_STATE',
          `CSV ${csv} already has region ${region} of ${existing.blocks} blocks; release it first to change its size`,
        )
      }
      if (e.regions.size >= REGIONS_PER_CSV_MAX)
        throw new HvlabError('HVLAB_E_REFUSED', `CSV ${csv} already holds ${REGIONS_PER_CSV_MAX} regions (its limit); release one first`)
      const r = allocateBlocks(e.regions, blockCount(e), blocks, `allocate region ${region} in CSV ${csv}`)
      await db.commit(regionKey(csv, region), encodeRegion(r))
      p.emitEvent('csv.region-allocated', { csv, region, offset_block: r.offset_block, blocks: r.blocks, coordinator: p.name })
      return r
    })
  }

  // ---------------------------------------------------------------- the I/O paths
  const directPath = (csv: string): DirectPath => ({
    async write(volume, block, data, epoch) {
      const e = mustExist(csv)
      await ask(
        e.array,
        { t: 'block-write', volume, host: p.name, epoch, block, blocks: data.length / e.block_size_bytes },
        'block-written',
        data,
      )
      bytes.inc({ path: 'direct' }, data.length)
    },
    async read(volume, block, blocks) {
      const e = mustExist(csv)
      const r = await ask(e.array, { t: 'block-read', volume, host: p.name, block, blocks }, 'block-data')
      bytes.inc({ path: 'direct' }, r.attachment.length)
      return r.attachment
    },
  })
  const coordinatorPath = (csv: string): CoordinatorPath => ({
    async write(owner, w, data) {
      await ask(owner, { t: 'csv-redirect-write', from: p.name, csv, ...w }, 'csv-redirect-written', data)
      bytes.inc({ path: 'redirected' }, data.length)
    },
    async read(owner, r) {
      const reply = await ask(owner, { t: 'csv-redirect-read', from: p.name, csv, ...r }, 'csv-redirect-data')
      bytes.inc({ path: 'redirected' }, reply.attachment.length)
      return reply.attachment
    },
    async region(owner, region, size_bytes) {
      if (owner === p.name) return changeRegion(csv, region, size_bytes)
      const q: Message = {
        t: 'csv-region-request',
        csv,
        region,
        op: size_bytes === null ? 'release' : 'allocate',
        forwarded: true,
        ...(size_bytes === null ? {} : { size_bytes }),
      }
      const r = await ask(owner, q, 'csv-region-reply')
      return r.message.allocation && { offset_block: r.message.allocation.offset_block, blocks: r.message.allocation.blocks }
    },
  })

  const volume = (name: string): CsvVolume => {
    mustExist(name)
    let v = volumes.get(name)
    if (v) return v
    v = new CsvVolume({
      node: p.name,
      csv: name,
      entry: () => db.entry(name),
      direct: directPath(name),
      coordinator: coordinatorPath(name),
      unreachable: isUnreachable,
      now: () => p.clock.now(),
      sleep,
      emitEvent: (kind, details) => p.emitEvent(kind, details),
      awaitRegion: (region, present) => db.until(`region ${region} of CSV ${name}`, () => db.entry(name)?.regions.has(region) === present),
      retry_delay_ms: 500,
      retry_attempts_max: 30,
      redirect_in_flight_max: 8,
      redirect_waiting_max: 64,
      served_in_flight_max: 32,
    })
    volumes.set(name, v)
    return v
  }

  // ---------------------------------------------------------------- operator requests
  const info = (e: CsvEntry): CsvInfo => ({
    name: e.name,
    array: e.array,
    volume: e.volume,
    size_bytes: e.size_bytes,
    block_size_bytes: e.block_size_bytes,
    owner: e.owner,
    regions: [...e.regions].map(([region, r]) => ({ region, ...r })),
  })

  p.serveOperator('csv-create-request', async (q) => {
    checkCsvName(q.name)
    requireQuorum(`create CSV ${q.name}`)
    if (db.entry(q.name)) throw new HvlabError('HVLAB_E_STATE', `CSV ${q.name} already exists; \`hvlab csv list\` shows it`)
    if (db.all().csvs.size >= CSVS_MAX) throw new HvlabError('HVLAB_E_REFUSED', `the cluster already has ${CSVS_MAX} CSVs (its limit)`)
    if (!p.topology.arrays.some((a) => a.name === q.array))
      throw new HvlabError(
        'HVLAB_E_USAGE',
        `there is no array ${q.array}; the arrays are ${p.topology.arrays.map((a) => a.name).join(', ')}`,
      )
    const vol = csvVolumeName(q.name)
    let listing: MessageOf<'volume-listing'>
    try {
      listing = expectReply(
        q.array,
        'volume-create',
        await admin.request(q.array, { t: 'volume-create', volume: vol, size_bytes: q.size_bytes }, CSV_ADMIN_TIMEOUT_MS),
        'volume-listing',
      )
    } catch (e) {
      // A create that failed half-way may have left the volume: reuse it if it is big enough.
      if (!(e instanceof HvlabError && e.code === 'HVLAB_E_STATE')) throw e
      listing = expectReply(
        q.array,
        'volume-list',
        await admin.request(q.array, { t: 'volume-list' }, CSV_ADMIN_TIMEOUT_MS),
        'volume-listing',
      )
      const had = listing.volumes.find((v) => v.volume === vol)
      if (!had || had.size_bytes < q.size_bytes) throw e
    }
    const size_bytes = listing.volumes.find((v) => v.volume === vol)?.size_bytes ?? q.size_bytes
    for (const h of p.topology.hosts) {
      await admin.request(q.array, { t: 'lun-present', volume: vol, host: h.name, initiators: [] }, CSV_ADMIN_TIMEOUT_MS)
    }
    await db.commit(
      csvKey(q.name),
      encodeCsv({ array: q.array, volume: vol, size_bytes, block_size_bytes: listing.block_size_bytes, owner: p.name }),
    )
    p.emitEvent('csv.created', { csv: q.name, array: q.array, volume: vol, size_bytes, coordinator: p.name })
    return { t: 'csv-list-reply', from: p.name, csvs: [info(mustExist(q.name))] }
  })

  p.serveOperator('csv-move-request', async (q) => {
    const e = mustExist(q.name)
    requireQuorum(`move the coordinator of CSV ${q.name}`)
    const members = m.view().members
    if (!members.includes(q.to))
      throw new HvlabError('HVLAB_E_STATE', `${q.to} is not a member of the cluster now (members: ${members.join(', ')}); pick one of them`)
    if (e.owner !== q.to) {
      await setOwner(e, q.to)
      p.emitEvent('csv.coordinator-moved', { csv: q.name, from: e.owner, to: q.to, reason: 'operator' })
    }
    return { t: 'csv-list-reply', from: p.name, csvs: [info(mustExist(q.name))] }
  })

  p.serveOperator('csv-list-request', () => ({ t: 'csv-list-reply', from: p.name, csvs: [...db.all().csvs.values()].map(info) }))
  const states = (): MessageOf<'csv-state-reply'> => ({
    t: 'csv-state-reply',
    host: p.name,
    volumes: [...db.all().csvs.keys()].map((n) => volume(n).state()),
  })
  p.serveOperator('csv-state-request', () => states())

  p.serveOperator('csv-write-request', async (q) => {
    const e = mustExist(q.csv)
    const data = patternData(q.pattern, q.block, q.blocks, e.block_size_bytes)
    const r = await volume(q.csv).write({ region: q.region, block: q.block, blocks: q.blocks, data, epoch: m.view().epoch })
    return { t: 'csv-io-reply', host: p.name, path: r.path, via: r.via, sha256: sha256Hex(data) }
  })
  p.serveOperator('csv-read-request', async (q) => {
    const r = await volume(q.csv).read({ region: q.region, block: q.block, blocks: q.blocks })
    return { t: 'csv-io-reply', host: p.name, path: r.path, via: r.via, sha256: sha256Hex(r.data) }
  })
  const regionRequest = async (q: MessageOf<'csv-region-request'>): Promise<Message> => {
    checkRegionName(q.region)
    const e = mustExist(q.csv)
    if (q.op === 'allocate' && (q.size_bytes === undefined || q.size_bytes < 1))
      throw new HvlabError('HVLAB_E_USAGE', `allocating region ${q.region} needs a size in bytes`)
    let allocation: RegionRecord | null = null
    if (q.forwarded) allocation = await changeRegion(q.csv, q.region, q.op === 'allocate' ? q.size_bytes! : null)
    else if (q.op === 'allocate') allocation = await volume(q.csv).allocateRegion(q.region, q.size_bytes!)
    else await volume(q.csv).releaseRegion(q.region)
    return {
      t: 'csv-region-reply',
      csv: q.csv,
      region: q.region,
      allocation: allocation && { region: q.region, ...allocation },
      owner: db.entry(q.csv)?.owner ?? e.owner,
    }
  }
  p.serveOperator('csv-region-request', (q) => regionRequest({ ...q, forwarded: false }))

  // ---------------------------------------------------------------- host ↔ host
  p.onPeer((conn) => {
    const fromPeer = (from: string): void => {
      if (from !== conn.remoteName)
        throw new HvlabError('HVLAB_E_AUTH', `${conn.remoteName} sent a CSV request claiming to be from ${from}`)
      if (!p.topology.hosts.some((h) => h.name === from))
        throw new HvlabError('HVLAB_E_AUTH', `${from} is not a cluster host; only hosts do CSV I/O`)
    }
    conn.onRequest('csv-redirect-write', async ({ message: q, attachment }) => {
      fromPeer(q.from)
      await volume(q.csv).serveWrite(q.from, { region: q.region, block: q.block, blocks: q.blocks, epoch: q.epoch, data: attachment })
      bytes.inc({ path: 'served' }, attachment.length)
      return { message: { t: 'csv-redirect-written', csv: q.csv, blocks: q.blocks } }
    })
    conn.onRequest('csv-redirect-read', async ({ message: q }) => {
      fromPeer(q.from)
      const data = await volume(q.csv).serveRead(q.from, { region: q.region, block: q.block, blocks: q.blocks })
      bytes.inc({ path: 'served' }, data.length)
      return {
        message: { t: 'csv-redirect-data', csv: q.csv, blocks: q.blocks },
        attachment: Buffer.from(data.buffer, data.byteOffset, data.byteLength),
      }
    })
    const fromHost = (): void => {
      if (!p.topology.hosts.some((h) => h.name === conn.remoteName))
        throw new HvlabError('HVLAB_E_AUTH', `${conn.remoteName} is not a cluster host`)
    }
    conn.onRequest('csv-region-request', async ({ message: q }) => {
      fromHost()
      return { message: await regionRequest({ ...q, forwarded: true }) }
    })
    conn.onRequest('csv-path-check', async ({ message: q }) => {
      fromHost()
      mustExist(q.csv)
      const r = await volume(q.csv).checkDirect()
      return { message: { t: 'csv-path-checked', csv: q.csv, host: p.name, direct: r.direct, detail: r.detail.slice(0, 512) } }
    })
  })

  // ---------------------------------------------------------------- a coordinator node that lost its own path
  const handingOff = new Set<string>()
  let strandedLoggedAt = -Infinity
  /** As coordinator node of `name`: check the own path; without one, hand the CSV to the first member that has one. */
  const checkOwnPath = async (name: string): Promise<void> => {
    const e = db.entry(name)
    if (e === undefined || e.owner !== p.name || handingOff.has(name)) return
    const own = await volume(name).checkDirect()
    if (own.direct || !m.holdsLease(p.clock.now())) return
    handingOff.add(name)
    try {
      for (const to of coordinatorCandidates(p.name, arraySite(e.array), m.view().members, siteOf)) {
        const r = await ask(to, { t: 'csv-path-check', csv: name }, 'csv-path-checked').catch(() => null)
        if (!r?.message.direct) continue
        const current = db.entry(name)
        if (current?.owner !== p.name) return // moved meanwhile (operator, takeover)
        await setOwner(current, to)
        p.emitEvent('csv.coordinator-moved', {
          csv: name,
          from: p.name,
          to,
          reason: `${p.name} lost its path to ${e.array}: ${own.detail}`.slice(0, 240),
        })
        log.info({ csv: name, to }, 'lost the path to the CSV array; handed the coordinator role to a node that has one')
        return
      }
      if (p.clock.now() - strandedLoggedAt >= STRANDED_LOG_INTERVAL_MS) {
        strandedLoggedAt = p.clock.now()
        log.warn(
          { csv: name, detail: own.detail },
          'lost the path to the CSV array and no other member has one; keeping the coordinator role',
        )
      }
    } finally {
      handingOff.delete(name)
    }
  }

  // ---------------------------------------------------------------- takeover and path probes
  const pending = new Map<string, { from: string; to: string; at_ms: number }>()
  const reconcile = (): void => {
    const now = p.clock.now()
    const csvs = db.all().csvs
    for (const [name, mv] of pending) {
      const owner = csvs.get(name)?.owner
      if (owner === mv.to) {
        p.emitEvent('csv.coordinator-moved', {
          csv: name,
          from: mv.from,
          to: mv.to,
          reason: `${mv.from} left the cluster view`,
          epoch: m.view().epoch,
        })
        pending.delete(name)
      } else if (owner === undefined || now - mv.at_ms > MOVE_PENDING_MS) pending.delete(name)
    }
    if (!m.isCoordinator() || !m.holdsLease(now)) return
    const moves = coordinatorMoves(
      [...csvs.values()].map((e) => ({ name: e.name, owner: e.owner, array_site: arraySite(e.array) })),
      m.view().members,
      siteOf,
    )
    for (const mv of moves) {
      if (pending.has(mv.csv)) continue
      const e = csvs.get(mv.csv)!
      try {
        cluster.command({
          kind: 'set-config',
          key: csvKey(mv.csv),
          value: encodeCsv({
            array: e.array,
            volume: e.volume,
            size_bytes: e.size_bytes,
            block_size_bytes: e.block_size_bytes,
            owner: mv.to,
          }),
        })
        pending.set(mv.csv, { from: mv.from, to: mv.to, at_ms: now })
        log.info({ csv: mv.csv, from: mv.from, to: mv.to }, 'CSV coordinator node left the view; moving the coordinator')
      } catch (err) {
        log.warn({ err: describeError(err), csv: mv.csv }, 'could not move the CSV coordinator; retried')
      }
    }
  }
  const everyInterval = (ms: number, fn: () => void | Promise<void>): void => {
    const run = (): void => {
      Promise.resolve()
        .then(fn)
        .catch((e: unknown) => log.warn({ err: describeError(e) }, 'CSV background task failed'))
        .finally(() => p.clock.setTimer(ms, run))
    }
    p.clock.setTimer(ms, run)
  }
  cluster.onClusterEvent((e) => {
    if (e.kind === 'cluster.view-changed') reconcile()
  })
  everyInterval(RECONCILE_INTERVAL_MS, reconcile)
  everyInterval(PROBE_INTERVAL_MS, async () => {
    for (const name of db.all().csvs.keys()) {
      await volume(name).probe()
      await checkOwnPath(name)
    }
  })
  p.addStatus(() => ({ csv: states().volumes }))

  return { volume, entry: mustExist }
}
