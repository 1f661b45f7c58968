/**
 * An authenticated connection to one peer: one-way messages, request/response with
 * timeouts and typed errors, byte attachments, bounded send buffering, bounded inbound
 * requests and a liveness probe. Created by the server or the client once the handshake
 * has succeeded. Every frame sent ends in its tag (frame-auth.ts); a frame received that
 * does not open closes the connection (HVLAB_E_AUTH) before anything reads it. The
 * liveness probe and request timeouts wait on the connection's Clock (shared/clock.ts).
 *
 * Liveness: an authenticated frame, a pong or a ping from the peer proves it alive. The
 * probe judges a peer only while this side waits for it: from the first frame or ping sent
 * since the peer was last heard. A peer waited on for `ping_after_silent_ms` is pinged
 * (between a host and its coordinator the cluster's heartbeats stand in for pings), one
 * waited on for `dead_after_ms` is cut. An idle link (nothing sent since the peer was last
 * heard) costs a ping only every `idle_ping_ms`, and the first side to ping answers for
 * both: the other hears the ping. So a hung peer is cut within `dead_after_ms` of being
 * sent something, and within `idle_ping_ms` + `dead_after_ms` on a link that carries
 * nothing (issue 12: a member host's 17 idle links each cost it a wake-up a second). The
 * probes of every connection of a process run on one timer (probe-ticker.ts).
 */
import { logRefusal } from './refusal-log.js'
import { EventEmitter } from 'node:events'
import type WebSocket from 'ws'
import { RealClock, type Clock } from '../clock.js'
import { HvlabError, asErrorCode, describeError } from '../errors.js'
import { decodeFrameParts, encodeFrame, encodeFrameParts, type Envelope } from '../protocol/codec.js'
import type { Message, MessageType, MessageOf } from '../protocol/messages.js'
import type { Logger } from '../log.js'
import { goodbye } from './handshake-frames.js'
import type { Metrics } from '../metrics.js'
import { LIMITS_DEFAULT } from '../topology.js'
import { FRAME_TAG_BYTES, type FrameAuth } from './frame-auth.js'
import { LinkShaper, type LinkShape } from './link-shaper.js'
import { ProbeTicker } from './probe-ticker.js'
import { stageTimes } from '../stage-times.js'

export interface TransportLimits {
  /** Above this many bytes queued in the socket, `send` waits (backpressure). */
  send_high_water_bytes: number
  /** Beyond this many queued bytes a send is refused with HVLAB_E_BACKPRESSURE. */
  send_queue_bytes_max: number
  /** Requests awaiting a reply at once, per connection. */
  requests_in_flight_max: number
  request_timeout_ms: number
  /**
   * Liveness: a probe every interval. While this side waits for the peer (it sent a frame or
   * a ping since it last heard from it), the probe pings a peer waited on for
   * `ping_after_silent_ms` and cuts one waited on for `dead_after_ms`; on an idle link it
   * pings a peer silent for `idle_ping_ms`, which starts a wait.
   */
  ping_interval_ms: number
  /** Where in each ping interval the probe runs (ms): a lab process's tick offset, so probes share its ticks' wake-ups. */
  probe_offset_ms: number
  ping_after_silent_ms: number
  dead_after_ms: number
  idle_ping_ms: number
  /** Requests from the peer being handled at once; more are answered HVLAB_E_BACKPRESSURE at once. */
  inbound_requests_in_flight_max: number
  /** Bytes the other side may send before its proof is verified (the handshake); beyond, it is cut. */
  preauth_bytes_max: number
}

export const DEFAULT_LIMITS: TransportLimits = {
  send_high_water_bytes: 16 * 1024 * 1024,
  send_queue_bytes_max: 64 * 1024 * 1024,
  requests_in_flight_max: LIMITS_DEFAULT.requests_in_flight_max,
  request_timeout_ms: 10_000,
  ping_interval_ms: 500,
  probe_offset_ms: 0,
  // Pinged after 1 s of silence, a live peer has 2 s to answer: longer than the cluster's
  // own detection within a site (2.5 s of silence), so the cluster, not the transport,
  // decides that a paused host is gone.
  ping_after_silent_ms: 1_000,
  dead_after_ms: 3_000,
  // A link that carries nothing is checked every 30 s (a ping costs a cold process about
  // 0.3 ms of CPU, and a member host holds 17 idle links): a hung peer on it is cut within
  // 33.5 s, one that is sent anything within 3.5 s of that.
  idle_ping_ms: 30_000,
  inbound_requests_in_flight_max: LIMITS_DEFAULT.requests_in_flight_max,
  preauth_bytes_max: LIMITS_DEFAULT.preauth_bytes_max,
}

