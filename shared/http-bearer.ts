/**
 * The token the CLI shows the controller's HTTP endpoints (`Authorization: Bearer …`):
 * derived from the lab's secret, never the secret itself, so a token that leaks (a
 * planted control.json, a proxy) does not give away the key every peer proves itself
 * with. HMAC-SHA256(secret, a fixed label), hex; checked in constant time.
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto'

/** Domain label: no handshake proof (`hvlab|side|…`) is computed over this text. */
const BEARER_LABEL = 'hvlab http bearer v1'

export function httpBearerToken(secret: string): string {
  return createHmac('sha256', secret).update(BEARER_LABEL).digest('hex')
}

/** The Authorization header value the CLI sends. */
export function httpAuthorization(secret: string): string {
  return `Bearer ${httpBearerToken(secret)}`
}

/** Whether an Authorization header carries the lab's token; constant time whatever its length. */
export function bearerMatches(header: string | undefined, expected_authorization: string): boolean {
  const digest = (s: string): Buffer => createHash('sha256').update(s).digest()
  return timingSafeEqual(digest(header ?? ''), digest(expected_authorization))
}
