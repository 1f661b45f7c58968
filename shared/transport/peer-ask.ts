/**
 * Asks a peer for something and checks the reply's type: the one way a process's role
 * code sends a request to another process of the mesh and expects one kind of answer.
 */
import { HvlabError } from '../errors.js'
import type { Message, MessageOf } from '../protocol/messages.js'
import type { PeerConnection } from './peer-connection.js'
import type { PeerMesh } from './peer-mesh.js'

export interface AskOptions {
  timeout_ms: number
  attachment?: Uint8Array
}

/** `self`'s open connection to `node`; HVLAB_E_CLOSED when there is none now. */
export function openConnection(mesh: PeerMesh, self: string, node: string): PeerConnection {
  const conn = mesh.connection(node)
  if (!conn?.isOpen) throw new HvlabError('HVLAB_E_CLOSED', `${self} has no connection to ${node} now`)
  return conn
}

/** Sends `message` to `node` and resolves its reply (with its attachment), which must be of type `expect`. */
export async function askPeer<T extends Message['t']>(
  mesh: PeerMesh,
  self: string,
  node: string,
  message: Message,
  expect: T,
  options: AskOptions,
): Promise<{ message: MessageOf<T>; attachment: Buffer }> {
  const r = await openConnection(mesh, self, node).request(message, options)
  if (r.message.t !== expect) throw new HvlabError('HVLAB_E_PROTOCOL', `${node} answered ${r.message.t}, expected ${expect}`)
  return { message: r.message as MessageOf<T>, attachment: r.attachment }
}