export interface Incoming {
  message: Message
  attachment: Buffer
  /**
   * The attachment's ArrayBuffer holds this frame alone and the transport keeps no
   * reference to it: the handler may keep the attachment, or move (transfer) its buffer to
   * a worker, instead of copying it. False when the frame shares its buffer (a small frame
   * in a socket read, say): then the attachment is valid only during the handler's call.
   * The message's binary fields, if any, are views into the same buffer. Absent: false.
   */
  attachment_owned?: boolean
}

export interface Reply {
  message: Message
  attachment?: Uint8Array
}

export type RequestHandler = (incoming: Incoming, from: PeerConnection) => Promise<Reply> | Reply
export type MessageHandler = (incoming: Incoming, from: PeerConnection) => void

interface Pending {
  resolve: (r: Incoming) => void
  reject: (e: Error) => void
  cancelTimeout: () => void
}

const CLOSE_POLICY = 1008

/**
 * The attachment lies in one of the message's fragments that spans the whole of its
 * ArrayBuffer: a buffer nobody else holds (ws gathered that fragment from several socket
 * reads, or it was a socket read of its own). A view into a shared read, or parts joined
 * by the decoder, are not.
 */
function ownsAttachment(attachment: Buffer, fragments: readonly Buffer[]): boolean {
  const buffer = attachment.buffer
  if (attachment.length === 0 || !(buffer instanceof ArrayBuffer)) return false
  return fragments.some((f) => f.buffer === buffer && f.byteOffset === 0 && f.byteLength === buffer.byteLength)
}

/** ws's message as fragments of at most FRAGMENTS_KEPT_MAX (joined beyond that). */
function asFragments(data: Buffer | Buffer[]): Fragments {
  if (!Array.isArray(data)) return [data]
  return data.length <= FRAGMENTS_KEPT_MAX ? data : [Buffer.concat(data)]
}

/** A message as ws hands it over with binaryType 'fragments': its fragments, in order. */
type Fragments = readonly Buffer[]

/**
 * This transport sends a message in at most three fragments (envelope, attachment, tag). A
 * message in more than this many is joined into one buffer before it is opened, so a peer
 * cutting a frame into many tiny fragments costs one copy, not a call per fragment.
 */
const FRAGMENTS_KEPT_MAX = 8
/** The clock of connections given none: one for all, so their probes share a timer. */
const DEFAULT_CLOCK = new RealClock()
/** Frames a held connection keeps for its owner; its owner starts it in the same tick. */
const HELD_FRAMES_MAX = 1024

/**
 * Events: 'close' (code: number, reason: string) once, when the connection is gone for
 * whatever reason.
 */
export class PeerConnection extends EventEmitter {
  readonly remoteName: string
  readonly remoteRole: string
  private readonly ws: WebSocket
  private readonly log: Logger
  private readonly limits: TransportLimits
  private readonly metrics: Metrics | undefined
  private readonly frameAuth: Pick<FrameAuth, 'seal' | 'open'>
  private readonly clock: Clock
  private readonly pending = new Map<number, Pending>()
  private readonly handlers = new Map<string, MessageHandler>()
  private readonly requestHandlers = new Map<string, RequestHandler>()
  private nextRequestId = 1
  /** Requests from the peer whose handlers have not finished (or whose replies are not sent yet). */
  private inboundInFlight = 0
  private queued_bytes = 0
  private drainWaiters: (() => void)[] = []
  /** When the peer last proved it is alive: an authenticated frame, a pong or a ping. */
  private last_heard_ms: number
  /** The first frame or ping sent since the peer was last heard; undefined while the link is idle. */
  private waiting_since_ms: number | undefined
  private last_probe_ms: number
  private readonly probes: ProbeTicker
  /** Bytes of frames encoded by senders that wait for the queue to drain. */
  private waiting_bytes = 0
  /** close() was called: nothing received after that is acted on, nothing more is sent. */
  private closing = false
  private closed = false
  /** Frames received (opened: their parts, and the fragments they came in) before `start()`: delivered then, in order. Undefined once started. */
  private held: { parts: Buffer[]; fragments: Fragments }[] | undefined
  /** The lab's network faults on what this side sends (link-shaper.ts). */
  private readonly shaper: LinkShaper
  /** A one-way partition towards this side: nothing from the peer is read, not even a ping or pong. */
  private deaf = false
  /** Frames were ignored while deaf: the peer's frame counter is ahead of ours. */
  private missed_frames = false

