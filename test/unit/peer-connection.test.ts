/**
 * PeerConnection over a fake socket whose writes complete only when the test says so:
 * the send queue's bound (including senders waiting for a drain), what happens to
 * waiting senders and requests when the connection closes, and handler failures.
 */
import { EventEmitter } from 'node:events'
import t from 'tap'
import type WebSocket from 'ws'
import { silentLogger } from '../../shared/log.js'
import { decodeFrame, encodeFrame } from '../../shared/protocol/codec.js'
import { FrameAuth } from '../../shared/transport/frame-auth.js'
import { PeerConnection, type TransportLimits } from '../../shared/transport/peer-connection.js'

const TRANSCRIPT = {
  protocolVersion: 2,
  client: { name: 'peer-x', role: 'host', nonce: 'a'.repeat(32) },
  server: { name: 'self', role: 'host', nonce: 'b'.repeat(32) },
}

/**
 * Stands in for a ws socket and for the peer's end of the frame authentication: records
 * whole messages (joining fragments sent with `fin: false`, as ws does) opened with the
 * peer's keys, completes writes on `flush()`, seals the frames it receives.
 */
class FakeSocket extends EventEmitter {
  /** The frames sent, each opened (its tag checked and removed) as the peer would. */
  readonly sent: Buffer[] = []
  readonly peer = FrameAuth.after('client', 'secret', TRANSCRIPT)
  private readonly writes: ((err?: Error) => void)[] = []
  private fragments: Buffer[] = []
  closedWith: number | undefined
  send(data: Buffer, options: { fin?: boolean } | undefined, cb?: (err?: Error) => void): void {
    this.fragments.push(Buffer.from(data))
    if (options?.fin !== false) {
      const opened = this.peer.open(this.fragments.splice(0))
      if (!opened) throw new Error('a frame sent did not open with the peer keys')
      this.sent.push(Buffer.concat(opened))
    }
    if (cb) this.writes.push(cb)
  }
  /** Completes every write handed to the socket so far (`err`: each fails with it, as ws does when the socket closed). */
  flush(err?: Error): void {
    for (const cb of this.writes.splice(0)) cb(err)
  }
  ping(): void {}
  close(code: number): void {
    this.closedWith = code
  }
  terminate(): void {
    this.emit('close', 1006, Buffer.from(''))
  }
  /** A frame arriving from the peer, sealed by it: in one buffer, or cut into `pieces` fragments (ws's binaryType 'fragments'). */
  receive(frame: Buffer, pieces = 1): void {
    const sealed = Buffer.concat([frame, this.peer.seal([frame])])
    if (pieces === 1) return void this.emit('message', sealed, true)
    const size = Math.ceil(sealed.length / pieces)
    const fragments = Array.from({ length: pieces }, (_, i) => sealed.subarray(i * size, (i + 1) * size))
    this.emit('message', fragments, true)
  }
}

function fakeConnection(tt: Parameters<Parameters<typeof t.test>[0]>[0], limits: Partial<TransportLimits> = {}) {
  const socket = new FakeSocket()
  const frameAuth = FrameAuth.after('server', 'secret', TRANSCRIPT)
  const c = new PeerConnection(
    socket as unknown as WebSocket,
    { name: 'peer-x', role: 'host' },
    { log: silentLogger(), frameAuth, limits: { ping_interval_ms: 60_000, ...limits } },
  )
  tt.teardown(() => c.terminate())
  return { socket, c }
}

const label = (i: number) => ({ t: 'blob' as const, label: `b${i}` })
const KiB = 1024

