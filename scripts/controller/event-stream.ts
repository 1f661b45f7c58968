/**
 * GET /v1/events: the timeline as NDJSON to one HTTP client. The backlog is read from the
 * timeline as the client takes it (waiting for 'drain', so at most the socket's high-water
 * mark is buffered); a follower (`follow=1`) then gets each new event. At most
 * `followers_max` follow at once; more are refused 503 HVLAB_E_BACKPRESSURE. A follower
 * whose unsent bytes pass `follower_queue_bytes_max` is cut off: its response ends with
 * one line `{"error":{"code":"HVLAB_E_BACKPRESSURE","message":…}}` saying why.
 */
import type { ServerResponse } from 'node:http'
import type { Limits } from '../../shared/topology.js'
import type { TimelineEvent } from '../../shared/timeline/events.js'
import type { Timeline } from './timeline.js'

export interface EventStreamLimits {
  /** Followers at once. */
  followers_max: number
  /** A follower is cut off once this many bytes of events wait to be sent to it. */
  follower_queue_bytes_max: number
}

export const eventStreamLimits = (limits: Limits): EventStreamLimits => ({
  followers_max: limits.event_followers_max,
  follower_queue_bytes_max: limits.event_follower_queue_bytes_max,
})

export interface EventsQuery {
  /** Events with seq > after. */
  after: number
  /** At most this many of the backlog (the newest). */
  limit: number
  follow: boolean
}

/** How long a follower that was cut off has to read its last line before its connection is closed. */
const CUT_GRACE_MS = 5_000

export class EventStreams {
  private followers = 0

  constructor(
    private readonly timeline: Timeline,
    private readonly limits: EventStreamLimits,
  ) {}

  /** Followers now connected. */
  get followerCount(): number {
    return this.followers
  }

  serve(res: ServerResponse, q: EventsQuery): void {
    if (q.follow && this.followers >= this.limits.followers_max) return refuse(res, this.limits.followers_max)
    res.writeHead(200, { 'content-type': 'application/x-ndjson' })
    // A follower with nothing to read yet must still get the headers, or its fetch waits for the next event.
    res.flushHeaders()
    if (q.follow) {
      this.followers += 1
      res.once('close', () => (this.followers -= 1))
    }
    const backlog = this.timeline.since(q.after, q.limit)
    const first = backlog[0]?.seq ?? q.after + 1
    const last = backlog.at(-1)?.seq ?? q.after
    new EventFeed(
      res,
      this.timeline,
      { after: first - 1, through: last },
      q.follow ? this.limits.follower_queue_bytes_max : undefined,
    ).start()
  }
}

function refuse(res: ServerResponse, followers_max: number): void {
  const message = `the lab already has ${followers_max} event followers (event_followers_max); stop one, or read the timeline without --follow`
  res.writeHead(503, { 'content-type': 'application/json', 'retry-after': '1' })
  res.end(JSON.stringify({ error: { code: 'HVLAB_E_BACKPRESSURE', message } }))
}

/** One response: the backlog (seq in (after, through]) read from the timeline, then, when following, each new event. */
class EventFeed {
  private cursor: number
  private readonly live: { seq: number; line: string; bytes: number }[] = []
  private live_bytes = 0
  private lastSentSeq: number
  private waitingForDrain = false
  private done = false
  private unfollow: (() => void) | undefined

  constructor(
    private readonly res: ServerResponse,
    private readonly timeline: Timeline,
    private readonly backlog: { after: number; through: number },
    /** Set when following. */
    private readonly queue_bytes_max: number | undefined,
  ) {
    this.cursor = backlog.after
    this.lastSentSeq = backlog.after
  }

  start(): void {
    this.res.once('close', () => this.stop())
    if (this.queue_bytes_max !== undefined) this.unfollow = this.timeline.follow((e, line) => this.onEvent(e, line))
    this.pump()
  }

  private onEvent(e: TimelineEvent, line: string): void {
    // Through the backlog's end is the backlog's (or before `after`, when it asked past the newest event).
    if (this.done || e.seq <= this.backlog.through) return
    const bytes = Buffer.byteLength(line)
    this.live.push({ seq: e.seq, line, bytes })
    this.live_bytes += bytes
    if (this.live_bytes + this.res.writableLength > this.queue_bytes_max!) this.cutOff()
    else this.pump()
  }

  /** Writes until the socket wants a pause, the events run out, or the response is over. */
  private pump(): void {
    while (!this.waitingForDrain && !this.done) {
      const next = this.next()
      if (!next) {
        if (this.queue_bytes_max === undefined) this.finish()
        return
      }
      this.lastSentSeq = next.seq
      if (!this.res.write(next.line)) {
        this.waitingForDrain = true
        this.res.once('drain', () => {
          this.waitingForDrain = false
          this.pump()
        })
      }
    }
  }

  private next(): { seq: number; line: string } | undefined {
    if (this.cursor < this.backlog.through) {
      const e = this.timeline.next(this.cursor)
      if (e && e.seq <= this.backlog.through) {
        this.cursor = e.seq
        return { seq: e.seq, line: JSON.stringify(e) + '\n' }
      }
      this.cursor = this.backlog.through
    }
    const live = this.live.shift()
    if (live) this.live_bytes -= live.bytes
    return live
  }

  private finish(): void {
    this.stop()
    this.res.end()
  }

  private cutOff(): void {
    const behind_bytes = this.live_bytes + this.res.writableLength
    this.stop()
    const message = `cut off: this follower fell ${behind_bytes} bytes of events behind (the lab's event_follower_queue_bytes_max is ${this.queue_bytes_max}); read faster, or resume with --after ${this.lastSentSeq}`
    this.res.end(JSON.stringify({ error: { code: 'HVLAB_E_BACKPRESSURE', message } }) + '\n')
    // A client that reads nothing would hold the connection and its buffer for ever.
    const timer = setTimeout(() => this.res.destroy(), CUT_GRACE_MS)
    timer.unref()
    this.res.once('close', () => clearTimeout(timer))
  }

  private stop(): void {
    if (this.done) return
    this.done = true
    this.unfollow?.()
    this.live.length = 0
    this.live_bytes = 0
  }
}
