/**
 * The controller's HTTP control endpoint, which the `hvlab` CLI talks to. Every request
 * must carry the lab's token (`Authorization: Bearer …`, derived from the secret:
 * http-bearer.ts), checked before anything else is read; the request target is read
 * without throwing (400 when it is not a path); bodies are JSON, bounded and validated;
 * errors come back as `{ error: { code, message, origin?, detail? } }` with a fitting status
 * (`origin`: the process whose refusal it relays; `detail`: a finer code, errors.ts). Bounded like
 * every HTTP listener (http-listen.ts) by the topology's limits.
 */
import type { IncomingMessage, Server, ServerResponse } from 'node:http'
import { z } from 'zod'
import { HvlabError, describeError, type HvlabErrorCode } from '../../shared/errors.js'
import type { Logger } from '../../shared/log.js'
import type { LabController } from './lab-controller.js'
import { SIGNALS } from './signals.js'
import { bearerMatches, httpAuthorization } from '../../shared/http-bearer.js'
import { createHttpServer, listenHttp, type Listening } from '../../shared/http-listen.js'
import { decodePathSegment, parseRequestTarget } from '../../shared/request-target.js'
import { EventStreams, eventStreamLimits } from './event-stream.js'
import { PARTITION_SHAPES } from './partition-shapes.js'
import { attachSwitchPort } from './switch-port.js'

const BODY_BYTES_MAX = 64 * 1024
/** How much of an oversize body is still read (and dropped) so its sender gets the 400. */
const DRAIN_BYTES_MAX = 1024 * 1024

const HTTP_STATUS: Partial<Record<HvlabErrorCode, number>> = {
  HVLAB_E_USAGE: 400,
  HVLAB_E_AUTH: 401,
  HVLAB_E_NOT_FOUND: 404,
  HVLAB_E_STATE: 409,
  HVLAB_E_REFUSED: 409,
  HVLAB_E_TIMEOUT: 504,
  HVLAB_E_BACKPRESSURE: 503,
}

const killBody = z.strictObject({ signal: z.enum(SIGNALS).default('KILL') })
const side = z.array(z.string().max(64)).min(1).max(64)
const partitionBody = z.strictObject({ a: side, b: side, one_way: z.boolean().default(false) })
const resetBody = z.strictObject({ a: side, b: side })
const shapeBody = z.strictObject({
  shape: z.enum(PARTITION_SHAPES),
  isolate: z.string().max(64).optional(),
  seed: z.number().int().min(0).max(0xffff_ffff).optional(),
})
// Ranges are checked by the link table, which says which option is out of range.
const linkBody = z.strictObject({
  a: side,
  b: side,
  one_way: z.boolean().default(false),
  latency_ms: z.number().default(0),
  jitter_ms: z.number().default(0),
  mbit: z.number().default(0),
  loss: z.number().default(0),
})
// Ranges are checked by the controller (clock-skews.ts), which says which option is out of range.
const clockBody = z.strictObject({ offset_ms: z.number().default(0), drift: z.number().default(0) })
const emptyBody = z.strictObject({})
const relayBody = z.strictObject({ message: z.unknown(), timeout_ms: z.number().int().min(1).max(600_000).optional() })

export type ControlApi = Listening

/** What the routes act on: the lab, the token check, the timeline's streams, and what `down` ends. */
interface ControlContext {
  readonly controller: LabController
  authorized(req: IncomingMessage): boolean
  readonly eventStreams: EventStreams
  onDown(): void
}

