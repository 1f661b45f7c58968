/**
 * Raw HTTP over a TCP socket, for hostile requests no HTTP client would send: request
 * lines written by hand, headers that never finish. Every socket is destroyed when the
 * test ends, whatever happened.
 */
import { connect, type Socket } from 'node:net'

interface Teardown {
  teardown(fn: () => unknown): void
}

export interface RawAnswer {
  /** The status code of the first response line, or null when none came. */
  status: number | null
  text: string
  /** Whether the server closed the connection before `wait_ms`. */
  closed: boolean
}

/** How long a raw exchange waits for the server to answer and close, at most: far above any limit a test configures. */
export const RAW_WAIT_MS = 8_000

/** Writes `bytes`, then reads until the server closes (or `wait_ms` passes). */
export function rawExchange(t: Teardown, port: number, bytes: string, wait_ms = RAW_WAIT_MS): Promise<RawAnswer> {
  const socket = openSocket(t, port)
  socket.write(bytes)
  return answerOf(socket, wait_ms)
}

/** A connection that sends `bytes` (say, half a request's headers) and then nothing. */
export function silentConnection(t: Teardown, port: number, bytes = ''): { socket: Socket; answer: Promise<RawAnswer> } {
  const socket = openSocket(t, port)
  if (bytes) socket.write(bytes)
  return { socket, answer: answerOf(socket, RAW_WAIT_MS) }
}

export function requestBytes(options: { target: string; upgrade?: boolean; authorization?: string; extraHeaders?: string[] }): string {
  const lines = [`GET ${options.target} HTTP/1.1`, 'Host: 127.0.0.1']
  if (options.upgrade)
    lines.push('Connection: Upgrade', 'Upgrade: websocket', 'Sec-WebSocket-Version: 13', 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==')
  else lines.push('Connection: close')
  if (options.authorization) lines.push(`Authorization: ${options.authorization}`)
  lines.push(...(options.extraHeaders ?? []))
  return lines.join('\r\n') + '\r\n\r\n'
}

function openSocket(t: Teardown, port: number): Socket {
  const socket = connect(port, '127.0.0.1')
  socket.on('error', () => {}) // a reset is an answer too: the close that follows is what the test reads
  t.teardown(() => socket.destroy())
  return socket
}

function answerOf(socket: Socket, wait_ms: number): Promise<RawAnswer> {
  return new Promise((resolve) => {
    let text = ''
    socket.setEncoding('latin1')
    socket.on('data', (chunk: string) => (text += chunk))
    const done = (closed: boolean): void => {
      clearTimeout(timer)
      const m = /^HTTP\/1\.1 (\d{3})/.exec(text)
      resolve({ status: m ? Number(m[1]) : null, text, closed })
    }
    const timer = setTimeout(() => {
      socket.destroy()
      done(false)
    }, wait_ms)
    socket.once('close', () => done(true))
  })
}
