/**
 * The port through which a host's CLX and VM-storage code talks to the storage arrays:
 * one request, one reply (the array's admin messages of shared/protocol/storage-messages.ts:
 * rc-status-request, rc-verb, rc-create, rc-admit, volume-create, volume-list, lun-present,
 * and for a VM's removal rc-dismiss, rc-remove, lun-unpresent, volume-remove).
 * `meshArrayAdmin` sends them over the host's p.mesh connection to the array; tests plug
 * in RemoteCopyService/VolumeStore instances directly.
 */
import { HvlabError } from '../../shared/errors.js'
import type { Message, MessageOf } from '../../shared/protocol/messages.js'
import type { RcGroupStatus } from '../../shared/protocol/storage-messages.js'
import type { PeerConnection } from '../../shared/transport/peer-connection.js'

export type ArrayAdminRequest =
  | MessageOf<'rc-status-request'>
  | MessageOf<'rc-verb'>
  | MessageOf<'rc-create'>
  | MessageOf<'rc-admit'>
  | MessageOf<'volume-create'>
  | MessageOf<'volume-list'>
  | MessageOf<'lun-present'>
  | MessageOf<'rc-dismiss'>
  | MessageOf<'rc-remove'>
  | MessageOf<'lun-unpresent'>
  | MessageOf<'volume-remove'>

export interface ArrayAdmin {
  /** Rejects with HvlabError: HVLAB_E_TIMEOUT / HVLAB_E_CLOSED when the array is unreachable, else the array's refusal. */
  request(array: string, message: ArrayAdminRequest, timeout_ms: number): Promise<Message>
}

/** What a PeerMesh offers that the admin port needs. */
export interface MeshLike {
  connection(name: string): PeerConnection | undefined
}

export function meshArrayAdmin(mesh: MeshLike): ArrayAdmin {
  return {
    async request(array, message, timeout_ms) {
      const c = mesh.connection(array)
      if (!c?.isOpen) throw new HvlabError('HVLAB_E_CLOSED', `array ${array} is not connected to this host`)
      const reply = await c.request(message, { timeout_ms })
      return reply.message
    },
  }
}

/** Codes that mean "the array did not answer" (as opposed to "the array said no"). */
export function isUnreachable(e: unknown): boolean {
  return e instanceof HvlabError && (e.code === 'HVLAB_E_TIMEOUT' || e.code === 'HVLAB_E_CLOSED' || e.code === 'HVLAB_E_LAB')
}

export function expectReply<T extends Message['t']>(array: string, asked: string, reply: Message, t: T): MessageOf<T> {
  if (reply.t !== t) throw new HvlabError('HVLAB_E_PROTOCOL', `array ${array} answered ${asked} with ${reply.t}, not ${t}`)
  return reply as MessageOf<T>
}

/** The group's status on one array; undefined when the array has no such group. */
export async function groupStatus(admin: ArrayAdmin, array: string, group: string, timeout_ms: number): Promise<RcGroupStatus | undefined> {
  try {
    const r = expectReply(
      array,
      'rc-status-request',
      await admin.request(array, { t: 'rc-status-request', group }, timeout_ms),
      'rc-status',
    )
    return r.groups.find((g) => g.group === group)
  } catch (e) {
    if (e instanceof HvlabError && e.code === 'HVLAB_E_NOT_FOUND') return undefined
    throw e
  }
}
