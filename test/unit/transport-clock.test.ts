/**
 * The transport's protocol timing on a ManualClock, with no real waits: the liveness
 * probe (a peer that stops answering while this side waits for it is cut after dead_after_ms,
 * one that answers is not, an idle link is pinged every idle_ping_ms, and a peer's ping counts
 * as hearing from it), request timeouts, and a link's redial backoff all move only when the clock does.
 */
import { EventEmitter } from 'node:events'
import { createServer, type AddressInfo } from 'node:net'
import t from 'tap'
import type WebSocket from 'ws'
import { ManualClock } from '../../shared/clock.js'
import { silentLogger } from '../../shared/log.js'
import { encodeFrame } from '../../shared/protocol/codec.js'
import { FrameAuth } from '../../shared/transport/frame-auth.js'
import { PeerConnection, type TransportLimits } from '../../shared/transport/peer-connection.js'
import { PeerLink } from '../../shared/transport/peer-link.js'

const TRANSCRIPT = {
  protocolVersion: 2,
  client: { name: 'peer-x', role: 'host', nonce: 'a'.repeat(32) },
  server: { name: 'self', role: 'host', nonce: 'b'.repeat(32) },
}

/** Stands in for a ws socket: answers pings with a pong or not, completes writes at once, seals what the peer sends. */
class FakeSocket extends EventEmitter {
  readonly peer = FrameAuth.after('client', 'secret', TRANSCRIPT)
  pings = 0
  terminated = false
  constructor(private readonly answersPings: boolean) {
    super()
  }
  send(_data: Buffer, _options: unknown, cb?: (err?: Error) => void): void {
    cb?.()
  }
  ping(): void {
    this.pings++
    if (this.answersPings) this.emit('pong', Buffer.alloc(0))
  }
  close(): void {}
  terminate(): void {
    if (this.terminated) return
    this.terminated = true
    this.emit('close', 1006, Buffer.from(''))
  }
  /** A frame arriving from the peer, sealed by it. */
  receive(frame: Buffer): void {
    this.emit('message', Buffer.concat([frame, this.peer.seal([frame])]), true)
  }
}

function connectionOn(clock: ManualClock, answersPings: boolean, limits: Partial<TransportLimits>) {
  const socket = new FakeSocket(answersPings)
  const c = new PeerConnection(
    socket as unknown as WebSocket,
    { name: 'peer-x', role: 'host' },
    { log: silentLogger(), frameAuth: FrameAuth.after('server', 'secret', TRANSCRIPT), limits, clock },
  )
  let closed_at_ms: number | undefined
  c.once('close', () => (closed_at_ms = clock.now()))
  return { socket, c, closedAt: () => closed_at_ms }
}

const LIMITS = { ping_interval_ms: 500, ping_after_silent_ms: 1_000, dead_after_ms: 3_000, idle_ping_ms: 10_000 }

/** A message sent to the peer (the fake socket completes the write at once). */
async function sendTo(c: PeerConnection, seq: number, clock: ManualClock): Promise<void> {
  await c.send({ t: 'ping', seq, sent_ms: clock.now() })
}

t.test('a peer sent a frame that stays mute is cut dead_after_ms after the send; one that answers pings is not', async (t) => {
  const limits = LIMITS
  const clock = new ManualClock(1_000_000)
  const start_ms = clock.now()
  const honest = connectionOn(clock, true, limits)
  const mute = connectionOn(clock, false, limits)
  await sendTo(honest.c, 1, clock)
  await sendTo(mute.c, 1, clock)

  clock.advance(limits.dead_after_ms)
  const mutePings = (limits.dead_after_ms - limits.ping_after_silent_ms) / limits.ping_interval_ms + 1
  t.equal(mute.socket.pings, mutePings, 'a ping every ping_interval_ms once waited on for ping_after_silent_ms')
  t.ok(mute.c.isOpen, 'the mute peer is not cut before dead_after_ms has passed')
  t.equal(mute.closedAt(), undefined)

  clock.advance(limits.ping_interval_ms)
  t.equal(mute.closedAt(), start_ms + limits.dead_after_ms + limits.ping_interval_ms, 'cut at the first probe after dead_after_ms')
  t.ok(mute.socket.terminated, 'cut without a close handshake')

  clock.advance(60_000)
  t.ok(honest.c.isOpen, 'the peer that answers pings under the same limits is still connected')
  t.equal(honest.closedAt(), undefined)
  const elapsed_ms = limits.dead_after_ms + limits.ping_interval_ms + 60_000
  t.equal(
    honest.socket.pings,
    1 + Math.floor((elapsed_ms - limits.ping_after_silent_ms) / limits.idle_ping_ms),
    'pinged once while waited on; its pong left the link idle, pinged every idle_ping_ms from then on',
  )
  t.equal(mute.socket.pings, mutePings, 'a closed connection is probed no more')

  honest.c.terminate()
  t.equal(clock.pendingTimers(), 0, 'closing a connection cancels its probe')
})