t.test('sends beyond send_queue_bytes_max are refused with HVLAB_E_BACKPRESSURE, waiting senders included', async (tt) => {
  const limits = { send_high_water_bytes: 8 * KiB, send_queue_bytes_max: 64 * KiB }
  const { socket, c } = fakeConnection(tt, limits)
  const attachment = Buffer.alloc(4 * KiB, 1)
  const outcomes: Promise<'sent' | string>[] = []
  for (let i = 0; i < 100; i++) {
    outcomes.push(
      c.send(label(i), attachment).then(
        () => 'sent',
        (e: { code?: string }) => e.code ?? 'other',
      ),
    )
  }
  await new Promise((resolve) => setImmediate(resolve))
  const frame_bytes = encodeFrame({ k: 'msg', m: label(50) }, attachment).length
  const handedToSocket = socket.sent.length
  tt.ok(
    handedToSocket * frame_bytes <= limits.send_high_water_bytes + frame_bytes,
    `only up to the high-water mark went to the socket (${handedToSocket} frames)`,
  )

  socket.flush()
  for (let round = 0; round < 100 && socket.sent.length < 100; round++) {
    await new Promise((resolve) => setImmediate(resolve))
    socket.flush()
  }
  const results = await Promise.all(outcomes)
  const sent = results.filter((r) => r === 'sent').length
  const refused = results.filter((r) => r === 'HVLAB_E_BACKPRESSURE').length
  tt.equal(sent + refused, 100, 'every send either went out or was refused with HVLAB_E_BACKPRESSURE')
  tt.ok(refused > 0, `${refused} sends were refused rather than buffered`)
  tt.ok(sent * frame_bytes <= limits.send_queue_bytes_max, `what was accepted fits the bound (${sent} frames of ${frame_bytes} bytes)`)
  tt.equal(socket.sent.length, sent, 'every accepted send reached the socket once it drained')
  tt.same(results.slice(0, sent), Array(sent).fill('sent'), 'the first sends were the ones accepted, in order')

  // With the queue drained, sending works again.
  const again = c.send(label(1), attachment)
  socket.flush()
  await again
  tt.pass('sending works again once the queue drained')
})

t.test('a frame in fragments arrives whole, however many (beyond a few they are joined first)', async (tt) => {
  const { socket, c } = fakeConnection(tt)
  const got: { label: string; bytes: Buffer; owned: boolean | undefined }[] = []
  c.onMessage(
    'blob',
    ({ message, attachment, attachment_owned }) =>
      void got.push({ label: message.label, bytes: Buffer.from(attachment), owned: attachment_owned }),
  )
  const bytes = Buffer.alloc(5000)
  for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 7) & 0xff
  for (const pieces of [1, 3, 8, 9, 300]) socket.receive(encodeFrame({ k: 'msg', m: { t: 'blob', label: `p${pieces}` } }, bytes), pieces)
  tt.same(
    got.map((g) => g.label),
    ['p1', 'p3', 'p8', 'p9', 'p300'],
    'each delivered, in order (the frame counter kept: none refused)',
  )
  tt.ok(
    got.every((g) => g.bytes.equals(bytes)),
    'each attachment intact',
  )
  tt.equal(c.isOpen, true)
})

t.test('onWritten says when an attachment is written to the socket, and only then; never for a write that failed', async (tt) => {
  const { socket, c } = fakeConnection(tt)
  const written: string[] = []
  await c.send(label(0), Buffer.alloc(4 * KiB), { onWritten: () => written.push('b0') })
  await c.send(label(1), Buffer.alloc(4 * KiB), { onWritten: () => written.push('b1') })
  tt.same(written, [], 'queued on the socket is not written: the buffer is still in use')
  socket.flush()
  tt.same(written, ['b0', 'b1'], 'each is called once its frame is written, in order')
  await c.send(label(2), Buffer.alloc(4 * KiB), { onWritten: () => written.push('b2') })
  socket.flush(new Error('socket closed'))
  tt.same(written, ['b0', 'b1'], 'a write that failed does not call it')
})

t.test('a connection that closes while senders wait for a drain rejects them with HVLAB_E_CLOSED', async (tt) => {
  const { socket, c } = fakeConnection(tt, { send_high_water_bytes: 1 * KiB, send_queue_bytes_max: 1024 * KiB })
  const unhandled: unknown[] = []
  const onUnhandled = (e: unknown) => unhandled.push(e)
  process.on('unhandledRejection', onUnhandled)
  tt.teardown(() => void process.off('unhandledRejection', onUnhandled))

  const first = c.send(label(0), Buffer.alloc(4 * KiB)) // fills the socket past high water
  const waitingSend = c.send(label(1), Buffer.alloc(4 * KiB))
  const waitingRequest = c.request({ t: 'ping', seq: 1, sent_ms: 0 })
  await new Promise((resolve) => setImmediate(resolve))
  tt.equal(socket.sent.length, 1, 'the later frames are waiting, not sent')
  socket.terminate()
  await tt.rejects(waitingSend, { code: 'HVLAB_E_CLOSED' })
  await tt.rejects(waitingRequest, { code: 'HVLAB_E_CLOSED' })
  socket.flush()
  await first
  await new Promise((resolve) => setImmediate(resolve))
  tt.same(unhandled, [], 'no promise was left rejected with nobody listening')
})