  /**
   * `held`: deliver nothing until `start()`. The dialling side creates its connection held:
   * the server may send its first message in the same TCP segment as its welcome, and ws
   * emits that message at once, before the dialler's owner has attached its handlers.
   * `frameAuth`: this connection's frame keys and counters, from its handshake.
   * `clock`: what the liveness probe and request timeouts wait on; a RealClock when not given.
   */
  constructor(
    ws: WebSocket,
    remote: { name: string; role: string },
    opts: {
      log: Logger
      frameAuth: Pick<FrameAuth, 'seal' | 'open'>
      limits?: Partial<TransportLimits>
      metrics?: Metrics
      held?: boolean
      clock?: Clock
    },
  ) {
    super()
    this.ws = ws
    this.frameAuth = opts.frameAuth
    this.clock = opts.clock ?? DEFAULT_CLOCK
    this.last_heard_ms = this.clock.now()
    this.last_probe_ms = this.last_heard_ms
    this.remoteName = remote.name
    this.remoteRole = remote.role
    this.limits = { ...DEFAULT_LIMITS, ...opts.limits }
    if (!(this.limits.ping_after_silent_ms < this.limits.dead_after_ms))
      throw new RangeError(
        'transport limits: ping_after_silent_ms must be shorter than dead_after_ms, or a live peer is cut before it is pinged',
      )
    if (!(this.limits.ping_after_silent_ms <= this.limits.idle_ping_ms))
      throw new RangeError(
        'transport limits: idle_ping_ms must be at least ping_after_silent_ms: an idle link is checked less often than a busy one',
      )
    this.log = opts.log.child({ peer: remote.name })
    this.metrics = opts.metrics
    if (opts.held) this.held = []
    this.shaper = new LinkShaper(this.clock)
    // Each message as the fragments it came in: a page batch sent as a fragment of its own
    // arrives in a buffer of its own, not copied again into one for the whole message.
    ws.binaryType = 'fragments'
    ws.on('message', (data, isBinary) => this.onFrame(asFragments(data as Buffer | Buffer[]), isBinary))
    ws.on('pong', () => this.deaf || this.heard())
    ws.on('ping', () => this.deaf || this.heard())
    ws.on('close', (code, reason) => this.onClosed(code, reason.toString()))
    ws.on('error', (err) => {
      this.log.warn({ err: describeError(err) }, 'connection error')
      // ws closes the socket itself after an error (e.g. 1009 for an oversize frame).
    })
    // A probe every ping_interval_ms until the connection is closed, on the timer every
    // connection of this clock and interval shares. RealClock's timers are unref'd, as this one always was.
    this.probes = ProbeTicker.of(this.clock, this.limits.ping_interval_ms, this.limits.probe_offset_ms)
    this.probes.add(this)
  }

  /**
   * Delivers the frames held so far, then every later one as it comes. The owner of a held
   * connection calls it once its handlers are attached; on a started connection it does nothing.
   */
  start(): void {
    const held = this.held
    this.held = undefined
    for (const frame of held ?? []) {
      if (!this.isOpen) return
      this.deliver(frame.parts, frame.fragments)
    }
  }

  get isOpen(): boolean {
    return !this.closed && !this.closing
  }

  /** The lab's shaping of the frames this side sends from now on (frames already held keep their times). */
  setLinkShape(shape: LinkShape): void {
    this.shaper.setShape(shape)
  }

  /**
   * A one-way partition from the peer to this side (`deaf`), or its end. While deaf nothing
   * the peer sends is read, so its frame counter moves ahead of ours: a connection that
   * missed frames is cut when the partition ends, as TCP would have reset it, and the mesh
   * dials again.
   */
  setDeaf(deaf: boolean): void {
    this.deaf = deaf
    if (!deaf && this.missed_frames) this.terminate()
  }