t.test('a link that carries nothing is pinged every idle_ping_ms; a mute peer on it is cut dead_after_ms after that ping', async (t) => {
  const clock = new ManualClock(1_000_000)
  const start_ms = clock.now()
  const mute = connectionOn(clock, false, LIMITS)
  clock.advance(LIMITS.idle_ping_ms - LIMITS.ping_interval_ms)
  t.equal(mute.socket.pings, 0, 'an idle link is not pinged before idle_ping_ms of silence')
  clock.advance(LIMITS.ping_interval_ms)
  t.equal(mute.socket.pings, 1, 'pinged once silent for idle_ping_ms')
  clock.advance(LIMITS.dead_after_ms)
  t.ok(mute.c.isOpen, 'not cut before dead_after_ms after the ping')
  clock.advance(LIMITS.ping_interval_ms)
  t.equal(
    mute.closedAt(),
    start_ms + LIMITS.idle_ping_ms + LIMITS.dead_after_ms + LIMITS.ping_interval_ms,
    'cut once waited on past dead_after_ms',
  )
})

t.test('a peer whose frames keep arriving is not pinged nor cut; once silent it is pinged, then cut; probes share one timer', async (t) => {
  const limits = LIMITS
  const clock = new ManualClock(1_000_000)
  // Neither answers pings: only the talker's frames can keep it connected. This side sends to both every 250 ms.
  const talker = connectionOn(clock, false, limits)
  const mute = connectionOn(clock, false, limits)
  let delivered = 0
  talker.c.onMessage('ping', () => void delivered++)
  t.equal(clock.pendingTimers(), 1, 'two connections on one clock with one interval: one probe timer')

  const beat = (seq: number): void => talker.socket.receive(encodeFrame({ k: 'msg', m: { t: 'ping', seq, sent_ms: clock.now() } }))
  const first_send_ms = clock.now() + 250
  for (let i = 1; i <= 40; i++) {
    clock.advance(250)
    beat(i)
    await sendTo(talker.c, i, clock)
    if (mute.c.isOpen) await sendTo(mute.c, i, clock)
  }
  t.equal(delivered, 40, 'every frame was delivered')
  t.equal(talker.socket.pings, 0, 'a peer heard from since the last probe is not pinged')
  t.ok(talker.c.isOpen, 'nor cut, though it answers no ping: its frames prove it alive')
  t.equal(
    mute.closedAt(),
    first_send_ms + limits.dead_after_ms + limits.ping_interval_ms / 2,
    'the silent one is cut at the first probe past dead_after_ms after the first send',
  )

  const silent_from_ms = clock.now()
  for (let i = 41; i <= 44; i++) {
    clock.advance(250)
    await sendTo(talker.c, i, clock)
  }
  t.equal(talker.socket.pings, 1, 'its frames stopped: the first probe after ping_after_silent_ms of waiting pings it')
  clock.advance(limits.dead_after_ms)
  t.equal(
    talker.closedAt(),
    silent_from_ms + limits.dead_after_ms + limits.ping_interval_ms,
    'and it is cut at the first probe past dead_after_ms after its last frame (sent to since)',
  )
  t.equal(clock.pendingTimers(), 0, 'no connection left: no probe timer')
})

