/**
 * The wire codec: valid frames round-trip; every malformed frame (wrong types, missing
 * and extra fields, huge lengths, truncated msgpack, random and mutated bytes) is
 * refused with HvlabError('HVLAB_E_PROTOCOL'), never a crash or another exception.
 *
 * The fuzz sections are seeded: HVLAB_SEED=<n> reruns one seed; a failure prints it
 * (the first seed of HVLAB_SEED=<n>:<count>).
 */
import t from 'tap'
import { Packr } from 'msgpackr'
import { HvlabError } from '../../shared/errors.js'
import { seeds } from '../sim/seed.js'
import {
  ATTACHMENT_BYTES_MAX,
  ENVELOPE_BYTES_MAX,
  FRAME_HEADER_BYTES,
  FRAME_MAGIC,
  decodeFrame,
  decodeFrameParts,
  encodeFrame,
  encodeFrameParts,
  type Envelope,
} from '../../shared/protocol/codec.js'
import { messageDef, validateMessage, type Message } from '../../shared/protocol/messages.js'
import { mulberry32 } from '../../shared/seeded-random.js'

const NONCE = '0123456789abcdef0123456789abcdef'
const PROOF = 'ab'.repeat(32)

/** One valid sample of each message type that needs no attachment. */
const SAMPLES: Message[] = [
  { t: 'challenge', protocolVersion: 1, name: 'host-a1', role: 'host', nonce: NONCE },
  { t: 'hello', protocolVersion: 1, name: 'cli', role: 'cli', nonce: NONCE, proof: PROOF },
  { t: 'welcome', name: 'witness', proof: PROOF },
  { t: 'goodbye', code: 'HVLAB_E_AUTH', reason: 'wrong secret' },
  {
    t: 'register',
    name: 'array-b',
    role: 'array',
    site: 'site-b',
    pid: 4242,
    peerEndpoint: { host: '127.0.0.1', port: 40001 },
    httpEndpoint: { host: '127.0.0.1', port: 40002 },
  },
  { t: 'directory', entries: [{ name: 'host-a1', role: 'host', site: 'site-a', peerEndpoint: { host: '127.0.0.1', port: 1 } }] },
  { t: 'partition-set', blocked: ['host-a1', 'witness'] },
  { t: 'peers-report', connected: [] },
  { t: 'event', at_ms: 12.5, kind: 'quorum.lost', source: 'host-a1', details: { votes: 2, needed: 3, why: 'partition' } },
  { t: 'ping', seq: 7, sent_ms: 1000 },
  { t: 'pong', seq: 0xffff_ffff, sent_ms: 0 },
  { t: 'ok' },
]

const packr = new Packr({ useRecords: false, mapsAsObjects: true })

/** A frame around arbitrary envelope bytes (or an arbitrary value, packed). */
function rawFrame(body: Uint8Array, attachment: Uint8Array = Buffer.alloc(0), declared = body.length): Buffer {
  const f = Buffer.alloc(FRAME_HEADER_BYTES + body.length + attachment.length)
  f[0] = FRAME_MAGIC
  f.writeUInt32BE(declared, 1)
  f.set(body, FRAME_HEADER_BYTES)
  f.set(attachment, FRAME_HEADER_BYTES + body.length)
  return f
}
const frameOf = (value: unknown, attachment?: Uint8Array): Buffer => rawFrame(packr.pack(value), attachment)

/** Passes when decoding either succeeds with a frame that re-encodes, or throws HVLAB_E_PROTOCOL. */
function decodeSafely(data: Uint8Array): { ok: true } | { ok: false; error: unknown } {
  try {
    const { envelope, attachment } = decodeFrame(data)
    encodeFrame(envelope, attachment) // what we accepted must itself be a valid frame
    return { ok: true }
  } catch (e) {
    if (e instanceof HvlabError && e.code === 'HVLAB_E_PROTOCOL') return { ok: true }
    return { ok: false, error: e }
  }
}

/** The subtest object tap hands to a test function. */
type TapTest = Parameters<Parameters<typeof t.test>[0]>[0]

function throwsProtocol(tt: TapTest, data: Uint8Array, what: string): void {
  try {
    decodeFrame(data)
    tt.fail(`${what}: decoded, but should have been refused`)
  } catch (e) {
    tt.ok(
      e instanceof HvlabError && e.code === 'HVLAB_E_PROTOCOL',
      `${what}: refused with HVLAB_E_PROTOCOL (${e instanceof Error ? e.message : String(e)})`,
    )
  }
}

