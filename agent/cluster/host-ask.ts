/**
 * Asks another host of the mesh for something and checks the reply's type: the one way
 * role code on a host sends a request to a peer host (the coordinator, a VM's owner).
 */
import type { LabProcess } from '../../shared/lab-process.js'
import type { Message, MessageOf } from '../../shared/protocol/messages.js'
import { askPeer } from '../../shared/transport/peer-ask.js'
import { ROLE_REQUEST_TIMEOUT_MS } from './role-request-timeouts.js'

/** Sends `message` to `node` and resolves its reply, which must be of type `expect`. */
export type AskHost = <T extends Message['t']>(node: string, message: Message, expect: T, timeout_ms?: number) => Promise<MessageOf<T>>

export function hostAsker(p: LabProcess): AskHost {
  return async <T extends Message['t']>(node: string, message: Message, expect: T, timeout_ms = ROLE_REQUEST_TIMEOUT_MS) =>
    (await askPeer(p.mesh, p.name, node, message, expect, { timeout_ms })).message
}