  /** Handles one-way messages of type `t`. */
  onMessage<T extends MessageType>(
    t: T,
    handler: (incoming: { message: MessageOf<T>; attachment: Buffer; attachment_owned?: boolean }, from: PeerConnection) => void,
  ): this {
    this.handlers.set(t, handler as MessageHandler)
    return this
  }

  /** Answers requests of type `t`; a thrown HvlabError becomes an error reply with its code. */
  onRequest<T extends MessageType>(
    t: T,
    handler: (
      incoming: { message: MessageOf<T>; attachment: Buffer; attachment_owned?: boolean },
      from: PeerConnection,
    ) => Promise<Reply> | Reply,
  ): this {
    this.requestHandlers.set(t, handler as RequestHandler)
    return this
  }

  /**
   * Sends a one-way message; waits while the socket's queue is above the high-water mark.
   * An attachment is sent as it is, not copied: do not change its bytes after the call,
   * until `onWritten` is called — once the whole frame is written to the socket (never, if
   * the connection closes first). Then its buffer may be reused.
   */
  async send(message: Message, attachment?: Uint8Array, options: { onWritten?: () => void } = {}): Promise<void> {
    await this.sendEnvelope({ k: 'msg', m: message }, attachment, options.onWritten)
  }

  /** Sends a request and resolves with the reply, or rejects with a typed HvlabError. */
  async request(message: Message, options: { attachment?: Uint8Array; timeout_ms?: number } = {}): Promise<Incoming> {
    if (this.pending.size >= this.limits.requests_in_flight_max) {
      throw new HvlabError(
        'HVLAB_E_BACKPRESSURE',
        `${this.limits.requests_in_flight_max} requests to ${this.remoteName} are already awaiting replies; wait for some to finish`,
      )
    }
    const id = this.nextRequestId
    this.nextRequestId = this.nextRequestId >= 0xffff_fffe ? 1 : this.nextRequestId + 1
    const timeout_ms = options.timeout_ms ?? this.limits.request_timeout_ms
    const reply = new Promise<Incoming>((resolve, reject) => {
      // On the Clock: a RealClock timer is unref'd (a plain setTimeout was not). Nothing
      // relied on that: a request is pending only while its socket is open, which keeps the
      // process alive, and the socket's close rejects every pending request (onClosed).
      const cancelTimeout = this.clock.setTimer(timeout_ms, () => {
        this.pending.delete(id)
        reject(new HvlabError('HVLAB_E_TIMEOUT', `${this.remoteName} did not answer ${message.t} within ${timeout_ms} ms`))
      })
      this.pending.set(id, { resolve, reject, cancelTimeout })
    })
    try {
      await this.sendEnvelope({ k: 'req', id, m: message }, options.attachment)
    } catch (e) {
      const p = this.pending.get(id)
      if (p) {
        p.cancelTimeout()
        this.pending.delete(id)
      }
      // If the connection closed meanwhile, onClosed already rejected `reply`; the
      // caller gets `e` instead, so that rejection must not go unhandled.
      reply.catch(() => undefined)
      throw e
    }
    return reply
  }

  /** Closes the connection, telling the peer why. */
  close(code: string, reason: string): void {
    if (this.closed || this.closing) return
    this.closing = true
    this.wakeSenders()
    this.sendGoodbye(code, reason)
    this.ws.close(CLOSE_POLICY, code.slice(0, 100))
    // If the peer never answers the close handshake (paused, partitioned), cut it. A real
    // timer, not the Clock: socket hygiene after the close, no part of the protocol's timing.
    setTimeout(() => this.ws.terminate(), 1000).unref()
  }

  /** Tells the peer why, then cuts the connection as soon as that is written: nothing more is read. */
  private cut(code: string, reason: string): void {
    if (this.closed || this.closing) return
    this.closing = true
    this.wakeSenders()
    this.sendGoodbye(code, reason, () => this.ws.terminate())
    // Socket hygiene, as in close(): a real timer, not the Clock.
    setTimeout(() => this.ws.terminate(), 1000).unref()
  }