export async function startControlApi(controller: LabController, options: { log: Logger; onDown: () => void }): Promise<ControlApi> {
  const expected = httpAuthorization(controller.secret)
  const ctx: ControlContext = {
    controller,
    authorized: (req) => bearerMatches(req.headers.authorization, expected),
    // The timeline to clients (event-stream.ts): backpressure, a cap on followers, slow ones cut off.
    eventStreams: new EventStreams(controller.timeline, eventStreamLimits(controller.topology.limits)),
    onDown: options.onDown,
  }
  const server: Server = createHttpServer(controller.topology.limits, (req, res) => {
    handle(ctx, req, res).catch((e: unknown) => sendError(res, e, options.log))
  })
  // Clients of the lab's virtual switch (`hvlab vm ping`): a WebSocket upgrade at /v1/switch.
  const switchPort = attachSwitchPort(server, controller.vswitch, { authorized: ctx.authorized, log: options.log })
  const listening = await listenHttp(server, { log: options.log })
  return {
    port: listening.port,
    close: () => {
      switchPort.close()
      return listening.close()
    },
  }
}

/** The token first, then the target (400), then the route (404). */
async function handle(ctx: ControlContext, req: IncomingMessage, res: ServerResponse): Promise<void> {
  if (!ctx.authorized(req)) {
    throw new HvlabError('HVLAB_E_AUTH', 'missing or wrong lab token; the CLI derives it from the secret in the lab’s data dir (--dir)')
  }
  const target = parseRequestTarget(req.url)
  if (!target.ok) throw new HvlabError('HVLAB_E_USAGE', target.reason)
  const route = `${req.method} ${target.path}`
  if (route === 'GET /v1/status') return sendJson(res, 200, await ctx.controller.currentStatus())
  if (route === 'GET /v1/events') return serveEvents(ctx, target.query, res)
  const m = route.match(/^POST \/v1\/processes\/([^/]{1,64})\/(kill|restart|request|clock)$/)
  if (m) return processRoute(ctx, m[2] as ProcessVerb, m[1]!, req, res)
  return labRoute(ctx, route, req, res)
}

function serveEvents(ctx: ControlContext, query: URLSearchParams, res: ServerResponse): void {
  ctx.eventStreams.serve(res, {
    after: intParam(query, 'after', 0),
    limit: intParam(query, 'limit', 10_000),
    follow: query.get('follow') === '1',
  })
}

type ProcessVerb = 'kill' | 'restart' | 'request' | 'clock'

/** POST /v1/processes/NAME/VERB: the body is checked before the name is decoded. */
async function processRoute(ctx: ControlContext, verb: ProcessVerb, segment: string, req: IncomingMessage, res: ServerResponse) {
  const raw = await readBody(req)
  switch (verb) {
    case 'kill': {
      const body = parse(killBody, raw)
      return sendJson(res, 200, ctx.controller.kill(processName(segment), body.signal))
    }
    case 'restart':
      parse(emptyBody, raw)
      await ctx.controller.restart(processName(segment))
      return sendJson(res, 200, { ok: true })
    case 'request': {
      const body = parse(relayBody, raw)
      return sendJson(res, 200, await ctx.controller.relay(processName(segment), body.message, body.timeout_ms))
    }
    case 'clock': {
      const body = parse(clockBody, raw)
      return sendJson(res, 200, ctx.controller.setClock(processName(segment), body))
    }
  }
}

/** The lab-wide routes: partition, links, heal, down. */
async function labRoute(ctx: ControlContext, route: string, req: IncomingMessage, res: ServerResponse): Promise<void> {
  if (route === 'POST /v1/partition') {
    const body = parse(partitionBody, await readBody(req))
    return sendJson(res, 200, ctx.controller.partition(body.a, body.b, body.one_way))
  }
  const site = route.match(/^POST \/v1\/sites\/([^/]{1,64})\/kill$/)
  if (site) {
    const body = parse(killBody, await readBody(req))
    return sendJson(res, 200, { processes: ctx.controller.killSite(processName(site[1]!), body.signal) })
  }
  if (route === 'POST /v1/partition-shape') {
    const { shape, ...options } = parse(shapeBody, await readBody(req))
    return sendJson(res, 200, ctx.controller.partitionShaped(shape, options))
  }
  if (route === 'POST /v1/links') {
    const { a, b, one_way, ...shaping } = parse(linkBody, await readBody(req))
    return sendJson(res, 200, { links: ctx.controller.setLinks(a, b, shaping, one_way) })
  }
  if (route === 'POST /v1/link-reset') {
    const body = parse(resetBody, await readBody(req))
    return sendJson(res, 200, ctx.controller.resetLinks(body.a, body.b))
  }
  if (route === 'GET /v1/links') return sendJson(res, 200, { links: ctx.controller.linkRows() })
  if (route === 'POST /v1/heal') {
    parse(emptyBody, await readBody(req))
    ctx.controller.heal()
    return sendJson(res, 200, { ok: true })
  }
  if (route === 'POST /v1/down') {
    parse(emptyBody, await readBody(req))
    await ctx.controller.down()
    sendJson(res, 200, { ok: true })
    ctx.onDown()
    return
  }
  throw new HvlabError('HVLAB_E_NOT_FOUND', `no control route ${route}; is the CLI the same version as the running lab?`)
}