t.test('close() stops acting on frames and refuses further sends', async (tt) => {
  const { socket, c } = fakeConnection(tt)
  let handled = 0
  c.onMessage('ping', () => void handled++)
  socket.receive(encodeFrame({ k: 'msg', m: { t: 'ping', seq: 1, sent_ms: 0 } }))
  tt.equal(handled, 1, 'a frame is handled while open')
  c.close('HVLAB_E_STATE', `shutting down: ${'the host is draining; '.repeat(100)}`)
  tt.equal(socket.closedWith, 1008)
  tt.match(
    decodeFrame(socket.sent.at(-1)!).envelope,
    { k: 'msg', m: { t: 'goodbye', code: 'HVLAB_E_STATE', reason: /^shutting down/ } },
    'the peer is told why, even with a long reason',
  )
  tt.equal(c.isOpen, false, 'a closing connection is not open')
  socket.receive(encodeFrame({ k: 'msg', m: { t: 'ping', seq: 2, sent_ms: 0 } }))
  tt.equal(handled, 1, 'a frame that arrives while closing is ignored')
  await tt.rejects(c.send({ t: 'ok' }), { code: 'HVLAB_E_CLOSED' })
})

t.test('handler failures: a rejected one-way handler is logged, an invalid reply becomes an error reply', async (tt) => {
  const { socket, c } = fakeConnection(tt)
  const unhandled: unknown[] = []
  const onUnhandled = (e: unknown) => unhandled.push(e)
  process.on('unhandledRejection', onUnhandled)
  tt.teardown(() => void process.off('unhandledRejection', onUnhandled))

  c.onMessage('ping', async () => {
    throw new Error('async handler bug')
  })
  c.onRequest('pong', () => ({ message: { t: 'ping', seq: -5, sent_ms: 0 } }))
  socket.receive(encodeFrame({ k: 'msg', m: { t: 'ping', seq: 1, sent_ms: 0 } }))
  socket.receive(encodeFrame({ k: 'req', id: 41, m: { t: 'pong', seq: 1, sent_ms: 0 } }))
  await new Promise((resolve) => setImmediate(resolve))
  await new Promise((resolve) => setImmediate(resolve))
  tt.same(unhandled, [], 'the async handler failure did not escape')
  tt.ok(c.isOpen, 'the connection stays open')
  const replies = socket.sent.map((f) => decodeFrame(f).envelope)
  tt.match(
    replies,
    [{ k: 'err', id: 41, code: 'HVLAB_E_INTERNAL', message: /invalid reply to pong/ }],
    'the requester hears why instead of timing out',
  )
})

t.test('requests_in_flight_max bounds requests awaiting replies', async (tt) => {
  const { socket, c } = fakeConnection(tt, { requests_in_flight_max: 3 })
  const inFlight = [1, 2, 3].map((seq) => c.request({ t: 'ping', seq, sent_ms: 0 }))
  await tt.rejects(c.request({ t: 'ping', seq: 4, sent_ms: 0 }), { code: 'HVLAB_E_BACKPRESSURE' })
  // Answer the first; a new request fits again.
  socket.receive(encodeFrame({ k: 'res', id: 1, m: { t: 'pong', seq: 1, sent_ms: 0 } }))
  tt.same((await inFlight[0]!).message, { t: 'pong', seq: 1, sent_ms: 0 })
  const fourth = c.request({ t: 'ping', seq: 4, sent_ms: 0 })
  socket.terminate()
  for (const p of [...inFlight.slice(1), fourth]) await tt.rejects(p, { code: 'HVLAB_E_CLOSED' })
})
