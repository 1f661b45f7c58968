/**
 * How a wire message type is declared. Each role's messages live in their own file
 * (`runtime-messages.ts`, `cluster-messages.ts`, …) as `defineMessage(...)` calls; the
 * single discriminated union of every message is assembled in `messages.ts`.
 *
 * A message is a msgpack map with a literal `t`. A message whose `attachment` is
 * 'required' carries raw bytes (pages, blocks) after the msgpack part of its frame:
 * bulk data never travels as msgpack arrays of numbers.
 *
 * A message's schema is built when it is first used, from its shape given as a function
 * (`defineMessage('ping', () => ({ seq: field.u32() }))`): a process checks a few of the
 * hundred-odd message types, and building every schema when the protocol loads cost each
 * CLI command about 0.1 s. A shape given as an object has its fields built at load.
 */
import { z } from 'zod'

export type Attachment = 'none' | 'required'

type MessageSchema<T extends string, S extends z.ZodRawShape> = z.ZodObject<S & { t: z.ZodLiteral<T> }, z.core.$strict>

export interface MessageDef<T extends string, S extends z.ZodRawShape> {
  readonly t: T
  /** Built on first read, then kept. */
  readonly schema: MessageSchema<T, S>
  readonly attachment: Attachment
}

export function defineMessage<T extends string, S extends z.ZodRawShape>(
  t: T,
  shape: S | (() => S),
  options: { attachment?: Attachment } = {},
): MessageDef<T, S> {
  let schema: MessageSchema<T, S> | undefined
  return {
    t,
    get schema(): MessageSchema<T, S> {
      schema ??= z.strictObject({ ...(typeof shape === 'function' ? shape() : shape), t: z.literal(t) }) as unknown as MessageSchema<T, S>
      return schema
    },
    attachment: options.attachment ?? 'none',
  }
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
  /** A SHA-256 as 64 lowercase hex digits. */
  sha256Hex: () => z.string().regex(/^[0-9a-f]{64}$/),
  list: <T extends z.ZodType>(item: T, max: number) => z.array(item).max(max),
}
