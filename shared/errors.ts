/**
 * Errors with stable codes a caller can switch on (like undici's `UND_ERR_*`).
 * Every message is written for a person: what was wrong and what to do.
 */
export const ERROR_CODES = [
  'HVLAB_E_PROTOCOL', // a frame that is malformed, oversize, unknown or out of order
  'HVLAB_E_AUTH', // wrong secret, bad proof, old protocol version
  'HVLAB_E_TIMEOUT', // a request that got no reply in time
  'HVLAB_E_CLOSED', // the connection closed before the reply came
  'HVLAB_E_BACKPRESSURE', // a bounded queue is full
  'HVLAB_E_TOPOLOGY', // an invalid topology file
  'HVLAB_E_USAGE', // a bad CLI argument or command
  'HVLAB_E_NOT_FOUND', // an unknown process, VM, volume, group …
  'HVLAB_E_STATE', // a command that is not allowed in the current state
  'HVLAB_E_REFUSED', // a peer refused a request (with its reason)
  'HVLAB_E_UNSUPPORTED', // a request of a type the peer does not answer (not a request, or not from this role)
  'HVLAB_E_LAB', // the lab controller could not be reached or is not running
  'HVLAB_E_UNSAFE_DIR', // a data dir another local user owns or may write: its secret and control file cannot be trusted
  'HVLAB_E_INTERNAL',
] as const
export type HvlabErrorCode = (typeof ERROR_CODES)[number]

/** A code received from a peer, or HVLAB_E_REFUSED when it is not one we know. */
export function asErrorCode(code: string): HvlabErrorCode {
  return (ERROR_CODES as readonly string[]).includes(code) ? (code as HvlabErrorCode) : 'HVLAB_E_REFUSED'
}

export class HvlabError extends Error {
  readonly code: HvlabErrorCode
  constructor(code: HvlabErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.code = code
    this.name = 'HvlabError'
  }
}

export const isHvlabError = (e: unknown): e is HvlabError => e instanceof HvlabError

/** A one-line description of any thrown value, for logs and replies. */
export function describeError(e: unknown): string {
  if (e instanceof Error) return e.message
  return String(e)
}
