/**
 * Per-frame authentication (shared/transport/frame-auth.ts), pure: the key schedule and
 * the tag are pinned by a fixed test vector (a change of the wire format shows here) and
 * recomputed from their description with node:crypto alone; every frame that is not the
 * next one its peer sealed — dropped, replayed, reordered, altered, injected, truncated,
 * reflected — fails to open; and the handshake proof covers both roles.
 */
import { createCipheriv, hkdfSync } from 'node:crypto'
import t from 'tap'
import {
  FRAME_TAG_BYTES,
  FrameAuth,
  deriveFrameKeys,
  frameTag,
  openFrame,
  transcriptBytes,
  type HandshakeTranscript,
} from '../../shared/transport/frame-auth.js'
import { computeProof } from '../../shared/transport/handshake.js'
import { mulberry32 } from '../../shared/seeded-random.js'
import { seeds } from '../sim/seed.js'

const SECRET = 'lab-secret-for-tests'
const TRANSCRIPT: HandshakeTranscript = {
  protocolVersion: 2,
  client: { name: 'host-a1', role: 'host', nonce: '00112233445566778899aabbccddeeff' },
  server: { name: 'array-a', role: 'array', nonce: 'ffeeddccbbaa99887766554433221100' },
}
/** A frame's bytes: magic, u32 envelope length 3, msgpack {"k"} — the tag does not care what they mean. */
const FRAME = Buffer.from('b700000003a1616b', 'hex')

/** A connected pair: what one seals the other opens. */
function pair(): { client: FrameAuth; server: FrameAuth } {
  return { client: FrameAuth.after('client', SECRET, TRANSCRIPT), server: FrameAuth.after('server', SECRET, TRANSCRIPT) }
}
const sealedBy = (auth: FrameAuth, ...parts: Buffer[]): Buffer => Buffer.concat([...parts, auth.seal(parts)])

t.test('the fixed test vector: keys and tags of one transcript', async (t) => {
  const keys = deriveFrameKeys(SECRET, TRANSCRIPT)
  t.equal(keys.clientToServer.toString('hex'), 'f63168b5eb6237b715a6599ae89afaece97391ff66fad243f8f1b73f10d4bdbe', 'client → server key')
  t.equal(keys.serverToClient.toString('hex'), 'a3eaa242207547f5058538266b3c1e032c842a68b2cf438703cc5852a21ec5a1', 'server → client key')
  t.equal(frameTag(keys.clientToServer, 0, [FRAME]).toString('hex'), '7f3469bfbaf1d6c52a588fa08460f234', 'tag of frame 0')
  t.equal(frameTag(keys.clientToServer, 1, [FRAME]).toString('hex'), '056721b310cbd3345dabb998e659de8e', 'tag of frame 1')
  t.equal(
    frameTag(keys.serverToClient, 0x1_0000_0002, [FRAME]).toString('hex'),
    'f9539b940086c498df512cb619df9ff0',
    'a sequence number past 32 bits',
  )
})

t.test('the format, recomputed from its description with node:crypto alone', async (t) => {
  const field = (s: string): Buffer => {
    const b = Buffer.from(s, 'utf8')
    return Buffer.concat([Buffer.from([b.length >> 8, b.length & 0xff]), b])
  }
  const info = Buffer.concat(
    ['hvlab', '2', TRANSCRIPT.client.nonce, TRANSCRIPT.server.nonce, 'host-a1', 'array-a', 'host', 'array'].map(field),
  )
  t.same(transcriptBytes(TRANSCRIPT), info, 'info: each field u16-length-prefixed, in this order')
  const okm = Buffer.from(hkdfSync('sha256', SECRET, 'hvlab frame keys', info, 64))
  const keys = deriveFrameKeys(SECRET, TRANSCRIPT)
  t.same(keys.clientToServer, okm.subarray(0, 32), 'HKDF-SHA256 output, first half: client → server')
  t.same(keys.serverToClient, okm.subarray(32), 'second half: server → client')
  const seq = 0x1_0000_0002
  const nonce = Buffer.from([0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 2])
  const mac = createCipheriv('chacha20-poly1305', keys.serverToClient, nonce, { authTagLength: 16 })
  mac.setAAD(FRAME, { plaintextLength: 0 })
  mac.final()
  t.same(
    frameTag(keys.serverToClient, seq, [FRAME]),
    mac.getAuthTag(),
    'ChaCha20-Poly1305, frame as AAD, empty plaintext, nonce = 4 zero bytes + u64 BE sequence number',
  )
})

