/**
 * The array's link to its partner arrays, for Remote Copy: how the service sends to a
 * partner and asks it for block hashes over the process's mesh, the handlers that feed a
 * partner's messages to the service, and the link up/down the service follows. A partner
 * that is not connected drops what is sent to it; the link-down settles the rest.
 */
import { HvlabError } from '../shared/errors.js'
import type { LabProcess } from '../shared/lab-process.js'
import type { Logger } from '../shared/log.js'
import type { MessageOf } from '../shared/protocol/messages.js'
import type { RcPeerMessage } from '../shared/protocol/storage-messages.js'
import type { PeerConnection } from '../shared/transport/peer-connection.js'
import type { RemoteCopyService, RemoteCopyServiceOptions } from './remote-copy-service.js'

/** The one-way messages a partner array sends to this array's Remote Copy groups. */
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

/** How long a partner may take to hash one batch of blocks before the batch is sent whole. */
const HASH_REQUEST_TIMEOUT_MS = 30_000

/** What the Remote Copy service sends and asks of a partner array, over the process's mesh. */
export type PartnerArrayTraffic = Required<Pick<RemoteCopyServiceOptions, 'send' | 'requestHashes'>>

export function partnerArrayTraffic(p: LabProcess, log: Logger): PartnerArrayTraffic {
  return {
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
    requestHashes: (to, message) => requestHashes(p, to, message),
  }
}

/** Asks partner `to` for its hashes of a batch of blocks; undefined when it is not connected. */
async function requestHashes(p: LabProcess, to: string, message: MessageOf<'rc-hash-request'>): Promise<Uint8Array | undefined> {
  const c = p.mesh.connection(to)
  if (!c?.isOpen) return undefined
  const r = await c.request(message, { timeout_ms: HASH_REQUEST_TIMEOUT_MS })
  if (r.message.t !== 'rc-hash-list') throw new HvlabError('HVLAB_E_PROTOCOL', `array ${to} answered rc-hash-request with ${r.message.t}`)
  return r.attachment
}

/** A partner array's requests and messages on connection `c`, fed to the Remote Copy service. */
export function attachRemoteCopy(c: PeerConnection, rc: RemoteCopyService): void {
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

/** Tells the Remote Copy service of each partner's link going up or down, starting with those up now. */
export function followPartnerLinks(p: LabProcess, partners: readonly string[], rc: RemoteCopyService): void {
  p.mesh.on('peer-up', (c: PeerConnection) => {
    if (partners.includes(c.remoteName)) rc.linkUp(c.remoteName)
  })
  p.mesh.on('peer-down', (name: string) => {
    if (partners.includes(name)) rc.linkDown(name)
  })
  for (const name of p.mesh.connectedPeers()) if (partners.includes(name)) rc.linkUp(name)
}