/** HVLAB_SEED=<n> reruns one seed (test/sim/seed.ts); CI runs this one. */
const CODEC_SEEDS = seeds(import.meta.url, { base: 0x5eed_c0de, count: 1 })
const SEED = CODEC_SEEDS.list[0]!

t.test('every sample message round-trips in every envelope kind', async (tt) => {
  for (const m of SAMPLES) {
    tt.ok(messageDef(m.t), `${m.t} is a declared message type`)
    const envelopes: Envelope[] = [
      { k: 'msg', m },
      { k: 'req', id: 1, m },
      { k: 'res', id: 0xffff_ffff, m },
    ]
    for (const e of envelopes) {
      const frame = decodeFrame(encodeFrame(e))
      tt.same(frame.envelope, e, `${e.k} ${m.t}`)
      tt.equal(frame.attachment.length, 0)
    }
  }
  const err: Envelope = { k: 'err', id: 9, code: 'HVLAB_E_STATE', message: 'cannot do that now; wait' }
  tt.same(decodeFrame(encodeFrame(err)).envelope, err, 'err envelope')
})

t.test('attachments arrive byte for byte, up to ATTACHMENT_BYTES_MAX', async (tt) => {
  const rand = mulberry32(SEED)
  for (const size of [1, 4096, 4 * 1024 * 1024, ATTACHMENT_BYTES_MAX]) {
    const bytes = Buffer.alloc(size)
    for (let i = 0; i < size; i += 997) bytes[i] = Math.floor(rand() * 256)
    bytes[size - 1] = 0xaa
    const decoded = decodeFrame(encodeFrame({ k: 'msg', m: { t: 'blob', label: `s${size}` } }, bytes))
    tt.same(decoded.envelope, { k: 'msg', m: { t: 'blob', label: `s${size}` } })
    tt.ok(decoded.attachment.equals(bytes), `${size} bytes intact`)
  }
  // A Uint8Array that is a view into a bigger buffer decodes the same.
  const frame = encodeFrame({ k: 'msg', m: { t: 'ok' } })
  const padded = new Uint8Array(frame.length + 20)
  padded.set(frame, 10)
  tt.same(decodeFrame(padded.subarray(10, 10 + frame.length)).envelope, { k: 'msg', m: { t: 'ok' } }, 'a subarray view decodes')
})

t.test(
  'a frame in parts: the attachment part is kept as it is when the first part is the envelope; any other split is joined',
  async (tt) => {
    const envelope: Envelope = { k: 'msg', m: { t: 'blob', label: 'parts' } }
    const attachment = Buffer.alloc(5000, 3)
    const { head } = encodeFrameParts(envelope, attachment)
    const two = decodeFrameParts([head, attachment])
    tt.same(two.envelope, envelope)
    tt.equal(two.attachment, attachment, 'the second part is the attachment itself, not a copy')
    const whole = Buffer.concat([head, attachment])
    for (const cut of [1, FRAME_HEADER_BYTES, head.length - 1, head.length + 1, whole.length - 1]) {
      const split = decodeFrameParts([whole.subarray(0, cut), whole.subarray(cut)])
      tt.same(split.envelope, envelope, `cut at byte ${cut}: the same envelope`)
      tt.ok(split.attachment.equals(attachment), `cut at byte ${cut}: the same attachment`)
    }
    tt.same(decodeFrameParts([whole]).envelope, envelope, 'one part decodes as decodeFrame does')
    tt.ok(decodeFrameParts([head.subarray(0, 2), head.subarray(2), attachment]).attachment.equals(attachment), 'three parts are joined')
    tt.throws(() => decodeFrameParts([]), { code: 'HVLAB_E_PROTOCOL' }, 'no parts: refused')
    tt.throws(
      () => decodeFrameParts([head, Buffer.alloc(0)]),
      { code: 'HVLAB_E_PROTOCOL' },
      'a blob with an empty attachment part: refused',
    )
    tt.throws(
      () => decodeFrameParts([Buffer.from([0x00, 0, 0, 0, 1, 0xc0]), attachment]),
      { code: 'HVLAB_E_PROTOCOL' },
      'a first part without the magic: refused',
    )
  },
)