  private sendGoodbye(code: string, reason: string, written?: () => void): void {
    try {
      const head = encodeFrame({ k: 'msg', m: goodbye(code, reason) })
      this.ws.send(Buffer.concat([head, this.frameAuth.seal([head])]), { binary: true }, written)
    } catch {
      // the socket may already be gone; closing is what matters
      written?.()
    }
  }

  /** Cuts the connection at once, without a close handshake. */
  terminate(): void {
    this.ws.terminate()
  }

  private async sendEnvelope(envelope: Envelope, attachment?: Uint8Array, onWritten?: () => void): Promise<void> {
    if (!this.isOpen) throw new HvlabError('HVLAB_E_CLOSED', `connection to ${this.remoteName} is closed`)
    const frame = encodeFrameParts(envelope, attachment)
    const frame_bytes = frame.head.length + frame.attachment.length + FRAME_TAG_BYTES
    // Frames waiting for the socket to drain are held in memory too: they count.
    const held_bytes = this.queued_bytes + this.waiting_bytes
    if (held_bytes + frame_bytes > this.limits.send_queue_bytes_max) {
      throw new HvlabError(
        'HVLAB_E_BACKPRESSURE',
        `send queue to ${this.remoteName} is full (${held_bytes} bytes waiting); the peer is slow or stalled`,
      )
    }
    if (this.queued_bytes > this.limits.send_high_water_bytes) {
      this.waiting_bytes += frame_bytes
      const waited = stageTimes.start()
      try {
        while (this.queued_bytes > this.limits.send_high_water_bytes && this.isOpen) {
          await new Promise<void>((resolve) => this.drainWaiters.push(resolve))
        }
      } finally {
        this.waiting_bytes -= frame_bytes
        stageTimes.end('socket_wait', waited)
      }
    }
    if (!this.isOpen) throw new HvlabError('HVLAB_E_CLOSED', `connection to ${this.remoteName} closed while sending`)
    this.queued_bytes += frame_bytes
    this.metrics?.framesSent.inc({ kind: envelope.k })
    this.metrics?.bytesSent.inc(frame_bytes)
    const written = (err?: Error): void => {
      this.queued_bytes -= frame_bytes
      if (this.queued_bytes <= this.limits.send_high_water_bytes) this.wakeSenders()
      if (!err) onWritten?.()
    }
    // Sealed here, right before the frame is queued: tags are counted in the order frames go out
    // (the shaper keeps that order).
    const sealing = stageTimes.start()
    const tag = this.frameAuth.seal([frame.head, frame.attachment])
    stageTimes.end('seal', sealing)
    this.awaitPeer()
    this.shaper.push(frame_bytes, () => this.writeFrame(frame.head, frame.attachment, tag, written))
  }

  private writeFrame(head: Uint8Array, attachment: Uint8Array, tag: Uint8Array, written: (err?: Error) => void): void {
    if (this.closed || this.closing) return // a frame the shaper held past the close goes nowhere
    const writing = stageTimes.start()
    if (attachment.length === 0) {
      this.ws.send(Buffer.concat([head, tag]), { binary: true }, written)
    } else {
      // Three fragments of one message, queued back to back: the attachment is not copied.
      this.ws.send(head, { binary: true, fin: false })
      this.ws.send(attachment, { binary: true, fin: false })
      this.ws.send(tag, { binary: true, fin: true }, written)
    }
    stageTimes.end('socket_write', writing)
  }

  private wakeSenders(): void {
    const waiters = this.drainWaiters
    this.drainWaiters = []
    for (const w of waiters) w()
  }

  private onFrame(fragments: Fragments, isBinary: boolean): void {
    // ws keeps delivering frames until the peer answers our close; after a refusal
    // (a malformed frame, say) none of them may act.
    if (this.closed || this.closing) return
    if (this.deaf) {
      this.missed_frames = true
      return
    }
    if (!isBinary) {
      this.refuse('HVLAB_E_PROTOCOL', 'text frames are not part of the protocol')
      return
    }
    const opening = stageTimes.start()
    const parts = this.frameAuth.open(fragments)
    stageTimes.end('open', opening)
    if (!parts) {
      this.refuse(
        'HVLAB_E_AUTH',
        `a frame of ${fragments.reduce((n, f) => n + f.length, 0)} bytes from ${this.remoteName} failed authentication (altered, injected, replayed, reordered or after a dropped one); nothing in it was read`,
      )
      return
    }
    this.heard()
    if (!this.held) {
      this.deliver(parts, fragments)
      return
    }
    if (this.held.length >= HELD_FRAMES_MAX) {
      this.refuse('HVLAB_E_BACKPRESSURE', `${HELD_FRAMES_MAX} frames arrived before this connection was started`)
      return
    }
    this.held.push({ parts, fragments })
  }

