/**
 * What a host serves other hosts for their CSVs: the redirected I/O of a node that lost its
 * path to the array (done by this host as coordinator node), forwarded region changes, and
 * the check of this host's own path (asked by a coordinator node looking for a successor).
 * Only cluster hosts may ask; redirected I/O must name its real sender.
 */
import { HvlabError } from '../../shared/errors.js'
import type { PeerConnection } from '../../shared/transport/peer-connection.js'
import type { CsvHostContext } from './csv-host-context.js'
import type { CsvRegionMetadata } from './csv-region-metadata.js'
import { answerRegionRequest } from './csv-region-request.js'
import type { CsvVolumes } from './csv-volumes.js'

export function serveCsvPeers(ctx: CsvHostContext, volumes: CsvVolumes, metadata: CsvRegionMetadata): void {
  ctx.p.onPeer((conn) => {
    serveRedirectedIo(ctx, volumes, conn)
    serveCoordination(ctx, volumes, metadata, conn)
  })
}

function isHost(ctx: CsvHostContext, name: string): boolean {
  return ctx.p.topology.hosts.some((h) => h.name === name)
}

function serveRedirectedIo(ctx: CsvHostContext, volumes: CsvVolumes, conn: PeerConnection): void {
  const fromPeer = (from: string): void => {
    if (from !== conn.remoteName) throw new HvlabError('HVLAB_E_AUTH', `${conn.remoteName} sent a CSV request claiming to be from ${from}`)
    if (!isHost(ctx, from)) throw new HvlabError('HVLAB_E_AUTH', `${from} is not a cluster host; only hosts do CSV I/O`)
  }
  conn.onRequest('csv-redirect-write', async ({ message: q, attachment }) => {
    fromPeer(q.from)
    await volumes.volume(q.csv).serveWrite(q.from, { region: q.region, block: q.block, blocks: q.blocks, epoch: q.epoch, data: attachment })
    ctx.bytes.inc({ path: 'served' }, attachment.length)
    return { message: { t: 'csv-redirect-written', csv: q.csv, blocks: q.blocks } }
  })
  conn.onRequest('csv-redirect-read', async ({ message: q }) => {
    fromPeer(q.from)
    const data = await volumes.volume(q.csv).serveRead(q.from, { region: q.region, block: q.block, blocks: q.blocks })
    ctx.bytes.inc({ path: 'served' }, data.length)
    return {
      message: { t: 'csv-redirect-data', csv: q.csv, blocks: q.blocks },
      attachment: Buffer.from(data.buffer, data.byteOffset, data.byteLength),
    }
  })
}

function serveCoordination(ctx: CsvHostContext, volumes: CsvVolumes, metadata: CsvRegionMetadata, conn: PeerConnection): void {
  const fromHost = (): void => {
    if (!isHost(ctx, conn.remoteName)) throw new HvlabError('HVLAB_E_AUTH', `${conn.remoteName} is not a cluster host`)
  }
  conn.onRequest('csv-region-request', async ({ message: q }) => {
    fromHost()
    return { message: await answerRegionRequest(ctx, volumes, metadata, { ...q, forwarded: true }) }
  })
  conn.onRequest('csv-path-check', async ({ message: q }) => {
    fromHost()
    ctx.mustExist(q.csv)
    const r = await volumes.volume(q.csv).checkDirect()
    return { message: { t: 'csv-path-checked', csv: q.csv, host: ctx.p.name, direct: r.direct, detail: r.detail.slice(0, 512) } }
  })
}