t.test('encodeFrame refuses what decodeFrame would refuse', async (tt) => {
  const refusals: [string, () => unknown][] = [
    ['an attachment on a message that takes none', () => encodeFrame({ k: 'msg', m: { t: 'ok' } }, Buffer.alloc(1))],
    ['a blob without its attachment', () => encodeFrame({ k: 'msg', m: { t: 'blob', label: 'x' } })],
    ['an attachment over the limit', () => encodeFrame({ k: 'msg', m: { t: 'blob', label: 'x' } }, Buffer.alloc(ATTACHMENT_BYTES_MAX + 1))],
    ['an invalid message', () => encodeFrame({ k: 'msg', m: { t: 'ping', seq: -1, sent_ms: 0 } })],
    ['an unknown message', () => encodeFrame({ k: 'msg', m: { t: 'nope' } as unknown as Message })],
    [
      'an envelope over ENVELOPE_BYTES_MAX',
      () => encodeFrame({ k: 'err', id: 1, code: 'HVLAB_E_STATE', message: 'x'.repeat(ENVELOPE_BYTES_MAX) }),
    ],
  ]
  for (const [what, fn] of refusals) {
    tt.throws(fn, { name: 'HvlabError', code: 'HVLAB_E_PROTOCOL' }, what)
  }
})

