/**
 * Bounds on connections that have not yet proved the lab's secret: how many a listener
 * holds at once, how many bytes each may send, how long each may take. A socket beyond a
 * bound is destroyed; once its peer has proved the secret it no longer counts.
 */
import type { Socket } from 'node:net'

export interface PreauthLimits {
  /** Sockets not yet authenticated, at once. */
  unauthenticated_connections_max: number
  /** Bytes one socket may send before it is authenticated (HTTP upgrade included). */
  preauth_bytes_max: number
  /** Time from the TCP connect to authentication. */
  preauth_ms_max: number
}

/**
 * Watches the bytes read from `socket` since it connected (`bytesRead`: the kernel's
 * count, so chunks that reached another listener first count too) and calls `onOver` once
 * they pass `bytes_max`. Returns the function that stops watching (the peer has
 * authenticated). Adding a 'data' listener starts the socket flowing: on a socket that
 * another reader takes over (ws after the HTTP upgrade), attach this after that reader.
 */
export function watchPreauthBytes(socket: Socket, bytes_max: number, onOver: (bytes: number) => void): () => void {
  const check = (): void => {
    if (socket.bytesRead <= bytes_max) return
    socket.off('data', check)
    onOver(socket.bytesRead)
  }
  socket.on('data', check)
  check()
  return () => void socket.off('data', check)
}

export type PreauthCut = (socket: Socket, code: 'HVLAB_E_PROTOCOL' | 'HVLAB_E_AUTH', reason: string) => void

/** One listener's sockets still in their handshake. */
export class PreauthGate {
  private readonly pending = new Map<Socket, () => void>()

  /** `onCut` hears of each socket cut for a bound (the gate destroys it). */
  constructor(
    private readonly limits: PreauthLimits,
    private readonly onCut: PreauthCut,
  ) {}

  get size(): number {
    return this.pending.size
  }

  /** A new TCP connection: counts it and starts its budgets; false when the cap is reached (the caller refuses it). */
  admit(socket: Socket): boolean {
    if (this.pending.size >= this.limits.unauthenticated_connections_max) return false
    const stopCounting = watchPreauthBytes(socket, this.limits.preauth_bytes_max, (bytes) =>
      this.cut(
        socket,
        'HVLAB_E_PROTOCOL',
        `sent ${bytes} bytes before proving the lab's secret; at most ${this.limits.preauth_bytes_max} are allowed`,
      ),
    )
    // A real timer, not the lab's Clock: it bounds a socket's real resources before it has proved anything.
    const deadline = setTimeout(
      () => this.cut(socket, 'HVLAB_E_AUTH', `did not prove the lab's secret within ${this.limits.preauth_ms_max} ms of connecting`),
      this.limits.preauth_ms_max,
    )
    deadline.unref()
    const release = (): void => {
      stopCounting()
      clearTimeout(deadline)
      socket.off('close', release)
      this.pending.delete(socket)
    }
    this.pending.set(socket, release)
    socket.once('close', release)
    return true
  }

  /** The socket's peer proved the secret: it no longer counts against any bound here. */
  authenticated(socket: Socket): void {
    this.pending.get(socket)?.()
  }

  /** Destroys every socket still in its handshake (the listener is closing). */
  destroyAll(): void {
    for (const socket of [...this.pending.keys()]) socket.destroy()
  }

  private cut(socket: Socket, code: 'HVLAB_E_PROTOCOL' | 'HVLAB_E_AUTH', reason: string): void {
    this.pending.get(socket)?.()
    this.onCut(socket, code, reason)
    socket.destroy()
  }
}
