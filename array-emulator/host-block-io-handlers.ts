/**
 * The hosts' block I/O on the array: block-write with the data as attachment →
 * block-written, block-read → block-data. A host does I/O only in its own name; I/O sent
 * in another host's name is refused before anything is read or written.
 */
import { HvlabError } from '../shared/errors.js'
import type { PeerConnection } from '../shared/transport/peer-connection.js'
import type { ArrayMetrics } from './array-metrics.js'
import type { BlockIo } from './block-io.js'

/** Refuses I/O that connection `c` sends in the name of another host. */
function checkSameHost(claimed: string, c: PeerConnection, metrics: ArrayMetrics): void {
  if (claimed !== c.remoteName) {
    metrics.refusals.inc({ reason: 'not-presented' })
    throw new HvlabError(
      'HVLAB_E_REFUSED',
      `${c.remoteName} sent I/O in the name of host ${claimed}; a host does I/O only as itself; nothing was read or written`,
    )
  }
}

/** Answers a host's block-write and block-read on connection `c`. */
export function attachBlockIo(c: PeerConnection, io: BlockIo, metrics: ArrayMetrics): void {
  c.onRequest('block-write', async ({ message: m, attachment }) => {
    checkSameHost(m.host, c, metrics)
    await io.write(m, attachment)
    return { message: { t: 'block-written', volume: m.volume, block: m.block, blocks: m.blocks } }
  })
  c.onRequest('block-read', async ({ message: m }) => {
    checkSameHost(m.host, c, metrics)
    const data = await io.read(m)
    return { message: { t: 'block-data', volume: m.volume, block: m.block, blocks: m.blocks }, attachment: data }
  })
}
