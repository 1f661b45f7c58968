/**
 * Asks another host of the mesh for something and checks the reply's type: the one way
 * role code on a host sends a request to a peer host (the coordinator, a VM's owner).
 */
import { HvlabError } from '../../shared/errors.js'
import type { LabProcess } from '../../shared/lab-process.js'
import type { Message, MessageOf } from '../../shared/protocol/messages.js'
import type { PeerConnection } from '../../shared/transport/peer-connection.js'
import { ROLE_REQUEST_TIMEOUT_MS } from './role-request-timeouts.js'

/** Sends `message` to `node` and resolves its reply, which must be of type `expect`. */
export type AskHost = <T extends Message['t']>(node: string, message: Message, expect: T, timeout_ms?: number) => Promise<MessageOf<T>>

/** The open connection to `node`; HVLAB_E_CLOSED when there is none now. */
export function connectionTo(p: LabProcess, node: string): PeerConnection {
  const conn = p.mesh.connection(node)
  if (!conn?.isOpen) throw new HvlabError('HVLAB_E_CLOSED', `${p.name} has no connection to ${node} now`)
  return conn
}

export function hostAsker(p: LabProcess): AskHost {
  return async <T extends Message['t']>(node: string, message: Message, expect: T, timeout_ms = ROLE_REQUEST_TIMEOUT_MS) => {
    const r = await connectionTo(p, node).request(message, { timeout_ms })
    if (r.message.t !== expect) throw new HvlabError('HVLAB_E_PROTOCOL', `${node} answered ${r.message.t}, expected ${expect}`)
    return r.message as MessageOf<T>
  }
}
