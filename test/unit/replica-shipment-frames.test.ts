/**
 * A Replica shipment on the wire (agent/replica/shipment-frames.ts): cut into parts and put
 * together again it is the same shipment, deflated or not, and every frame passes the
 * protocol's own validation; what a hostile or broken primary can send (a part out of
 * order, a header that changes between parts, a truncated body, a deflate bomb, another
 * VM's parts, more than the server stages) is refused and drops what was staged.
 */
import t from 'tap'
import { deflateRawSync } from 'node:zlib'
import { ReplicaLog, type LogShipment } from '../../agent/replica/replica-log.js'
import { ShipmentAssembler, blocksPerPart, shipmentParts, type ShipmentPart } from '../../agent/replica/shipment-frames.js'
import { decodeFrame, encodeFrame } from '../../shared/protocol/codec.js'
import { mulberry32 } from '../../shared/seeded-random.js'

const BS = 512

function shipment(blocks: number, seed = 1): LogShipment {
  const rand = mulberry32(seed)
  const log = new ReplicaLog({ vm: 'vm1', block_size_bytes: BS, disk_blocks: 100_000, first_cycle: 3 })
  for (let i = 0; i < blocks; i++) {
    const data = new Uint8Array(BS).map(() => Math.floor(rand() * 4)) // compressible, not constant
    log.append(i * 3, data)
  }
  return log.close(5_000)
}

/** Each part through the codec, as the replica server receives it. */
function overTheWire(p: ShipmentPart): ShipmentPart {
  const { envelope, attachment } = decodeFrame(encodeFrame({ k: 'req', id: 1, m: p.message }, p.attachment))
  if (envelope.k !== 'req' || envelope.m.t !== 'replica-log-part') throw new Error('not a part')
  return { message: envelope.m, attachment }
}

function assemble(parts: ShipmentPart[], staged_bytes_max = 64 * 1024 * 1024) {
  const a = new ShipmentAssembler({ vm: 'vm1', staged_bytes_max })
  const results = parts.map((p) => a.add(p.message, p.attachment))
  return { a, results }
}

for (const compression of ['none', 'deflate'] as const) {
  t.test(`a shipment in parts comes back whole (${compression})`, async (t) => {
    const s = shipment(40)
    const parts = shipmentParts(s, { block_size_bytes: BS, compression, part_body_bytes_max: 4 + 16 * (4 + BS) })
    t.equal(parts.length, 3, '16 blocks a part: 40 blocks in 3 parts')
    t.ok(
      parts.every((p, i) => p.message.part === i && p.message.parts === 3),
      'numbered in order',
    )
    if (compression === 'deflate')
      t.ok(parts[0]!.attachment.length < parts[0]!.message.body_bytes, 'deflate makes the guest data smaller on the wire')
    const { results } = assemble(parts.map(overTheWire))
    t.same(
      results.map((r) => r.kind),
      ['staged', 'staged', 'complete'],
    )
    const last = results[2]
    if (last?.kind !== 'complete') return t.fail('complete')
    t.same(
      last.shipment.blocks.map((b) => b.block),
      s.blocks.map((b) => b.block),
      'every block, in order',
    )
    t.ok(
      last.shipment.blocks.every((b, i) => Buffer.compare(b.data, s.blocks[i]!.data) === 0),
      'every byte',
    )
    t.match(last.shipment, { vm: 'vm1', cycle: 3, closed_at_ms: 5_000, writes_logged: 40, logged_bytes: 40 * BS })
  })
}

t.test('an empty cycle is one part of no blocks', async (t) => {
  const parts = shipmentParts(shipment(0), { block_size_bytes: BS, compression: 'none' })
  t.equal(parts.length, 1)
  const { results } = assemble(parts.map(overTheWire))
  t.match(results, [{ kind: 'complete', shipment: { cycle: 3, blocks: [] } }])
})