  /** One authenticated frame, its tag taken off (`parts`, views into `fragments`): decoded, checked, then handed to its handler. */
  private deliver(parts: Buffer[], fragments: Fragments): void {
    const delivering = stageTimes.start()
    this.deliverFrame(parts, fragments)
    stageTimes.end('deliver', delivering)
  }

  private deliverFrame(parts: Buffer[], fragments: Fragments): void {
    let envelope: Envelope
    let attachment: Buffer
    try {
      ;({ envelope, attachment } = decodeFrameParts(parts))
    } catch (e) {
      this.refuse('HVLAB_E_PROTOCOL', describeError(e))
      return
    }
    this.metrics?.framesReceived.inc({ kind: envelope.k })
    this.metrics?.bytesReceived.inc(parts.reduce((n, p) => n + p.length, 0))
    const attachment_owned = ownsAttachment(attachment, fragments)
    switch (envelope.k) {
      case 'msg':
        this.dispatchMessage({ message: envelope.m, attachment, attachment_owned })
        return
      case 'req':
        if (this.inboundInFlight >= this.limits.inbound_requests_in_flight_max) {
          void this.answerBusy(envelope.id, envelope.m.t)
          return
        }
        void this.dispatchRequest(envelope.id, { message: envelope.m, attachment, attachment_owned })
        return
      case 'res':
      case 'err': {
        const p = this.pending.get(envelope.id)
        if (!p) {
          this.log.debug({ id: envelope.id }, 'reply to a request that already timed out')
          return
        }
        p.cancelTimeout()
        this.pending.delete(envelope.id)
        if (envelope.k === 'res') p.resolve({ message: envelope.m, attachment, attachment_owned })
        else p.reject(new HvlabError(asErrorCode(envelope.code), envelope.message, { origin: this.remoteName }))
        return
      }
    }
  }

  private dispatchMessage(incoming: Incoming): void {
    const t = incoming.message.t
    if (t === 'goodbye') {
      this.log.info({ code: incoming.message.code, reason: incoming.message.reason }, 'peer said goodbye')
      return
    }
    const handler = this.handlers.get(t)
    if (!handler) {
      this.refuse('HVLAB_E_PROTOCOL', `unexpected message ${t} from ${this.remoteName}`)
      return
    }
    const failed = (e: unknown): void => this.log.error({ err: describeError(e), t }, 'message handler failed')
    try {
      const result: unknown = handler(incoming, this)
      if (result instanceof Promise) result.catch(failed)
    } catch (e) {
      failed(e)
    }
  }

  /** A request beyond inbound_requests_in_flight_max: answered at once, its handler not run. */
  private async answerBusy(id: number, t: string): Promise<void> {
    const message = `${this.limits.inbound_requests_in_flight_max} requests from ${this.remoteName} are being handled already; ${t} was not run; retry once some have been answered`
    try {
      await this.sendEnvelope({ k: 'err', id, code: 'HVLAB_E_BACKPRESSURE', message })
    } catch (e) {
      this.log.debug({ err: describeError(e) }, 'could not send a backpressure reply')
    }
  }

  private async dispatchRequest(id: number, incoming: Incoming): Promise<void> {
    this.inboundInFlight++
    try {
      await this.runRequest(id, incoming)
    } finally {
      this.inboundInFlight--
    }
  }

