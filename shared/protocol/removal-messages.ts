/**
 * Messages of the removal lifecycle: `hvlab vm remove` (the VM role and, unless kept, its
 * disk), a Remote Copy group removed from an array or a volume dismissed from it
 * (removercopygroup, dismissrcopyvv), and `hvlab csv remove`. Each removal answers with
 * exactly what it removed (and what it kept), so the CLI can say so.
 */
import { z } from 'zod'
import { ERROR_CODES } from '../errors.js'
import { CSV_NAME_RE } from './csv-messages.js'
import { defineMessage, field } from './define.js'

export const REMOVED_OBJECTS_MAX = 256

/** The kinds of object a removal takes away or keeps. */
export const REMOVABLE_KINDS = ['vm-role', 'rc-group', 'rc-volume', 'lun', 'volume', 'csv-region'] as const
export type RemovableKind = (typeof REMOVABLE_KINDS)[number]

/**
 * One object removed or kept: `vm-role` (on null: the cluster database), `rc-group` (on an
 * array), `rc-volume` (a volume's membership of group `group` on an array: dismissed),
 * `lun` (volume `name` presented to `host` on an array), `volume` (on an array),
 * `csv-region` (region `name` of CSV `on`).
 */
export const removableObjectSchema = z.strictObject({
  kind: z.enum(REMOVABLE_KINDS),
  name: field.name(),
  on: field.name().nullable(),
  host: field.name().nullable(),
  group: field.name().nullable(),
})
export type RemovableObject = z.infer<typeof removableObjectSchema>

/** Operator → any host (forwarded to the coordinator): remove a stopped VM role and, unless `keep_disk`, its disk. */
export const vmRemoveRequest = defineMessage('vm-remove-request', () => ({
  name: field.name(),
  keep_disk: z.boolean(),
  forwarded: z.boolean(),
}))

/**
 * The coordinator's answer: the role is gone (it is the first thing removed); `removed`
 * lists it and each disk object removed, in order; `kept` what stays (with --keep-disk,
 * or after a step failed). `unfinished`: the step that failed, with its stable code;
 * what it did not reach is in `kept`.
 */
export const vmRemoveReply = defineMessage('vm-remove-reply', () => ({
  vm: field.name(),
  storage: z.enum(['replicated', 'csv', 'local', 'none']),
  removed: field.list(removableObjectSchema, REMOVED_OBJECTS_MAX),
  kept: field.list(removableObjectSchema, REMOVED_OBJECTS_MAX),
  unfinished: z.strictObject({ code: z.enum(ERROR_CODES), reason: field.text(1024) }).nullable(),
}))

/** Operator/host → array: take `volume` out of `group` on this array (dismissrcopyvv); refused while the group is started. Reply: rc-status. */
export const rcDismiss = defineMessage('rc-dismiss', () => ({ group: field.name(), volume: field.name() }))

/** Operator/host → array: remove `group` from this array (removercopygroup); refused while it is started. Its volumes stay. */
export const rcRemove = defineMessage('rc-remove', () => ({ group: field.name() }))
export const rcRemoved = defineMessage('rc-removed', () => ({
  group: field.name(),
  /** The volumes that were in it (dismissed with it; they stay on the array). */
  volumes: field.list(field.name(), 64),
}))

const csvName = () => z.string().regex(CSV_NAME_RE, 'a CSV name is 1–48 of a-z 0-9 . _ - starting with a letter or digit')

/** Operator → any host, forwarded to the CSV's coordinator node: remove a CSV that has no regions left. */
export const csvRemoveRequest = defineMessage('csv-remove-request', () => ({ name: csvName(), forwarded: z.boolean() }))
export const csvRemoveReply = defineMessage('csv-remove-reply', () => ({
  name: csvName(),
  array: field.name(),
  volume: field.name(),
  coordinator: field.name(),
  /** The hosts the CSV's volume was unpresented from. */
  unpresented: field.list(field.name(), 64),
  volume_removed: z.boolean(),
  /** Why the volume stays on the array (null when it was removed). */
  volume_kept_because: z.strictObject({ code: z.enum(ERROR_CODES), reason: field.text(1024) }).nullable(),
}))

export const removalMessages = [vmRemoveRequest, vmRemoveReply, rcDismiss, rcRemove, rcRemoved, csvRemoveRequest, csvRemoveReply] as const