t.test('a frame sealed in parts opens whole, as a view of the received bytes', async (t) => {
  const { client, server } = pair()
  const head = Buffer.from(FRAME)
  const attachment = Buffer.alloc(64 * 1024, 7)
  const keys = deriveFrameKeys(SECRET, TRANSCRIPT)
  t.same(
    frameTag(keys.clientToServer, 5, [head, attachment]),
    frameTag(keys.clientToServer, 5, [Buffer.concat([head, attachment])]),
    'the tag over parts is the tag over their concatenation',
  )
  const wire = sealedBy(client, head, attachment)
  t.equal(wire.length, head.length + attachment.length + FRAME_TAG_BYTES)
  const opened = server.open([wire])
  t.ok(opened && Buffer.concat(opened).equals(Buffer.concat([head, attachment])), 'opens to the frame without its tag')
  t.equal(opened?.[0]?.buffer, wire.buffer, 'not copied: a view of the received buffer')
  const empty = sealedBy(server)
  t.same(client.open([empty]), [], 'an empty frame has a tag too')
})

t.test('only the next frame the peer sealed opens', async (t) => {
  // What arrives instead of the three frames sealed; the last frame of each is the one refused.
  const cases: [string, (frames: Buffer[]) => Buffer[]][] = [
    ['a dropped frame (the one after it)', (f) => [f[0]!, f[2]!]],
    ['a replayed frame', (f) => [f[0]!, f[1]!, f[1]!]],
    ['reordered frames', (f) => [f[0]!, f[2]!]],
    ['a frame with one bit of its header changed', (f) => [f[0]!, flip(f[1]!, 0)]],
    ['a frame with one bit of its attachment changed', (f) => [f[0]!, flip(f[1]!, f[1]!.length - FRAME_TAG_BYTES - 1)]],
    ['a frame with one bit of its tag changed', (f) => [f[0]!, flip(f[1]!, f[1]!.length - 1)]],
    ['a frame cut short', (f) => [f[0]!, f[1]!.subarray(0, f[1]!.length - 1)]],
    ['a frame shorter than a tag', (f) => [f[0]!, Buffer.alloc(FRAME_TAG_BYTES - 1)]],
    ['an injected frame with a made-up tag', (f) => [f[0]!, Buffer.concat([FRAME, Buffer.alloc(FRAME_TAG_BYTES, 0xab)])]],
    ['an injected frame without a tag', (f) => [f[0]!, FRAME]],
  ]
  for (const [what, tamper] of cases) {
    const { client, server } = pair()
    const frames = [0, 1, 2].map((i) => sealedBy(client, FRAME, Buffer.alloc(100, i)))
    const received = tamper(frames)
    const opened = received.map((f) => server.open([f]))
    t.ok(
      opened.slice(0, -1).every((f) => f !== undefined),
      `${what}: the frames before it open`,
    )
    t.equal(opened.at(-1), undefined, `${what}: refused`)
  }
  const { client, server } = pair()
  const frame = sealedBy(client, FRAME)
  t.equal(client.open([frame]), undefined, 'a frame reflected back at its sender does not open (each direction has its own key)')
  t.ok(server.open([frame]), 'while the peer opens it')
})