t.test('malformed frames are refused with HVLAB_E_PROTOCOL', async (tt) => {
  const okBody = packr.pack({ k: 'msg', m: { t: 'ok' } })
  // Frame-level damage.
  throwsProtocol(tt, Buffer.alloc(0), 'empty frame')
  throwsProtocol(tt, Buffer.from([FRAME_MAGIC, 0, 0]), 'shorter than the header')
  throwsProtocol(tt, Buffer.from([0x00, ...rawFrame(okBody).subarray(1)]), 'wrong magic byte')
  throwsProtocol(tt, rawFrame(Buffer.alloc(0)), 'zero-length envelope')
  throwsProtocol(tt, rawFrame(okBody, undefined, 0xffff_ffff), 'envelope length 2^32-1')
  throwsProtocol(tt, rawFrame(okBody, undefined, ENVELOPE_BYTES_MAX + 1), 'envelope length over the limit')
  throwsProtocol(tt, rawFrame(okBody, undefined, okBody.length + 1), 'envelope longer than the frame')
  throwsProtocol(tt, rawFrame(okBody.subarray(0, okBody.length - 1)), 'truncated msgpack')
  throwsProtocol(tt, rawFrame(Buffer.from([0xc1])), 'msgpack "never used" byte')
  throwsProtocol(tt, rawFrame(Buffer.concat([okBody, Buffer.from([0x01])])), 'trailing byte inside the envelope')
  throwsProtocol(tt, rawFrame(Buffer.from([0xdb, 0xff, 0xff, 0xff, 0xff, 0x61])), 'str32 claiming 4 GiB')
  throwsProtocol(tt, rawFrame(Buffer.from([0xdd, 0xff, 0xff, 0xff, 0xff, 0x01])), 'array32 claiming 2^32-1 items')
  throwsProtocol(tt, rawFrame(Buffer.from([0xdf, 0xff, 0xff, 0xff, 0xff, 0xa1, 0x6b])), 'map32 claiming 2^32-1 entries')
  throwsProtocol(tt, rawFrame(Buffer.from([0xc6, 0x7f, 0xff, 0xff, 0xff])), 'bin32 claiming 2 GiB')
  throwsProtocol(tt, rawFrame(Buffer.alloc(100_000, 0x91)), 'arrays nested 100000 deep')
  throwsProtocol(tt, frameOf({ k: 'msg', m: { t: 'ok' } }, Buffer.alloc(ATTACHMENT_BYTES_MAX + 1)), 'attachment over the limit')

  // Envelope-level damage.
  const envelopes: [string, unknown][] = [
    ['nil envelope', null],
    ['a number', 42],
    ['a string', 'msg'],
    ['an array', ['msg', { t: 'ok' }]],
    ['no kind', { m: { t: 'ok' } }],
    ['unknown kind', { k: 'push', m: { t: 'ok' } }],
    ['kind is a number', { k: 1, m: { t: 'ok' } }],
    ['kind is a map with a non-function toString', { k: { toString: 1 }, m: { t: 'ok' } }],
    ['kind is a map with __proto__', { k: JSON.parse('{"__proto__":null}'), m: { t: 'ok' } }],
    ['msg with an extra field', { k: 'msg', m: { t: 'ok' }, x: 1 }],
    ['msg with no message', { k: 'msg', x: 1 }],
    ['req without id', { k: 'req', m: { t: 'ok' }, x: 1 }],
    ['req with negative id', { k: 'req', id: -1, m: { t: 'ok' } }],
    ['req with fractional id', { k: 'req', id: 1.5, m: { t: 'ok' } }],
    ['req with id over u32', { k: 'req', id: 2 ** 32, m: { t: 'ok' } }],
    ['req with string id', { k: 'req', id: '1', m: { t: 'ok' } }],
    ['res with 64-bit id', { k: 'res', id: 2n ** 63n, m: { t: 'ok' } }],
    ['err without message', { k: 'err', id: 1, code: 'HVLAB_E_STATE' }],
    ['err with a long code', { k: 'err', id: 1, code: 'X'.repeat(65), message: 'm' }],
    ['err with a long message', { k: 'err', id: 1, code: 'HVLAB_E_STATE', message: 'm'.repeat(4097) }],
    ['err with numeric code', { k: 'err', id: 1, code: 7, message: 'm' }],
  ]
  for (const [what, value] of envelopes) throwsProtocol(tt, frameOf(value), what)
  throwsProtocol(tt, frameOf({ k: 'err', id: 1, code: 'HVLAB_E_STATE', message: 'm' }, Buffer.alloc(3)), 'err with an attachment')

  // Message-level damage.
  const messages: [string, unknown][] = [
    ['message is nil', null],
    ['message is an array', [{ t: 'ok' }]],
    ['no type', { seq: 1 }],
    ['numeric type', { t: 1 }],
    ['unknown type', { t: 'format-disk' }],
    ['type "__proto__"', { t: '__proto__' }],
    ['type "constructor"', { t: 'constructor' }],
    ['type "toString"', { t: 'toString' }],
    ['extra field', { t: 'ok', extra: true }],
    ['missing field', { t: 'ping', seq: 1 }],
    ['wrong field type', { t: 'ping', seq: '1', sent_ms: 0 }],
    ['negative u32', { t: 'ping', seq: -1, sent_ms: 0 }],
    ['u32 overflow', { t: 'ping', seq: 2 ** 32, sent_ms: 0 }],
    ['fractional u32', { t: 'ping', seq: 0.5, sent_ms: 0 }],
    ['NaN time', { t: 'ping', seq: 1, sent_ms: NaN }],
    ['infinite time', { t: 'ping', seq: 1, sent_ms: Infinity }],
    ['negative time', { t: 'ping', seq: 1, sent_ms: -1 }],
    ['bad name', { t: 'welcome', name: 'Host A', proof: PROOF }],
    ['name too long', { t: 'welcome', name: 'a'.repeat(64), proof: PROOF }],
    ['empty name', { t: 'welcome', name: '', proof: PROOF }],
    ['short proof', { t: 'welcome', name: 'a', proof: 'ab' }],
    ['upper-case proof', { t: 'welcome', name: 'a', proof: 'AB'.repeat(32) }],
    ['bad nonce', { t: 'challenge', protocolVersion: 1, name: 'a', role: 'host', nonce: 'zz' }],
    ['unknown role', { t: 'challenge', protocolVersion: 1, name: 'a', role: 'root', nonce: NONCE }],
    ['long goodbye reason', { t: 'goodbye', code: 'x', reason: 'r'.repeat(1025) }],
    ['port 0', { t: 'directory', entries: [{ name: 'a', role: 'host', site: 's', peerEndpoint: { host: 'h', port: 0 } }] }],
    [
      'extra field in a nested object',
      { t: 'directory', entries: [{ name: 'a', role: 'host', site: 's', peerEndpoint: { host: 'h', port: 1, x: 1 } }] },
    ],
    ['list over its bound', { t: 'partition-set', blocked: Array.from({ length: 1025 }, (_, i) => `h${i}`) }],
    ['list of the wrong type', { t: 'peers-report', connected: 'host-a1' }],
    [
      'too many event details',
      { t: 'event', at_ms: 0, kind: 'a', source: 'a', details: Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`k${i}`, i])) },
    ],
    ['blob without its attachment', { t: 'blob', label: 'x' }],
  ]
  for (const [what, m] of messages) throwsProtocol(tt, frameOf({ k: 'msg', m }), what)
  throwsProtocol(tt, frameOf({ k: 'msg', m: { t: 'ok' } }, Buffer.alloc(1)), 'attachment on a message that takes none')
})

t.test('validateMessage refuses non-maps and unknown types', async (tt) => {
  for (const raw of [undefined, null, 0, 'ok', [], new Date(0), { t: 'nope' }]) {
    tt.throws(() => validateMessage(raw, false), { code: 'HVLAB_E_PROTOCOL' }, `refuses ${JSON.stringify(raw) ?? 'undefined'}`)
  }
  tt.same(validateMessage({ t: 'ok' }, false), { t: 'ok' })
})

