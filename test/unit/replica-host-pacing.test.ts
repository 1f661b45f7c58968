/**
 * The cap on replication's bandwidth as the host applies it (replication-host.ts with
 * paced-requester.ts), on a manual clock against a replica server played here: the
 * initial replication's blocks and every cycle's shipment are paced at the VM's cap, so
 * no send begins before the ones before it have had their time at the cap; a cap changed
 * in the role applies to the next send without a new begin or resync; with no cap the
 * sends go as they come.
 */
import t from 'tap'
import { ReplicationHost } from '../../agent/replica/replication-host.js'
import type { PartRequester } from '../../agent/replica/shipment-sender.js'
import { sendMs } from '../../agent/replica/send-pacer.js'
import { ManualClock } from '../../shared/clock.js'
import type { Message } from '../../shared/protocol/messages.js'
import type { ReplicationSetting } from '../../shared/protocol/replica-messages.js'

const BS = 512
const BLOCKS = 1024
const CAP = 0.05
const ZERO_HASH = Buffer.from('076a27c79e5ace2a3d47f9dd2e83e4ff6ea8872b3c2218f66c92b89b55f36560', 'hex') // SHA-256 of 512 zero bytes

/** A replica server that takes everything: an empty replica, every part applied; what carried bytes is noted with when it came. */
function fakeServer(clock: ManualClock) {
  const sends: { t: string; at_ms: number; bytes: number }[] = []
  let begins = 0
  const conn: PartRequester = {
    request: async (m: Message, o: { attachment?: Uint8Array }) => {
      if (o.attachment !== undefined) sends.push({ t: m.t, at_ms: clock.now(), bytes: o.attachment.length })
      switch (m.t) {
        case 'replica-begin-request':
          begins++
          return {
            message: { t: 'replica-begin-reply', vm: m.vm, applied_cycle: 0, has_copy: false, handover: 'take-over', previous: null },
          }
        case 'replica-hashes-request':
          return {
            message: { t: 'replica-hashes-reply', vm: m.vm, first_block: m.first_block, blocks: m.blocks },
            attachment: Buffer.concat(Array.from({ length: m.blocks }, () => ZERO_HASH)),
          }
        case 'replica-log-part':
          return { message: { t: 'replica-log-answer', vm: m.vm, cycle: m.cycle, part: m.part, outcome: 'applied', resync: false } }
        default:
          return { message: { t: 'ok' } }
      }
    },
  }
  return { conn, sends, begins: () => begins }
}

/** Before each send, what went before it took at least its time at `mbit` since the first send began. */
function withinCap(sends: readonly { at_ms: number; bytes: number }[], mbit: number): boolean {
  let before = 0
  for (const s of sends) {
    if (s.at_ms - sends[0]!.at_ms < sendMs(before, mbit) - 1e-6) return false
    before += s.bytes
  }
  return true
}

const flush = async (): Promise<void> => {
  for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r))
}

/** Advances the clock a step at a time, letting the sends that fall due go. */
async function run(clock: ManualClock, ms: number, step_ms = 100): Promise<void> {
  for (let at = 0; at < ms; at += step_ms) {
    clock.advance(step_ms)
    await flush()
  }
}

t.test('the initial replication and every cycle go at the cap; a cap changed applies to the next send', async (t) => {
  const clock = new ManualClock(0)
  const server = fakeServer(clock)
  const disk = new Uint8Array(BS * BLOCKS).fill(9, 0, 64 * BS) // 64 blocks differ from the empty replica
  let setting: ReplicationSetting = { to: 'dr1', frequency_ms: 30_000, recovery_points: 0, compress: false, max_mbit: CAP }
  const host = new ReplicationHost({
    host: 'host-a1',
    clock,
    time_scale: 0.1, // 3 s cycles
    running: () => ['web1'],
    settingOf: () => setting,
    memoryOf: () => 64,
    diskOf: () => ({ block_size_bytes: BS, blocks: BLOCKS, read: async (first, n) => disk.slice(first * BS, (first + n) * BS) }),
    server: () => server.conn,
    emit: () => {},
  })
  host.check()
  let seq = 0
  const write = (block: number): void => host.completed({ vm: 'web1', seq: seq++, epoch: 1, block, value: 1 }, 'acked')
  for (let s = 0; s < 60; s++) {
    for (let b = 0; b < 8; b++) write((s * 8 + b) % BLOCKS) // 4 KiB of changes a second
    await run(clock, 1_000)
  }
  t.equal(server.sends[0]?.t, 'replica-resync-blocks', 'the initial replication first')
  t.ok(server.sends.filter((s) => s.t === 'replica-log-part').length >= 2, 'then shipments')
  t.ok(withinCap(server.sends, CAP), `never more than ${CAP} Mbit/s on average since the first send`)
  t.notOk(withinCap(server.sends, CAP / 2), 'and the cap is what held them (not the writes: they kept up with it)')
  const paced = server.sends.length

  const begins = server.begins()
  setting = { ...setting, max_mbit: undefined }
  host.check()
  await run(clock, 40_000)
  const heavy = server.sends.length
  for (let s = 0; s < 9; s++) {
    for (let b = 0; b < 64; b++) write(b) // 32 KiB a second: 0.26 Mbit/s
    await run(clock, 1_000)
  }
  t.equal(server.begins(), begins, 'the cap removed: the same shell goes on (no new begin, no resync)')
  t.equal(server.sends.filter((s) => s.t === 'replica-resync-blocks').length, 1, 'the initial replication only')
  t.ok(heavy > paced, 'shipments went on meanwhile')
  const free = server.sends.slice(heavy)
  t.ok(free.length >= 3, 'a shipment every 3 s cycle')
  t.notOk(withinCap(free, CAP), 'more than the old cap would let through')
  host.stop()
})
