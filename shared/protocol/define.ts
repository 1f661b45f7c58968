/**
 * How a wire message type is declared. Each role's messages live in their own file
 * (`runtime-messages.ts`, `cluster-messages.ts`, …) as `defineMessage(...)` calls; the
 * single discriminated union of every message is assembled in `messages.ts`.
 *
 * A message is a msgpack map with a literal `t`. A message whose `attachment` is
 * 'required' carries raw bytes (pages, blocks) after the msgpack part of its frame:
 * bulk data never travels as msgpack arrays of numbers.
 */
import { z } from 'zod'

export type Attachment = 'none' | 'required'

export interface MessageDef<T extends string, S extends z.ZodRawShape> {
  readonly t: T
  readonly schema: z.ZodObject<S & { t: z.ZodLiteral<T> }, z.core.$strict>
  readonly attachment: Attachment
}

export function defineMessage<T extends string, S extends z.ZodRawShape>(
  t: T,
  shape: S,
  options: { attachment?: Attachment } = {},
): MessageDef<T, S> {
  const schema = z.strictObject({ ...shape, t: z.literal(t) }) as unknown as z.ZodObject<S & { t: z.ZodLiteral<T> }, z.core.$strict>
  return { t, schema, attachment: options.attachment ?? 'none' }
}

/** Common field types with bounds, so no peer can make us allocate without limit. */
export const field = {
  /** A process, VM, volume or group name as the topology and CLI allow them. */
  name: () => z.string().regex(/^[a-z0-9][a-z0-9._-]{0,62}$/, 'a name is 1–63 of a-z 0-9 . _ - starting with a letter or digit'),
  id: () => z.string().min(1).max(64),
  text: (max = 4096) => z.string().max(max),
  u32: () => z.number().int().min(0).max(0xffff_ffff),
  /** A non-negative integer that still fits a double exactly (epochs, offsets, byte counts). */
  uint: () => z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
  time_ms: () => z.number().finite().min(0),
  list: <T extends z.ZodType>(item: T, max: number) => z.array(item).max(max),
}