/** A random msgpack-able value, biased towards what the codec inspects. */
function randomValue(rand: () => number, depth: number): unknown {
  const KEYS = [
    'k',
    'm',
    't',
    'id',
    'code',
    'message',
    'seq',
    'sent_ms',
    'name',
    'proof',
    'label',
    'toString',
    'valueOf',
    '__proto__',
    'constructor',
    'x',
  ]
  const STRINGS = [
    'msg',
    'req',
    'res',
    'err',
    'ok',
    'ping',
    'pong',
    'blob',
    'welcome',
    'goodbye',
    'event',
    'HVLAB_E_STATE',
    '',
    'a'.repeat(70),
  ]
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!
  const r = rand()
  if (depth > 4 || r < 0.3) {
    const s = rand()
    if (s < 0.25) return pick(STRINGS)
    if (s < 0.5) return Math.floor(rand() * 2 ** 33) - 2 ** 32
    if (s < 0.6) return rand() * 1e6
    if (s < 0.7) return pick([null, true, false, NaN, Infinity, -0, 2 ** 53, 2n ** 64n - 1n])
    if (s < 0.8) return new Date(Math.floor(rand() * 1e12))
    if (s < 0.9) return Buffer.from([1, 2, 3])
    return 'u'.repeat(Math.floor(rand() * 100))
  }
  if (r < 0.45) return Array.from({ length: Math.floor(rand() * 4) }, () => randomValue(rand, depth + 1))
  if (r < 0.55) return new Map([[pick(KEYS), randomValue(rand, depth + 1)]])
  const obj: Record<string, unknown> = {}
  const n = Math.floor(rand() * 5)
  for (let i = 0; i < n; i++)
    Object.defineProperty(obj, pick(KEYS), { value: randomValue(rand, depth + 1), enumerable: true, configurable: true, writable: true })
  return obj
}

t.test('thousands of seeded random and mutated frames never crash the decoder', async (tt) => {
  const rand = mulberry32(SEED)
  const byteOf = (): number => Math.floor(rand() * 256)
  const seeds = [
    ...SAMPLES.map((m) => encodeFrame({ k: 'req', id: 3, m })),
    encodeFrame({ k: 'msg', m: { t: 'blob', label: 'b' } }, Buffer.from([9, 9, 9])),
  ]
  let failures = 0
  const fail = (kind: string, i: number, data: Uint8Array, error: unknown): void => {
    failures++
    if (failures <= 5) {
      tt.fail(
        `${kind} case ${i} (rerun: ${CODEC_SEEDS.rerun(SEED)}) threw ${error instanceof Error ? `${error.name}: ${error.message}` : String(error)}; frame ${Buffer.from(data).toString('hex').slice(0, 200)}`,
      )
    }
  }
  const CASES = 4000
  for (let i = 0; i < CASES; i++) {
    // 1. Pure random bytes, often behind a valid header so the msgpack decoder sees them.
    const len = Math.floor(rand() * 64)
    const bytes = Buffer.from(Array.from({ length: len }, byteOf))
    const random = rand() < 0.8 ? rawFrame(bytes) : bytes
    let r = decodeSafely(random)
    if (!r.ok) fail('random', i, random, r.error)

    // 2. A valid frame with a few bytes flipped, inserted or cut.
    const base = Buffer.from(seeds[Math.floor(rand() * seeds.length)]!)
    let mutated: Buffer = base
    const edits = 1 + Math.floor(rand() * 4)
    for (let e = 0; e < edits; e++) {
      const at = FRAME_HEADER_BYTES + Math.floor(rand() * Math.max(1, mutated.length - FRAME_HEADER_BYTES))
      const op = rand()
      if (op < 0.6) mutated[at] = byteOf()
      else if (op < 0.8) mutated = Buffer.concat([mutated.subarray(0, at), Buffer.from([byteOf()]), mutated.subarray(at)])
      else mutated = mutated.subarray(0, at)
    }
    if (rand() < 0.7) mutated.writeUInt32BE(Math.max(1, mutated.length - FRAME_HEADER_BYTES), 1)
    r = decodeSafely(mutated)
    if (!r.ok) fail('mutated', i, mutated, r.error)

    // 3. A well-formed msgpack value of the wrong shape.
    const value = rand() < 0.5 ? randomValue(rand, 0) : { k: ['msg', 'req', 'res', 'err'][i % 4], id: i, m: randomValue(rand, 1) }
    // randomValue draws only values msgpackr packs (a throw here is a broken fuzzer, not a pass).
    const shaped = frameOf(value)
    r = decodeSafely(shaped)
    if (!r.ok) fail('shaped', i, shaped, r.error)
  }
  tt.equal(failures, 0, `${CASES * 3} fuzzed frames with seed ${SEED}: every one decoded validly or was refused with HVLAB_E_PROTOCOL`)
})
