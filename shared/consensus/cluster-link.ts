/**
 * How a cluster voter (a host, the witness) talks to its peers: cluster messages in from
 * every peer connection, checked to come from the authenticated peer they name, and out
 * to a peer while it is connected (lost otherwise, as on a real network).
 */
import type { Counter } from 'prom-client'
import { describeError } from '../errors.js'
import type { LabProcess } from '../lab-process.js'
import { clusterMessages, type ClusterMessage } from '../protocol/cluster-messages.js'
import type { PeerConnection } from '../transport/peer-connection.js'

/** Attaches a handler for every cluster message type to one connection. */
export function attachClusterMessages(
  conn: PeerConnection,
  receive: (m: ClusterMessage, from: string) => void,
  counted?: Counter<'type'>,
): void {
  for (const def of clusterMessages) {
    conn.onMessage(def.t, ({ message }) => {
      counted?.inc({ type: def.t })
      receive(message as ClusterMessage, conn.remoteName)
    })
  }
}

/** Sends a cluster message if the peer is connected now; otherwise it is lost, as on a real network. */
export function sendIfConnected(p: LabProcess, to: string, message: ClusterMessage): void {
  const c = p.mesh.connection(to)
  if (!c?.isOpen) return
  c.send(message).catch((e: unknown) => p.log.debug({ to, t: message.t, err: describeError(e) }, 'cluster message not sent'))
}

/**
 * Whether a cluster message names the authenticated peer it came from as its sender. One
 * that names someone else is logged here and must be dropped.
 */
export function sentByConnectedPeer(
  message: ClusterMessage,
  authenticated_from: string,
  log: { warn(o: object, msg: string): void },
): boolean {
  if (message.from === authenticated_from) return true
  log.warn(
    { peer: authenticated_from, claimed: message.from, t: message.t },
    'dropped a cluster message whose sender is not the connected peer',
  )
  return false
}