t.test("on an idle link the peer's pings count as hearing from it: only one side pings", async (t) => {
  const clock = new ManualClock(1_000_000)
  const quiet = connectionOn(clock, false, LIMITS)
  for (let i = 0; i < 20; i++) {
    clock.advance(LIMITS.idle_ping_ms - LIMITS.ping_interval_ms)
    quiet.socket.emit('ping', Buffer.alloc(0))
  }
  t.equal(quiet.socket.pings, 0, 'never pinged back: the peer pings often enough')
  t.ok(quiet.c.isOpen, 'nor cut: pings prove the peer alive')
  clock.advance(LIMITS.idle_ping_ms)
  t.equal(quiet.socket.pings, 1, 'once its pings stop, this side pings')
  quiet.c.terminate()
  t.throws(
    () => connectionOn(clock, true, { ...LIMITS, ping_after_silent_ms: LIMITS.dead_after_ms }),
    RangeError,
    'a peer would be cut before it is pinged',
  )
  t.throws(
    () => connectionOn(clock, true, { ...LIMITS, idle_ping_ms: LIMITS.ping_after_silent_ms - 1 }),
    RangeError,
    'an idle link checked more often than a busy one',
  )
})

t.test('a request with no reply times out on the clock; one answered in time does not', async (t) => {
  const clock = new ManualClock()
  const { socket, c } = connectionOn(clock, true, { ping_interval_ms: 60_000, request_timeout_ms: 5_000 })
  t.teardown(() => c.terminate())
  let outcome: string | undefined
  const unanswered = c.request({ t: 'ping', seq: 1, sent_ms: 0 }).then(
    () => 'answered',
    (e: { code?: string; message?: string }) => `${e.code}: ${e.message}`,
  )
  void unanswered.then((o) => (outcome = o))
  const answered = c.request({ t: 'ping', seq: 2, sent_ms: 0 }, { timeout_ms: 1_000 })
  await new Promise((resolve) => setImmediate(resolve))

  clock.advance(999)
  socket.receive(encodeFrame({ k: 'res', id: 2, m: { t: 'pong', seq: 2, sent_ms: 0 } }))
  t.same((await answered).message, { t: 'pong', seq: 2, sent_ms: 0 }, 'a reply before its timeout resolves the request')

  clock.advance(5_000 - 999 - 1)
  await new Promise((resolve) => setImmediate(resolve))
  t.equal(outcome, undefined, 'a request is not timed out before request_timeout_ms')
  clock.advance(1)
  await new Promise((resolve) => setImmediate(resolve))
  t.equal(outcome, 'HVLAB_E_TIMEOUT: peer-x did not answer ping within 5000 ms', 'timed out at request_timeout_ms on the clock, at once')
  t.ok(c.isOpen, 'a timed-out request leaves the connection open')
  t.equal(clock.pendingTimers(), 1, 'only the probe is left: the answered request cancelled its timeout')
})

t.test("a link's redial backoff waits on the clock", async (t) => {
  // A port nothing listens on: each dial fails at once (ECONNREFUSED).
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as AddressInfo).port
  await new Promise((resolve) => server.close(resolve))

  const clock = new ManualClock()
  const link = new PeerLink(
    { name: 'host-a', role: 'host', secret: 's', log: silentLogger(), clock, backoff: { initial_ms: 100, max_ms: 100, jitter: 0 } },
    { host: '127.0.0.1', port },
  )
  t.teardown(() => link.stop())
  let failures = 0
  const nextFailure = () => new Promise<void>((resolve) => link.once('dial-failed', () => resolve(void failures++)))

  link.start()
  t.equal(clock.pendingTimers(), 1, 'the first dial waits for the clock too')
  let failed = nextFailure()
  clock.advance(0)
  await failed
  t.equal(clock.pendingTimers(), 1, 'after a failed dial, the redial is set on the clock')
  clock.advance(99)
  t.equal(clock.pendingTimers(), 1, 'and not due before the backoff has passed')
  t.equal(failures, 1)

  failed = nextFailure()
  clock.advance(1)
  t.equal(clock.pendingTimers(), 0, 'the backoff passed: the link dials again')
  await failed
  t.equal(failures, 2)

  link.stop()
  t.equal(clock.pendingTimers(), 0, 'stopping the link cancels its redial')
})