function sendError(res: ServerResponse, e: unknown, log: Logger): void {
  const code: HvlabErrorCode = e instanceof HvlabError ? e.code : 'HVLAB_E_INTERNAL'
  if (code === 'HVLAB_E_INTERNAL') log.error({ err: describeError(e) }, 'control request failed')
  if (res.headersSent) {
    res.end()
    return
  }
  const status = HTTP_STATUS[code] ?? 500
  // A malformed or unauthorized request gets no keep-alive connection to send more on.
  if (status === 400 || status === 401) res.setHeader('connection', 'close')
  // A process's own refusal, relayed: its name travels as `origin` (the CLI shows `origin: message`),
  // and a finer code as `detail`; `code` stays the family the status was chosen by.
  const origin = e instanceof HvlabError ? e.origin : undefined
  const detail = e instanceof HvlabError ? e.detail : undefined
  const message = origin === undefined ? describeError(e) : (e as HvlabError).message
  sendJson(res, status, {
    error: { code, message, ...(origin === undefined ? {} : { origin }), ...(detail === undefined ? {} : { detail }) },
  })
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' })
  res.end(JSON.stringify(body))
}

/** The process name in a route, %-decoded; a malformed escape is the client's mistake (400). */
/** A process or site name from a path segment. */
function processName(segment: string): string {
  const name = decodePathSegment(segment)
  if (name === undefined)
    throw new HvlabError('HVLAB_E_USAGE', `name ${JSON.stringify(segment)} has a malformed %-escape; encode it with encodeURIComponent`)
  return name
}

function intParam(query: URLSearchParams, name: string, fallback: number): number {
  const v = query.get(name)
  if (v === null) return fallback
  const n = Number(v)
  if (!Number.isInteger(n) || n < 0)
    throw new HvlabError('HVLAB_E_USAGE', `query parameter ${name} must be a non-negative integer, got ${JSON.stringify(v.slice(0, 32))}`)
  return n
}

async function readBody(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of req) {
    size += (chunk as Buffer).length
    // Leaving the loop destroys the socket under the client, which then sees a reset instead
    // of our 400; so an oversize body is read and dropped, up to DRAIN_BYTES_MAX.
    if (size > DRAIN_BYTES_MAX) break
    if (size <= BODY_BYTES_MAX) chunks.push(chunk as Buffer)
  }
  if (size > BODY_BYTES_MAX) throw new HvlabError('HVLAB_E_USAGE', `request body is over ${BODY_BYTES_MAX} bytes`)
  if (size === 0) return {}
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'))
  } catch (e) {
    throw new HvlabError('HVLAB_E_USAGE', `request body is not JSON: ${describeError(e)}`)
  }
}

function parse<T extends z.ZodType>(schema: T, raw: unknown): z.infer<T> {
  const r = schema.safeParse(raw)
  if (!r.success) {
    const issue = r.error.issues[0]
    throw new HvlabError('HVLAB_E_USAGE', `bad request: ${issue?.path.join('.') || '(body)'}: ${issue?.message ?? 'invalid'}`)
  }
  return r.data
}
