/**
 * Errors with stable codes a caller can switch on (like undici's `UND_ERR_*`).
 * Every message is written for a person: what was wrong and what to do. Code never reads
 * a message back: it switches on `code` (or a finer `detail`), and a relayed error names
 * the process that raised it in `origin`, not in its message.
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

/**
 * Finer codes for conditions a caller decides on, each within one code above (its family).
 * An error raised with a finer code keeps the family as its `code` (what HTTP statuses,
 * CLI exit codes and every check on the family switch on, unchanged) and the finer code as
 * its `detail`. The wire carries the finer code (the err envelope's `code`); a receiver
 * splits it again (`asErrorCode` → the constructor), and one that does not know it reads
 * HVLAB_E_REFUSED, as for any unknown code.
 */
export const ERROR_DETAILS = {
  /** The cluster has no coordinator with quorum right now (a view change, or this side is cut off): retry once a view forms. */
  HVLAB_E_NO_QUORUM: 'HVLAB_E_STATE',
  /** A write carried an older reservation epoch than its volume's (array fencing): the writer has been fenced. */
  HVLAB_E_FENCED: 'HVLAB_E_REFUSED',
  /** The process named does not answer this request: it is of another kind (an array named where a host's command goes). */
  HVLAB_E_WRONG_PROCESS: 'HVLAB_E_USAGE',
  /** An array's disk is full (a disk fault): the write was refused, nothing written. */
  HVLAB_E_DISK_FULL: 'HVLAB_E_REFUSED',
  /** An array's fsync failed (a disk fault): the write may or may not be on disk, and is not acknowledged. */
  HVLAB_E_DISK_IO: 'HVLAB_E_REFUSED',
  /** The process a request was for is down or not connected to the lab controller right now (it was up a moment ago, perhaps). */
  HVLAB_E_PROCESS_DOWN: 'HVLAB_E_STATE',
  /** A replica server refused a primary that is not on its allow list (`hvlab replica server enable … --allow`), or is not enabled. */
  HVLAB_E_REPLICA_NOT_ALLOWED: 'HVLAB_E_REFUSED',
  /** Reverse replication needs the cluster to be a replica server: it has no Replica Broker (`hvlab replica server enable cluster`). */
  HVLAB_E_REPLICA_NO_BROKER: 'HVLAB_E_STATE',
  /** A churn measurement (`hvlab replica size`) ended early: its VM stopped, or left the host measuring it (moved or failed over). */
  HVLAB_E_SIZING_INTERRUPTED: 'HVLAB_E_STATE',
  /**
   * The VM runs on its replica server after a planned failover: the cluster neither starts
   * it, removes it nor lets its replication setting be changed or dropped until it fails
   * back (`hvlab replica failover VM --planned`).
   */
  HVLAB_E_REPLICA_FAILED_OVER: 'HVLAB_E_STATE',
  /**
   * The VM failed over unplanned and runs from its replica as its own: on its replica server
   * (which refuses its old primary's replication), in another failover cluster, or back in
   * the cluster (whose broker tells the asker so). The copy that asked is the older one, and
   * its side stops it (role-host.ts olderCopyStopper, reverse-replication.ts).
   */
  HVLAB_E_REPLICA_RUNS_ELSEWHERE: 'HVLAB_E_STATE',
  /**
   * A link between organisations refused for its certificate (shared/pki/): not issued by
   * this lab's CA, expired, or for another name or organisation than the peer claims.
   */
  HVLAB_E_CERT: 'HVLAB_E_AUTH',
} as const satisfies Readonly<Record<string, HvlabErrorCode>>
export type HvlabErrorDetail = keyof typeof ERROR_DETAILS
/** Any code an error may be raised with and the wire may carry: a family or a finer code. */
export type HvlabCode = HvlabErrorCode | HvlabErrorDetail

const isDetail = (code: string): code is HvlabErrorDetail => Object.hasOwn(ERROR_DETAILS, code)

/** A code received from a peer, or `otherwise` (HVLAB_E_REFUSED) when it is not one we know. */
export function asErrorCode(code: string, otherwise: HvlabCode = 'HVLAB_E_REFUSED'): HvlabCode {
  return (ERROR_CODES as readonly string[]).includes(code) || isDetail(code) ? (code as HvlabCode) : otherwise
}

export interface HvlabErrorOptions {
  cause?: unknown
  /** The process that raised it, when it came from another one (a peer's or the controller's error reply). */
  origin?: string
}

export class HvlabError extends Error {
  /** The family: what HTTP statuses, exit codes and most checks switch on. */
  readonly code: HvlabErrorCode
  /** The finer code, when it was raised with one (ERROR_DETAILS). */
  readonly detail: HvlabErrorDetail | undefined
  /** The process that raised it, when it was relayed from another one; people see `origin: message` (describeError). */
  readonly origin: string | undefined
  constructor(code: HvlabCode, message: string, options?: HvlabErrorOptions) {
    super(message, options)
    this.code = isDetail(code) ? ERROR_DETAILS[code] : code
    this.detail = isDetail(code) ? code : undefined
    this.origin = options?.origin
    this.name = 'HvlabError'
  }

  /** The finest code it has: the one the wire carries. */
  get wireCode(): HvlabCode {
    return this.detail ?? this.code
  }

  /** The same error as this process's own (no origin): for a relay that answers in its own name. */
  withoutOrigin(): HvlabError {
    return this.origin === undefined ? this : new HvlabError(this.wireCode, this.message)
  }

  /** Is `e` an HvlabError with `code`, as its family or its finer code? */
  static has(e: unknown, code: HvlabCode): e is HvlabError {
    return e instanceof HvlabError && (e.code === code || e.detail === code)
  }
}

export const isHvlabError = (e: unknown): e is HvlabError => e instanceof HvlabError

/** A one-line description of any thrown value, for logs and replies; a relayed error starts with its origin. */
/**
 * A failure a retry may cure: no answer in time, a connection closed, no coordinator with
 * quorum right now (a view change). Callers that retry or keep waiting switch on this.
 */
export function isTransientError(e: unknown): boolean {
  return HvlabError.has(e, 'HVLAB_E_TIMEOUT') || HvlabError.has(e, 'HVLAB_E_CLOSED') || HvlabError.has(e, 'HVLAB_E_NO_QUORUM')
}

export function describeError(e: unknown): string {
  if (e instanceof HvlabError && e.origin !== undefined) return `${e.origin}: ${e.message}`
  if (e instanceof Error) return e.message
  return String(e)
}
