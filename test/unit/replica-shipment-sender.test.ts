/**
 * One shipment from the primary to a replica (agent/replica/shipment-sender.ts) against a
 * real ReplicaReceiver behind a fake connection: applied end to end; a refusal on any
 * part ends it with that refusal; a lost connection, a timeout and an answer that does not
 * belong to the part sent are failed sends, to be sent again.
 */
import t from 'tap'
import { HvlabError } from '../../shared/errors.js'
import type { Message } from '../../shared/protocol/messages.js'
import { ReplicaLog } from '../../agent/replica/replica-log.js'
import { ReplicaReceiver } from '../../agent/replica/replica-receiver.js'
import { sendShipment, type PartRequester } from '../../agent/replica/shipment-sender.js'

const BS = 512
const OPTIONS = { block_size_bytes: BS, compression: 'none', part_body_bytes_max: 4 + 4 * (4 + BS), timeout_ms: 1000 } as const

function shipment(cycle_writes = 10) {
  const log = new ReplicaLog({ vm: 'vm1', block_size_bytes: BS, disk_blocks: 32 })
  for (let i = 0; i < cycle_writes; i++) log.append(i, new Uint8Array(BS).fill(i + 1))
  return log.close(1000)
}

function receiver() {
  const bytes = new Uint8Array(32 * BS)
  return new ReplicaReceiver({
    vm: 'vm1',
    disk: {
      blocks: 32,
      block_size_bytes: BS,
      readBlock: (b) => bytes.slice(b * BS, (b + 1) * BS),
      writeBlock: (b, d) => bytes.set(d, b * BS),
    },
    recovery_points: 0,
    point_every_ms: 0,
    clock_skew_ms: 1000,
    staged_bytes_max: 1 << 20,
    applied_cycle: 0,
  })
}

/** A connection to `r`, with `tamper` to change a reply or throw instead. */
function wire(r: ReplicaReceiver, tamper: (reply: Message, n: number) => Message = (m) => m): PartRequester & { sent: number } {
  const conn = {
    sent: 0,
    async request(message: Message, options: { attachment?: Uint8Array }) {
      if (message.t !== 'replica-log-part') throw new Error('only parts')
      const n = conn.sent++
      return { message: tamper(r.onPart(message, options.attachment ?? new Uint8Array(), 1000).answer, n) }
    },
  }
  return conn
}

t.test('a shipment of three parts is applied', async (t) => {
  const conn = wire(receiver())
  t.same(await sendShipment(conn, shipment(), OPTIONS), { kind: 'answer', cycle: 1, outcome: 'applied', resync: false })
  t.equal(conn.sent, 3)
})

t.test('a refusal ends the shipment with it', async (t) => {
  const r = receiver()
  const gap = { ...shipment(), cycle: 4 }
  t.same(await sendShipment(wire(r), gap, OPTIONS), { kind: 'answer', cycle: 4, outcome: 'refused', refusal: 'cycle-gap', resync: true })
})

t.test('lost links, timeouts and answers that are not for this part are failed sends', async (t) => {
  const failed = { kind: 'send-failed', cycle: 1 }
  const cut = wire(receiver(), (m, n) => {
    if (n === 1) throw new HvlabError('HVLAB_E_CLOSED', 'connection closed')
    return m
  })
  t.same(await sendShipment(cut, shipment(), OPTIONS), failed, 'the connection closed mid-shipment')
  const other = wire(receiver(), (m) => (m.t === 'replica-log-answer' ? { ...m, cycle: 9 } : m))
  t.same(await sendShipment(other, shipment(), OPTIONS), failed, 'an answer for another cycle')
  const early = wire(receiver(), (m) => (m.t === 'replica-log-answer' ? { ...m, outcome: 'applied' } : m))
  t.same(await sendShipment(early, shipment(), OPTIONS), failed, "'applied' for a part that is not the last")
  const staged = wire(receiver(), (m) => (m.t === 'replica-log-answer' ? { ...m, outcome: 'staged' } : m))
  t.same(await sendShipment(staged, shipment(), OPTIONS), failed, "'staged' for the last part")
  const wrongType = wire(receiver(), () => ({ t: 'ping', seq: 1 }) as Message)
  t.same(await sendShipment(wrongType, shipment(), OPTIONS), failed, 'another message altogether')
  const bug = wire(receiver(), () => {
    throw new TypeError('a bug')
  })
  await t.rejects(sendShipment(bug, shipment(), OPTIONS), TypeError, 'a bug is not swallowed as a failed send')
})
