/**
 * A link that stays up: dials a peer, and after every loss dials again with capped
 * exponential backoff and jitter, until stopped. The endpoint may change (a restarted
 * process listens on a new port); the next attempt uses the new one.
 *
 * Events: 'up' (connection), 'down' (reason: string).
 */
import { EventEmitter } from 'node:events'
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
  private timer: NodeJS.Timeout | undefined
  private stopped = false
  private dialling = false

  constructor(
    private readonly options: Omit<ConnectOptions, 'endpoint'> & { backoff?: BackoffPolicy },
    endpoint?: Endpoint,
  ) {
    super()
    this.endpoint = endpoint
  }

  get current(): PeerConnection | undefined {
    return this.connection?.isOpen ? this.connection : undefined
  }

  start(): void {
    this.stopped = false
    this.schedule(0)
  }

  /** Points the link at a new address; reconnects at once if it is not up. */
  setEndpoint(endpoint: Endpoint): void {
    const changed = !this.endpoint || this.endpoint.host !== endpoint.host || this.endpoint.port !== endpoint.port
    this.endpoint = endpoint
    if (changed && !this.current && !this.stopped) {
      this.attempt = 0
      this.schedule(0)
    }
  }

  stop(): void {
    this.stopped = true
    if (this.timer) clearTimeout(this.timer)
    this.connection?.terminate()
  }

  private schedule(delay_ms: number): void {
    if (this.stopped) return
    if (this.timer) clearTimeout(this.timer)
    this.timer = setTimeout(() => void this.dial(), delay_ms)
    this.timer.unref()
  }

  private async dial(): Promise<void> {
    if (this.stopped || this.dialling || this.current || !this.endpoint) return
    this.dialling = true
    try {
      const connection = await connectPeer({ ...this.options, endpoint: this.endpoint })
      if (this.stopped) {
        connection.terminate()
        return
      }
      this.attempt = 0
      this.connection = connection
      connection.once('close', (_code: number, reason: string) => {
        this.emit('down', reason || 'connection closed')
        this.retry()
      })
      this.emit('up', connection) // its listeners attach their handlers...
      connection.start() // ...before any frame is delivered
    } catch (e) {
      this.options.log.debug({ err: describeError(e), attempt: this.attempt }, 'dial failed')
      this.emit('dial-failed', e)
      this.retry()
    } finally {
      this.dialling = false
    }
  }

  private retry(): void {
    const backoff = this.options.backoff ?? DEFAULT_BACKOFF
    this.schedule(backoffDelay_ms(backoff, this.attempt++, Math.random()))
  }
}
