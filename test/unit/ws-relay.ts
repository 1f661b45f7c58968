/**
 * A TCP relay for tests, in the place of the audit's man in the middle (a process on a
 * killed host's old port): it forwards a real client's bytes to a real server and back,
 * HTTP upgrade and handshake included, and cuts the stream after the upgrade into whole
 * WebSocket messages (a message's fragments together), so a test can drop, alter, replay
 * or inject messages — hvlab frames — at their boundaries. It holds no secret. Closed at teardown.
 */
import { once } from 'node:events'
import { createServer, connect, type AddressInfo, type Socket } from 'node:net'
import type { TapTest } from './transport-helpers.js'

export type Direction = 'toServer' | 'toClient'

/** One data message as it travels: its fragments (WebSocket frames, headers included), first to last. */
export interface WsMessage {
  fragments: Buffer[]
}

/** What to forward instead of a message: nothing (dropped), its fragments, or other bytes. */
export type MessageHook = (message: WsMessage) => Buffer[]

const OPCODE_CLOSE = 0x8

/** One WebSocket frame: FIN, `opcode`, masked with a zero key when it goes to a server (as clients must). */
export function wsFrame(payload: Buffer, direction: Direction, opcode = 0x2): Buffer {
  const masked = direction === 'toServer'
  const lengthBytes = payload.length < 126 ? 0 : payload.length < 0x10000 ? 2 : 8
  const head = Buffer.alloc(2 + lengthBytes + (masked ? 4 : 0))
  head[0] = 0x80 | opcode
  head[1] = (masked ? 0x80 : 0) | (lengthBytes === 0 ? payload.length : lengthBytes === 2 ? 126 : 127)
  if (lengthBytes === 2) head.writeUInt16BE(payload.length, 2)
  if (lengthBytes === 8) head.writeBigUInt64BE(BigInt(payload.length), 2)
  return Buffer.concat([head, payload])
}

/** The length of the first whole frame in `buffer`, or 0 when it has not all arrived. */
function frameLength(buffer: Buffer): number {
  if (buffer.length < 2) return 0
  const masked = (buffer[1]! & 0x80) !== 0
  let length = buffer[1]! & 0x7f
  let header = 2
  if (length === 126) {
    if (buffer.length < 4) return 0
    length = buffer.readUInt16BE(2)
    header = 4
  } else if (length === 127) {
    if (buffer.length < 10) return 0
    length = Number(buffer.readBigUInt64BE(2))
    header = 10
  }
  const total = header + (masked ? 4 : 0) + length
  return buffer.length >= total ? total : 0
}

/** One direction of one relayed connection: HTTP passes as it is, then message by message. */
class Pipe {
  private buffered = Buffer.alloc(0)
  private upgraded = false
  /** Fragments of a data message whose last fragment has not arrived yet. */
  private fragments: Buffer[] = []

  constructor(
    private readonly to: Socket,
    private readonly hook: () => MessageHook | undefined,
  ) {}

  push(chunk: Buffer): void {
    this.buffered = Buffer.concat([this.buffered, chunk])
    if (!this.upgraded) {
      const end = this.buffered.indexOf('\r\n\r\n')
      if (end < 0) return
      this.to.write(this.buffered.subarray(0, end + 4))
      this.buffered = this.buffered.subarray(end + 4)
      this.upgraded = true
    }
    for (let n = frameLength(this.buffered); n > 0; n = frameLength(this.buffered)) {
      const frame = this.buffered.subarray(0, n)
      this.buffered = this.buffered.subarray(n)
      this.onFrame(frame)
    }
  }

  private onFrame(frame: Buffer): void {
    // Control frames (ping, pong, close) pass at once, even between fragments: the tests tamper with data.
    if ((frame[0]! & 0x0f) >= OPCODE_CLOSE) return void this.to.write(frame)
    this.fragments.push(frame)
    if ((frame[0]! & 0x80) === 0) return // not FIN: more fragments follow
    const message = { fragments: this.fragments }
    this.fragments = []
    const hook = this.hook()
    for (const bytes of hook ? hook(message) : message.fragments) this.to.write(bytes)
  }

  inject(bytes: Buffer): void {
    this.to.write(bytes)
  }
}

export class WsRelay {
  /** Set by a test: what to do with each data message in that direction (default: forward it). */
  readonly hooks: Partial<Record<Direction, MessageHook>> = {}
  private readonly pipes: Record<Direction, Pipe>[] = []

  private constructor(readonly port: number) {}

  /** A relay to 127.0.0.1:`targetPort`; each client connection gets its own server connection. */
  static async start(tt: TapTest, targetPort: number): Promise<WsRelay> {
    const sockets = new Set<Socket>()
    const server = createServer()
    server.listen(0, '127.0.0.1')
    await once(server, 'listening')
    const relay = new WsRelay((server.address() as AddressInfo).port)
    server.on('connection', (client) => {
      const upstream = connect(targetPort, '127.0.0.1')
      for (const s of [client, upstream]) {
        sockets.add(s)
        s.on('error', () => undefined)
        s.on('close', () => {
          sockets.delete(s)
          client.destroy()
          upstream.destroy()
        })
      }
      const pipes = { toServer: new Pipe(upstream, () => relay.hooks.toServer), toClient: new Pipe(client, () => relay.hooks.toClient) }
      relay.pipes.push(pipes)
      client.on('data', (chunk: Buffer) => pipes.toServer.push(chunk))
      upstream.on('data', (chunk: Buffer) => pipes.toClient.push(chunk))
    })
    tt.teardown(
      () =>
        new Promise<void>((resolve) => {
          for (const s of sockets) s.destroy()
          server.close(() => resolve())
        }),
    )
    return relay
  }

  /** Writes a message of its own (one frame) between two whole messages of the latest relayed connection. */
  inject(direction: Direction, payload: Buffer): void {
    const pipes = this.pipes.at(-1)
    if (!pipes) throw new Error('nothing relayed yet')
    pipes[direction].inject(wsFrame(payload, direction))
  }
}
