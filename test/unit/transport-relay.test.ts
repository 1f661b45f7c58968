/**
 * The audit's attack (reliability review #3): a relay without the secret sits between a
 * real client and a real PeerServer, forwards the handshake — which succeeds end to end —
 * and then injects, alters, replays or drops frames. Each is refused: the connection is
 * closed, the reason is logged, and no handler runs for the tampered frame.
 */
import { once } from 'node:events'
import t from 'tap'
import { encodeFrame } from '../../shared/protocol/codec.js'
import { FRAME_TAG_BYTES } from '../../shared/transport/frame-auth.js'
import type { PeerConnection } from '../../shared/transport/peer-connection.js'
import { capturingLogger, connect, startServer, until, type TapTest } from './transport-helpers.js'
import { WsRelay, type WsMessage } from './ws-relay.js'

/** The forged write of the audit: a block write in host-b2's name at a huge epoch. */
const FORGED_WRITE = encodeFrame(
  { k: 'req', id: 9, m: { t: 'block-write', volume: 'r1', host: 'host-b2', epoch: 1_000_000, block: 0, blocks: 1 } },
  Buffer.alloc(4096, 0xee),
)

interface Relayed {
  relay: WsRelay
  client: PeerConnection
  serverSide: () => PeerConnection | undefined
  /** block-write requests the server's handler ran, by epoch. */
  writes: number[]
  serverLog: Record<string, unknown>[]
  clientLog: Record<string, unknown>[]
}

/** A server that answers block-write, a client connected to it through a relay, and one write that got through. */
async function relayed(tt: TapTest): Promise<Relayed> {
  const writes: number[] = []
  const peers: PeerConnection[] = []
  const server = capturingLogger()
  const client = capturingLogger()
  const s = await startServer(tt, {
    name: 'array-a',
    role: 'array',
    log: server.log,
    onPeer: (c) => {
      peers.push(c)
      c.onRequest('block-write', ({ message: m }) => {
        writes.push(m.epoch)
        return { message: { t: 'block-written', volume: m.volume, block: m.block, blocks: m.blocks } }
      })
    },
  })
  const relay = await WsRelay.start(tt, s.port)
  const c = await connect(tt, relay.port, { name: 'host-b2', log: client.log })
  await c.request({ t: 'block-write', volume: 'r1', host: 'host-b2', epoch: 5, block: 0, blocks: 1 }, { attachment: Buffer.alloc(4096, 1) })
  tt.same(writes, [5], 'the handshake and a first write went through the relay')
  return { relay, client: c, serverSide: () => peers[0], writes, serverLog: server.lines, clientLog: client.lines }
}

const write = (epoch: number) => ({ t: 'block-write' as const, volume: 'r1', host: 'host-b2', epoch, block: 0, blocks: 1 })

/** Both ends closed; the side that judged the frame logged an HVLAB_E_AUTH refusal. */
async function assertRefused(tt: TapTest, r: Relayed, judge: 'server' | 'client'): Promise<void> {
  if (r.client.isOpen) await once(r.client, 'close')
  await until('the server to close its side', () => r.serverSide()?.isOpen === false)
  const log = judge === 'server' ? r.serverLog : r.clientLog
  const line = log.find((l) => l.code === 'HVLAB_E_AUTH')
  tt.match(line, { msg: 'closing connection', reason: /failed authentication/ }, `the ${judge} logged why it closed the connection`)
}

t.test('a frame injected towards the server is refused; the forged write is not done', async (tt) => {
  const r = await relayed(tt)
  r.relay.inject('toServer', Buffer.concat([FORGED_WRITE, Buffer.alloc(FRAME_TAG_BYTES)]))
  await assertRefused(tt, r, 'server')
  tt.same(r.writes, [5], 'no write at epoch 1000000')
})

t.test('a frame injected without any tag is refused', async (tt) => {
  const r = await relayed(tt)
  r.relay.inject('toServer', FORGED_WRITE)
  await assertRefused(tt, r, 'server')
  tt.same(r.writes, [5])
})

t.test('a frame injected towards the client is refused', async (tt) => {
  const r = await relayed(tt)
  r.relay.inject(
    'toClient',
    Buffer.concat([encodeFrame({ k: 'msg', m: { t: 'partition-set', blocked: [] } }), Buffer.alloc(FRAME_TAG_BYTES)]),
  )
  await assertRefused(tt, r, 'client')
})

t.test('an altered frame is refused', async (tt) => {
  const r = await relayed(tt)
  // The next write's epoch (5 → 4, one bit) is changed on its way: a replayed old epoch.
  r.relay.hooks.toServer = ({ fragments }: WsMessage) => {
    r.relay.hooks.toServer = undefined
    const head = Buffer.from(fragments[0]!)
    const at = head.indexOf(Buffer.from('epoch'))
    head[at + 5] = head[at + 5]! ^ 0x01
    return [head, ...fragments.slice(1)]
  }
  await tt.rejects(r.client.request(write(5), { attachment: Buffer.alloc(4096, 2) }), { code: 'HVLAB_E_CLOSED' })
  await assertRefused(tt, r, 'server')
  tt.same(r.writes, [5], 'the altered write was not done')
})

t.test('a replayed frame is refused', async (tt) => {
  const r = await relayed(tt)
  const repeated: WsMessage[] = []
  r.relay.hooks.toServer = (message: WsMessage) => {
    r.relay.hooks.toServer = undefined
    repeated.push(message)
    return [...message.fragments, ...message.fragments]
  }
  // The first copy is done and may be answered before the server closes on the replay;
  // if not, the request fails because the connection closed — nothing else.
  const outcome = await r.client.request(write(6), { attachment: Buffer.alloc(4096, 3) }).then(
    () => 'answered',
    (e: unknown) => e,
  )
  if (outcome !== 'answered') tt.match(outcome, { code: 'HVLAB_E_CLOSED' }, 'the replayed write was answered, or refused as closed')
  await assertRefused(tt, r, 'server')
  tt.equal(repeated.length, 1, 'the relay sent one message twice')
  tt.equal(repeated[0]!.fragments.length, 3, 'a write goes as three fragments: head, attachment, tag')
  tt.same(r.writes, [5, 6], 'the write was done once')
})

t.test('a frame after a dropped one is refused', async (tt) => {
  const r = await relayed(tt)
  r.relay.hooks.toServer = () => {
    r.relay.hooks.toServer = undefined
    return []
  }
  const dropped = r.client.request(write(7), { attachment: Buffer.alloc(4096, 4) })
  const next = r.client.request(write(8), { attachment: Buffer.alloc(4096, 5) })
  await tt.rejects(dropped, { code: 'HVLAB_E_CLOSED' })
  await tt.rejects(next, { code: 'HVLAB_E_CLOSED' })
  await assertRefused(tt, r, 'server')
  tt.same(r.writes, [5], 'neither write was done')
})
