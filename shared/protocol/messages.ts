/**
 * The one union of every wire message. Each role's messages are declared in their own
 * file with `defineMessage`; add the file's list to `ALL_MESSAGES` and the type, the
 * validation and the codec follow.
 */
import type { z } from 'zod'
import { HvlabError } from '../errors.js'
import type { MessageDef } from './define.js'
import { clusterMessages, clusterOperatorMessages } from './cluster-messages.js'
import { runtimeMessages } from './runtime-messages.js'
import { storageMessages } from './storage-messages.js'
import { migrationMessages } from './migration-messages.js'
import { csvMessages } from './csv-messages.js'
import { guestMessages } from './guest-messages.js'
import { removalMessages } from './removal-messages.js'
import { replicaMessages } from './replica-messages.js'
import { replicaSizeMessages } from './replica-size-messages.js'

/**
 * Bumped on any incompatible change; peers with another version are refused.
 * 2: proofs cover both roles; every frame after the handshake ends in a 16-byte tag.
 */
export const PROTOCOL_VERSION = 2

export const ALL_MESSAGES = [
  ...runtimeMessages,
  ...clusterMessages,
  ...clusterOperatorMessages,
  ...storageMessages,
  ...migrationMessages,
  ...guestMessages,
  ...csvMessages,
  ...removalMessages,
  ...replicaMessages,
  ...replicaSizeMessages,
] as const

type AnyDef = (typeof ALL_MESSAGES)[number]
export type Message = z.infer<AnyDef['schema']>
export type MessageType = Message['t']
export type MessageOf<T extends MessageType> = Extract<Message, { t: T }>

const byType = new Map<string, MessageDef<string, z.ZodRawShape>>()
for (const def of ALL_MESSAGES as readonly MessageDef<string, z.ZodRawShape>[]) {
  if (byType.has(def.t)) throw new Error(`message type ${def.t} is declared twice`)
  byType.set(def.t, def)
}

export function messageDef(t: string): MessageDef<string, z.ZodRawShape> | undefined {
  return byType.get(t)
}

/**
 * Checks an untrusted decoded value against the union: shape, types and bounds, and
 * whether it must or must not carry a byte attachment. Throws HVLAB_E_PROTOCOL.
 */
export function validateMessage(raw: unknown, hasAttachment: boolean): Message {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new HvlabError('HVLAB_E_PROTOCOL', 'message is not a map')
  }
  const t = (raw as { t?: unknown }).t
  if (typeof t !== 'string') throw new HvlabError('HVLAB_E_PROTOCOL', 'message has no string type field "t"')
  const def = byType.get(t)
  if (!def) throw new HvlabError('HVLAB_E_PROTOCOL', `unknown message type ${JSON.stringify(t.slice(0, 64))}`)
  const wantsAttachment = def.attachment === 'required'
  if (wantsAttachment !== hasAttachment) {
    throw new HvlabError('HVLAB_E_PROTOCOL', `message ${t} ${wantsAttachment ? 'needs' : 'must not have'} a byte attachment`)
  }
  const result = def.schema.safeParse(raw)
  if (!result.success) {
    const issue = result.error.issues[0]
    const where = issue?.path.length ? issue.path.join('.') : '(message)'
    throw new HvlabError('HVLAB_E_PROTOCOL', `invalid ${t} message: ${where}: ${issue?.message ?? 'invalid'}`)
  }
  return result.data as Message
}