  private async runRequest(id: number, incoming: Incoming): Promise<void> {
    const handler = this.requestHandlers.get(incoming.message.t)
    let envelope: Envelope
    let attachment: Uint8Array | undefined
    if (!handler) {
      envelope = { k: 'err', id, code: 'HVLAB_E_UNSUPPORTED', message: `${incoming.message.t} is not a request this peer answers` }
    } else {
      try {
        const reply = await handler(incoming, this)
        envelope = { k: 'res', id, m: reply.message }
        attachment = reply.attachment
      } catch (e) {
        // The finest code goes on the wire (the requester splits it again: errors.ts); a
        // relayed error keeps its origin in the text, as the requester names only us.
        const code = e instanceof HvlabError ? e.wireCode : 'HVLAB_E_INTERNAL'
        if (code === 'HVLAB_E_INTERNAL') this.log.error({ err: describeError(e), t: incoming.message.t }, 'request handler failed')
        envelope = { k: 'err', id, code, message: describeError(e).slice(0, 4000) }
      }
    }
    try {
      try {
        await this.sendEnvelope(envelope, attachment)
      } catch (e) {
        if (!(e instanceof HvlabError && e.code === 'HVLAB_E_PROTOCOL')) throw e
        // The handler's reply is not a valid frame: tell the requester instead of letting it time out.
        this.log.error({ err: describeError(e), t: incoming.message.t }, 'request handler returned an invalid reply')
        await this.sendEnvelope({
          k: 'err',
          id,
          code: 'HVLAB_E_INTERNAL',
          message: `invalid reply to ${incoming.message.t}: ${describeError(e)}`.slice(0, 4000),
        })
      }
    } catch (e) {
      this.log.debug({ err: describeError(e) }, 'could not send a reply')
    }
  }

  private refuse(code: string, reason: string): void {
    logRefusal(this.log, { code, reason }, 'closing connection')
    this.metrics?.connectionsRefused.inc({ reason: code })
    // A frame that failed authentication may come from someone in the path: cut, do not wait for a close handshake.
    if (code === 'HVLAB_E_AUTH') this.cut(code, reason)
    else this.close(code, reason)
  }

  /** The peer proved it is alive: nothing is owed by it any more. */
  private heard(): void {
    this.last_heard_ms = this.clock.now()
    this.waiting_since_ms = undefined
  }

  /** Something went to the peer: from now on (if not already) its silence counts. */
  private awaitPeer(): void {
    this.waiting_since_ms ??= this.clock.now()
  }

  /**
   * The liveness check, every ping_interval_ms (the ProbeTicker calls it): cut a peer waited
   * on too long, ping one waited on for a while, and ping an idle link now and then.
   */
  probe(): void {
    if (this.closed) return
    const now_ms = this.clock.now()
    const stalled_ms = now_ms - this.last_probe_ms - this.limits.ping_interval_ms
    this.last_probe_ms = now_ms
    if (stalled_ms > this.limits.ping_interval_ms) {
      // This process did not run for a while (a long GC, a loaded machine, SIGSTOP): the
      // peer's frames and pongs may be waiting unread. Judge the peer on what it had time to send.
      this.last_heard_ms = Math.max(this.last_heard_ms, now_ms - this.limits.ping_interval_ms)
      if (this.waiting_since_ms !== undefined)
        this.waiting_since_ms = Math.max(this.waiting_since_ms, now_ms - this.limits.ping_interval_ms)
    }
    const waited_ms = this.waiting_since_ms === undefined ? undefined : now_ms - this.waiting_since_ms
    if (waited_ms !== undefined && waited_ms > this.limits.dead_after_ms) {
      this.log.warn(
        { waited_ms, silent_ms: now_ms - this.last_heard_ms },
        'peer sent neither a frame nor a pong in time; cutting the connection',
      )
      this.ws.terminate()
      return
    }
    const pingDue =
      waited_ms === undefined ? now_ms - this.last_heard_ms >= this.limits.idle_ping_ms : waited_ms >= this.limits.ping_after_silent_ms
    if (!pingDue) return
    this.awaitPeer()
    try {
      this.ws.ping()
    } catch {
      // closing; the close handler cleans up
    }
  }

  private onClosed(code: number, reason: string): void {
    if (this.closed) return
    this.closed = true
    this.probes.remove(this)
    this.shaper.clear()
    for (const [id, p] of this.pending) {
      p.cancelTimeout()
      p.reject(new HvlabError('HVLAB_E_CLOSED', `connection to ${this.remoteName} closed before it answered (request ${id})`))
    }
    this.pending.clear()
    this.wakeSenders()
    this.emit('close', code, reason)
  }
}
