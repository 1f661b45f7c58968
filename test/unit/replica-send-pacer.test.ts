/**
 * Replication's bandwidth cap (agent/replica/send-pacer.ts, paced-requester.ts) on a
 * manual clock: each send waits until what went before has had its time at the cap, so
 * by any moment replication has sent at most cap × time since its first send plus the
 * send under way; with no cap nothing waits; a cap changed applies to the next send; a
 * request without bytes is never held.
 */
import t from 'tap'
import { pacedRequester } from '../../agent/replica/paced-requester.js'
import { SendPacer, sendMs } from '../../agent/replica/send-pacer.js'
import type { PartRequester } from '../../agent/replica/shipment-sender.js'
import { ManualClock } from '../../shared/clock.js'
import type { Message } from '../../shared/protocol/messages.js'
import { mulberry32 } from '../../shared/seeded-random.js'

const MIB = 1024 * 1024

t.test('sends begin once those before have had their time at the cap', async (t) => {
  const p = new SendPacer()
  t.equal(sendMs(MIB, 8), 1048.576, '1 MiB at 8 Mbit/s')
  t.equal(p.book(MIB, 1_000, 8), 1_000, 'the first goes at once')
  t.equal(p.book(MIB, 1_000, 8), 2_048.576, 'the second after the first had its time')
  t.equal(p.book(MIB, 5_000, 8), 5_000, 'after a quiet while, at once again (no credit saved up beyond now)')
  t.equal(p.book(MIB, 5_100, 16), 5_000 + 1048.576, 'a higher cap: the next still waits for the last one’s time')
  t.equal(p.book(MIB, 5_100, null), 5_100, 'no cap: at once')
  t.throws(() => p.book(MIB, 0, 0), { code: 'HVLAB_E_USAGE' })
  t.throws(() => p.book(-1, 0, 1), { code: 'HVLAB_E_INTERNAL' })
})

t.test('whatever the sends, never more than the cap on average from the first send', async (t) => {
  const random = mulberry32(7)
  const p = new SendPacer()
  const mbit = 2
  let now = 0
  let first: number | null = null
  let sent = 0
  for (let i = 0; i < 500; i++) {
    now += Math.floor(random() * 3_000)
    const bytes = 1 + Math.floor(random() * 4 * MIB)
    const start = p.book(bytes, now, mbit)
    t.ok(start >= now, 'never before it was asked')
    first ??= start
    // what went before this send began is within the cap over the time since the first
    if (sent > (mbit * 1e6 * (start - first)) / 8 / 1000 + 1e-6) t.fail(`send ${i}: ${sent} bytes before ${start} ms`)
    sent += bytes
    now = Math.max(now, start)
  }
  t.pass('500 sends of up to 4 MiB kept to 2 Mbit/s')
})

t.test('a paced connection holds requests with bytes on the clock, not the others', async (t) => {
  const clock = new ManualClock(0)
  const sentAt: { t: string; at: number }[] = []
  const conn: PartRequester = {
    request: async (message: Message) => {
      sentAt.push({ t: message.t, at: clock.now() })
      return { message: { t: 'ok' } as Message }
    },
  }
  let cap: number | null = 8
  const paced = pacedRequester(conn, { pacer: new SendPacer(), clock, maxMbit: () => cap })
  const part = { t: 'replica-resync-blocks', vm: 'web1', body_bytes: MIB } as Message
  const a = paced.request(part, { attachment: new Uint8Array(MIB) })
  const b = paced.request(part, { attachment: new Uint8Array(MIB) })
  const hashes = paced.request({ t: 'replica-hashes-request', vm: 'web1', first_block: 0, blocks: 1 } as Message, {})
  await a
  await hashes
  t.same(
    sentAt.map((s) => s.t),
    ['replica-resync-blocks', 'replica-hashes-request'],
    'the second part waits; a request without bytes does not',
  )
  clock.advance(1_048)
  await Promise.resolve()
  t.equal(sentAt.length, 2, 'not before the first part has had its time (1 MiB at 8 Mbit/s: 1048.6 ms)')
  clock.advance(1)
  await b
  t.match(sentAt[2], { t: 'replica-resync-blocks', at: 1_049 }, 'then at once')
  cap = null
  await paced.request(part, { attachment: new Uint8Array(MIB) })
  t.equal(sentAt[3]!.at, clock.now(), 'the cap removed: the next goes at once')
})
