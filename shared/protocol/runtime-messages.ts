/**
 * Messages of the lab runtime itself: the authentication handshake every connection
 * starts with, the registration of a process with the lab controller, the peer
 * directory, peer reports and timeline events.
 */
import { z } from 'zod'
import { EVENT_DETAIL_CHARS_MAX, EVENT_DETAIL_FIELDS_MAX, EVENT_DETAIL_LIST_MAX, EVENT_KIND_PATTERN } from '../timeline/details.js'
import { CLOCK_DRIFT_MAX, CLOCK_OFFSET_MS_MAX, LINK_LATENCY_MS_MAX, LINK_LOSS_MAX, LINK_MBIT_MAX } from '../fault-limits.js'
import { defineMessage, field } from './define.js'

export const ROLES = ['host', 'witness', 'array', 'standalone'] as const
export const roleSchema = z.enum(ROLES)
export type Role = z.infer<typeof roleSchema>
/** Who may be on the other end of a connection: a lab process, the controller, or the CLI. */
export const PARTY_ROLES = [...ROLES, 'controller', 'cli'] as const
export const partyRoleSchema = z.enum(PARTY_ROLES)
export type PartyRole = z.infer<typeof partyRoleSchema>

/** Server → client, first frame on every connection. */
export const challenge = defineMessage('challenge', () => ({
  protocolVersion: field.u32(),
  name: field.name(),
  role: partyRoleSchema,
  nonce: z.string().regex(/^[0-9a-f]{32}$/),
}))

/** Client → server: who I am, and proof that I hold the lab's secret. */
export const hello = defineMessage('hello', () => ({
  protocolVersion: field.u32(),
  name: field.name(),
  role: partyRoleSchema,
  nonce: z.string().regex(/^[0-9a-f]{32}$/),
  proof: field.sha256Hex(),
}))

/** Server → client: accepted, and the server's own proof (mutual authentication). */
export const welcome = defineMessage('welcome', () => ({
  name: field.name(),
  proof: field.sha256Hex(),
}))

/** Either side, then close: why the connection is being refused or closed. */
export const goodbye = defineMessage('goodbye', () => ({
  code: field.text(64),
  reason: field.text(1024),
}))

export const endpointSchema = z.strictObject({
  host: z.string().max(255),
  port: z.number().int().min(1).max(65535),
})

/** A process → the controller, once connected: where it listens. */
export const register = defineMessage('register', () => ({
  name: field.name(),
  role: roleSchema,
  site: field.name(),
  pid: field.u32(),
  peerEndpoint: endpointSchema,
  httpEndpoint: endpointSchema,
}))

/**
 * Controller → process (reply to register): the last of this process's numbered notices
 * (events and VM locations, `n`) the controller has taken from it (this pid). The process
 * sends again every one it still holds after that: a notice written to a connection that
 * died under it (the controller closed it while the process was paused) is not lost.
 */
export const registered = defineMessage('registered', () => ({ notices_through: field.uint() }))

export const directoryEntrySchema = z.strictObject({
  name: field.name(),
  role: roleSchema,
  site: field.name(),
  peerEndpoint: endpointSchema,
})

/** Controller → process: the current addresses of the processes it should talk to. */
export const directory = defineMessage('directory', () => ({
  entries: field.list(directoryEntrySchema, 1024),
}))

/** Controller → process: peers it must not reach (a partition injected by the lab). */
export const partitionSet = defineMessage('partition-set', () => ({
  blocked: field.list(field.name(), 1024),
}))

/** One link's faults as one process applies them (shared/transport/peer-mesh.ts LinkFault). */
export const linkFaultSchema = z.strictObject({
  peer: field.name(),
  latency_ms: z.number().finite().min(0).max(LINK_LATENCY_MS_MAX),
  jitter_ms: z.number().finite().min(0).max(LINK_LATENCY_MS_MAX),
  mbit: z.number().finite().min(0).max(LINK_MBIT_MAX),
  loss: z.number().finite().min(0).max(LINK_LOSS_MAX),
  deaf: z.boolean(),
  no_new_connections: z.boolean(),
})

/** Controller → process: the faults on its links (every peer not named has a clear link). */
export const linkSet = defineMessage('link-set', () => ({
  links: field.list(linkFaultSchema, 1024),
}))

/** Controller → process: cut its connections to these peers now (a connection reset); they are dialled again at once. */
export const linkReset = defineMessage('link-reset', () => ({
  peers: field.list(field.name(), 1024),
}))

/** Controller → process: its clock from now on reads `offset_ms` ahead of the real one and gains `drift` per ms (shared/skewed-clock.ts). */
export const clockSet = defineMessage('clock-set', () => ({
  offset_ms: z.number().finite().min(-CLOCK_OFFSET_MS_MAX).max(CLOCK_OFFSET_MS_MAX),
  drift: z.number().finite().min(-CLOCK_DRIFT_MAX).max(CLOCK_DRIFT_MAX),
}))

/** A process → the controller: the peers it is connected to right now. */
export const peersReport = defineMessage('peers-report', () => ({
  connected: field.list(field.name(), 1024),
}))

/** An event detail: a flat, bounded JSON value (a string, number, flag, or a short list). */
const detailScalar = z.union([z.string().max(EVENT_DETAIL_CHARS_MAX), z.number().finite(), z.boolean(), z.null()])
export const detailValue = z.union([detailScalar, z.array(detailScalar).max(EVENT_DETAIL_LIST_MAX)])
export type EventDetails = Record<string, z.infer<typeof detailValue>>

/**
 * A process → the controller: something for the lab-wide timeline. The frame is checked
 * for the bounds every event keeps; the controller then checks `kind` and `details`
 * against the kind's declared schema (shared/timeline/events.ts, `checkEventDetails`) and
 * refuses, without cutting the link, an event that does not fit it.
 */
export const timelineEvent = defineMessage('event', () => ({
  /** The process's notice number (rises by one per notice); absent: never sent again. */
  n: field.uint().optional(),
  at_ms: field.time_ms(),
  kind: z.string().regex(EVENT_KIND_PATTERN),
  source: field.name(),
  details: z
    .record(z.string().max(64), detailValue)
    .refine((d) => Object.keys(d).length <= EVENT_DETAIL_FIELDS_MAX, `at most ${EVENT_DETAIL_FIELDS_MAX} detail fields`),
}))

/** Liveness probe between peers, answered with the same nonce. */
export const ping = defineMessage('ping', () => ({ seq: field.u32(), sent_ms: field.time_ms() }))
export const pong = defineMessage('pong', () => ({ seq: field.u32(), sent_ms: field.time_ms() }))

/** A generic success reply carrying nothing. */
export const ok = defineMessage('ok', () => ({}))

/** Test-only: an opaque blob with a byte attachment, used to exercise bulk frames. */
export const blob = defineMessage('blob', () => ({ label: field.text(64) }), { attachment: 'required' })

export const runtimeMessages = [
  challenge,
  hello,
  welcome,
  goodbye,
  register,
  registered,
  directory,
  partitionSet,
  linkSet,
  linkReset,
  clockSet,
  peersReport,
  timelineEvent,
  ping,
  pong,
  ok,
  blob,
] as const
