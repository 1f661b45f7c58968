/** Ids for things the lab creates (requests, migrations, events): nanoid, URL-safe. */
import { customAlphabet, nanoid } from 'nanoid'

export const newId = (size = 12): string => nanoid(size)

const hex = customAlphabet('0123456789abcdef', 32)
/** A 128-bit random nonce in hex, for challenge–response. */
export const newNonce = (): string => hex()
