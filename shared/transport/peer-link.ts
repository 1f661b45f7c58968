/**
 * A link that stays up: dials a peer, and after every loss dials again with capped
 * exponential backoff and jitter, until stopped. The endpoint may change (a restarted
 * process listens on a new port): the link then drops the connection it has, which leads
 * to the old address, and dials the new one at once. The backoff waits on the link's Clock
 * (`options.clock`, a RealClock when not given), which the connections it dials share.
 *
 * Events: 'up' (connection), 'down' (reason: string).
 */
import { EventEmitter } from 'node:events'
import { RealClock, type Clock } from '../clock.js'
import { describeError } from '../errors.js'
import { connectPeer, type ConnectOptions, type Endpoint } from './peer-client.js'
import type { PeerConnection } from './peer-connection.js'

export interface BackoffPolicy {
  initial_ms: number
  max_ms: number
  /** 0..1: the share of each delay that is randomised. */
  jitter: number
}

export const DEFAULT_BACKOFF: BackoffPolicy = { initial_ms: 100, max_ms: 5_000, jitter: 0.3 }

/** The delay before attempt `attempt` (0 = first retry); `random` in [0,1). Pure. */
export function backoffDelay_ms(policy: BackoffPolicy, attempt: number, random: number): number {
  const base = Math.min(policy.max_ms, policy.initial_ms * 2 ** Math.min(attempt, 30))
  return Math.round(base * (1 - policy.jitter + policy.jitter * random))
}

export class PeerLink extends EventEmitter {
  private endpoint: Endpoint | undefined
  private connection: PeerConnection | undefined
  private attempt = 0
  private readonly clock: Clock
  private cancelTimer: (() => void) | undefined
  private stopped = false
  private dialling = false

  constructor(
    private readonly options: Omit<ConnectOptions, 'endpoint'> & { backoff?: BackoffPolicy },
    endpoint?: Endpoint,
  ) {
    super()
    this.endpoint = endpoint
    this.clock = options.clock ?? new RealClock()
  }

  get current(): PeerConnection | undefined {
    return this.connection?.isOpen ? this.connection : undefined
  }

  start(): void {
    this.stopped = false
    this.schedule(0)
  }

  /** Points the link at a new address: drops a connection to the old one and dials the new one at once. */
  setEndpoint(endpoint: Endpoint): void {
    const changed = !this.endpoint || this.endpoint.host !== endpoint.host || this.endpoint.port !== endpoint.port
    const previous = this.endpoint
    this.endpoint = endpoint
    if (!changed || this.stopped) return
    if (this.connection)
      this.drop(`${previous?.host}:${previous?.port} is no longer where the peer listens; it moved to ${endpoint.host}:${endpoint.port}`)
    this.attempt = 0
    this.schedule(0)
  }

  /** Forgets the current connection (its later close is not this link's loss) and cuts it. */
  private drop(reason: string): void {
    const old = this.connection
    this.connection = undefined
    if (!old) return
    this.options.log.info({ peer: old.remoteName, reason }, 'dropping the connection to an old address')
    old.terminate()
    this.emit('down', reason)
  }

  stop(): void {
    this.hold()
    this.connection?.terminate()
  }

  /**
   * Stops dialling but keeps the connection it has (a one-way partition: an open TCP
   * connection lives on until a side gives up on it, a new one cannot be made). `start` dials again.
   */
  hold(): void {
    this.stopped = true
    this.cancelTimer?.()
  }

  private schedule(delay_ms: number): void {
    if (this.stopped) return
    this.cancelTimer?.()
    // RealClock's timers are unref'd, as this one always was.
    this.cancelTimer = this.clock.setTimer(delay_ms, () => void this.dial())
  }

  private async dial(): Promise<void> {
    if (this.stopped || this.dialling || this.current || !this.endpoint) return
    this.dialling = true
    const endpoint = this.endpoint
    try {
      const connection = await connectPeer({ ...this.options, endpoint })
      if (this.stopped || this.endpoint !== endpoint) {
        // Stopped, or the peer moved while we dialled its old address: not this connection.
        connection.terminate()
        if (!this.stopped) this.schedule(0)
        return
      }
      this.attempt = 0
      this.connection = connection
      connection.once('close', (_code: number, reason: string) => {
        if (this.connection !== connection) return // dropped for a new address: already redialling
        this.emit('down', reason || 'connection closed')
        this.retry()
      })
      this.emit('up', connection) // its listeners attach their handlers...
      connection.start() // ...before any frame is delivered
    } catch (e) {
      this.options.log.debug({ err: describeError(e), attempt: this.attempt }, 'dial failed')
      this.emit('dial-failed', e)
      if (this.endpoint === endpoint) this.retry()
      else this.schedule(0) // the peer moved meanwhile: the new address is worth a try at once
    } finally {
      this.dialling = false
    }
  }

  private retry(): void {
    const backoff = this.options.backoff ?? DEFAULT_BACKOFF
    this.schedule(backoffDelay_ms(backoff, this.attempt++, Math.random()))
  }
}