t.test('every part of the transcript and the secret change the keys', async (t) => {
  const base = deriveFrameKeys(SECRET, TRANSCRIPT).clientToServer.toString('hex')
  const variants: [string, HandshakeTranscript, string?][] = [
    ['protocol version', { ...TRANSCRIPT, protocolVersion: 3 }],
    ['client name', { ...TRANSCRIPT, client: { ...TRANSCRIPT.client, name: 'host-a2' } }],
    ['client role', { ...TRANSCRIPT, client: { ...TRANSCRIPT.client, role: 'array' } }],
    ['client nonce', { ...TRANSCRIPT, client: { ...TRANSCRIPT.client, nonce: '1'.repeat(32) } }],
    ['server name', { ...TRANSCRIPT, server: { ...TRANSCRIPT.server, name: 'array-b' } }],
    ['server role', { ...TRANSCRIPT, server: { ...TRANSCRIPT.server, role: 'host' } }],
    ['server nonce', { ...TRANSCRIPT, server: { ...TRANSCRIPT.server, nonce: '2'.repeat(32) } }],
    [
      'names swapped',
      { ...TRANSCRIPT, client: { ...TRANSCRIPT.client, name: 'array-a' }, server: { ...TRANSCRIPT.server, name: 'host-a1' } },
    ],
    ['secret', TRANSCRIPT, 'another-lab'],
  ]
  for (const [what, transcript, secret] of variants) {
    t.not(deriveFrameKeys(secret ?? SECRET, transcript).clientToServer.toString('hex'), base, `another ${what}, another key`)
  }
})

t.test('the handshake proof covers both roles', async (t) => {
  const input = {
    side: 'client' as const,
    protocolVersion: 2,
    theirNonce: 'a'.repeat(32),
    ourNonce: 'b'.repeat(32),
    ourName: 'host-a1',
    theirName: 'array-a',
    ourRole: 'host',
    theirRole: 'array',
  }
  const proof = computeProof(SECRET, input)
  t.not(computeProof(SECRET, { ...input, ourRole: 'array' }), proof, "the prover's role")
  t.not(computeProof(SECRET, { ...input, theirRole: 'host' }), proof, "the verifier's role")
})

function flip(frame: Buffer, at: number): Buffer {
  const copy = Buffer.from(frame)
  copy[at] = copy[at]! ^ 0x01
  return copy
}

t.test('a frame opens however its bytes were split into fragments, and its parts come back uncopied', async (t) => {
  const head = Buffer.from(FRAME)
  const attachment = Buffer.alloc(10_000)
  for (let i = 0; i < attachment.length; i++) attachment[i] = (i * 31) & 0xff
  const frame = Buffer.concat([head, attachment])
  const SPLIT_SEED = seeds(import.meta.url, { base: 0xf2a6, count: 1 }).list[0] as number
  const rand = mulberry32(SPLIT_SEED)
  for (let trial = 0; trial < 200; trial++) {
    const { client, server } = pair()
    const wire = sealedBy(client, head, attachment)
    const fragments = splitAt(wire, rand, trial % 2 === 0 ? 3 : 12)
    const opened = server.open(fragments)
    if (!opened || !Buffer.concat(opened).equals(frame)) {
      t.fail(`seed ${SPLIT_SEED}, trial ${trial}: split at ${fragments.map((f) => f.length).join('+')} did not open to the frame`)
      return
    }
    const tampered = pair()
    const changed = splitAt(flip(sealedBy(tampered.client, head, attachment), Math.floor(rand() * wire.length)), rand, 5)
    if (tampered.server.open(changed) !== undefined) {
      t.fail(`seed ${SPLIT_SEED}, trial ${trial}: a changed bit opened`)
      return
    }
  }
  t.pass('200 random splits opened to the frame (tags spanning fragments, empty fragments); a changed bit in each refused')
  const { client, server } = pair()
  const tag = client.seal([head, attachment])
  const parts = server.open([head, attachment, tag])
  t.equal(parts?.length, 2, 'the transport’s own split (envelope, attachment, tag) opens to two parts')
  t.equal(parts?.[1], attachment, 'the attachment part is the fragment itself, not a copy')
  t.equal(pair().server.open([Buffer.alloc(FRAME_TAG_BYTES - 1), Buffer.alloc(0)]), undefined, 'fragments shorter than a tag: refused')
})

/** `wire` cut into up to `cuts` + 1 fragments at random places (some may be empty). */
function splitAt(wire: Buffer, rand: () => number, cuts: number): Buffer[] {
  const at = Array.from({ length: cuts }, () => Math.floor(rand() * (wire.length + 1))).sort((a, b) => a - b)
  const fragments: Buffer[] = []
  let from = 0
  for (const to of [...at, wire.length]) {
    fragments.push(wire.subarray(from, to))
    from = to
  }
  return fragments
}