t.test('the default part fits a frame, and a part too small for one block is a bug', async (t) => {
  t.ok(blocksPerPart(64 * 1024) >= 60, 'about 4 MiB of 64 KiB blocks')
  t.throws(() => blocksPerPart(BS, 100), { code: 'HVLAB_E_INTERNAL' })
})

t.test('hostile parts are refused and drop what was staged', async (t) => {
  const s = shipment(40)
  const parts = shipmentParts(s, { block_size_bytes: BS, compression: 'none', part_body_bytes_max: 4 + 16 * (4 + BS) })
  const refused = (what: string, build: (a: ShipmentAssembler) => void, staged_bytes_max = 1 << 26) => {
    const a = new ShipmentAssembler({ vm: 'vm1', staged_bytes_max })
    t.throws(() => build(a), { code: 'HVLAB_E_PROTOCOL' }, what)
    t.equal(a.stagedBytes, 0, `${what}: nothing stays staged`)
  }
  const [p0, p1, p2] = parts as [ShipmentPart, ShipmentPart, ShipmentPart]
  refused('a part skipped', (a) => {
    a.add(p0.message, p0.attachment)
    a.add(p2.message, p2.attachment)
  })
  refused('a part without its first', (a) => a.add(p1.message, p1.attachment))
  refused('a header changed between parts', (a) => {
    a.add(p0.message, p0.attachment)
    a.add({ ...p1.message, closed_at_ms: 9_999 }, p1.attachment)
  })
  refused('another VM', (a) => a.add({ ...p0.message, vm: 'vm2' }, p0.attachment))
  refused('a truncated body', (a) => a.add(p0.message, p0.attachment.subarray(0, p0.attachment.length - 1)))
  refused('a count that does not fill the body', (a) => {
    const body = Buffer.from(p0.attachment)
    body.writeUInt32LE(15, 0)
    a.add(p0.message, body)
  })
  refused('a deflate bomb', (a) => {
    const bomb = deflateRawSync(Buffer.alloc(1 << 24))
    a.add({ ...p0.message, compression: 'deflate' }, bomb)
  })
  refused('not deflate at all', (a) => a.add({ ...p0.message, compression: 'deflate' }, p0.attachment))
  refused('a part number past the count', (a) => a.add({ ...p1.message, parts: 1 }, p1.attachment))
  refused(
    'more than the server stages',
    (a) => {
      a.add(p0.message, p0.attachment)
      a.add(p1.message, p1.attachment)
    },
    20 * BS,
  )
})

t.test('a resend from part 0 starts the shipment afresh', async (t) => {
  const parts = shipmentParts(shipment(40), { block_size_bytes: BS, compression: 'none', part_body_bytes_max: 4 + 16 * (4 + BS) })
  const a = new ShipmentAssembler({ vm: 'vm1', staged_bytes_max: 1 << 26 })
  a.add(parts[0]!.message, parts[0]!.attachment)
  a.add(parts[1]!.message, parts[1]!.attachment)
  const again = parts.map((p) => a.add(p.message, p.attachment))
  t.match(again[2], { kind: 'complete' })
  if (again[2]?.kind === 'complete') t.equal(again[2].shipment.blocks.length, 40, 'no block twice')
})

t.test('the protocol refuses a part without its body or with a bad header', async (t) => {
  const [p0] = shipmentParts(shipment(2), { block_size_bytes: BS, compression: 'none' })
  t.throws(() => encodeFrame({ k: 'req', id: 1, m: p0!.message }), { code: 'HVLAB_E_PROTOCOL' }, 'no attachment')
  t.throws(
    () => encodeFrame({ k: 'req', id: 1, m: { ...p0!.message, block_size_bytes: 100 } }, p0!.attachment),
    { code: 'HVLAB_E_PROTOCOL' },
    'a block smaller than a sector',
  )
  t.throws(
    () => encodeFrame({ k: 'req', id: 1, m: { ...p0!.message, compression: 'zstd' } as never }, p0!.attachment),
    { code: 'HVLAB_E_PROTOCOL' },
    'an unknown compression',
  )
})
