/**
 * A recovery point's kind (crash or application) from the shipment to the point files:
 * it travels in every part of a shipment (shipment-frames.ts), an application-consistent
 * shipment always gives a point while a crash-consistent one waits for the point interval
 * (replica-receiver.ts), the kind survives persisting and reopening the replica
 * (recovery-point-files.ts, format 2), and a point file of format 1 (before kinds) is read
 * as crash-consistent.
 */
import t from 'tap'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { LogShipment } from '../../agent/replica/replica-log.js'
import { ReplicaReceiver } from '../../agent/replica/replica-receiver.js'
import { ReplicaStore } from '../../agent/replica/replica-store.js'
import { ShipmentAssembler, shipmentParts } from '../../agent/replica/shipment-frames.js'
import { BS, G, cycles } from './replica-cycles-fixture.js'

/** The store in `dir` and a receiver that takes a crash-consistent point only a long while after the last one. */
async function open(dir: string) {
  const store = await ReplicaStore.open(dir, G, 24)
  const receiver = new ReplicaReceiver({
    vm: 'vm1',
    disk: store.disk,
    recovery_points: 24,
    point_every_ms: 1_000_000,
    clock_skew_ms: 1000,
    staged_bytes_max: 1 << 20,
    applied_cycle: store.appliedCycle,
    restored_points: store.points,
    last_point_ms: store.points.at(-1)?.taken_ms ?? 0,
  })
  return { store, receiver }
}

const asApplication = (s: LogShipment): LogShipment => ({ ...s, point_kind: 'application' })
const partsOf = (s: LogShipment) => shipmentParts(s, { block_size_bytes: BS, compression: 'none', part_body_bytes_max: 2048 })

async function ship(r: Awaited<ReturnType<typeof open>>, s: LogShipment): Promise<void> {
  let last = null
  for (const p of partsOf(s)) last = r.receiver.onPart(p.message, p.attachment, s.closed_at_ms)
  if (!last?.applied || !last.points) throw new Error(`cycle ${s.cycle} was not applied: ${JSON.stringify(last?.answer)}`)
  await r.store.persist(last.applied, last.points)
}

t.test('the kind travels in every part; a part that changes it is refused', async (t) => {
  const [s] = cycles(1).shipments
  const parts = partsOf(asApplication(s!))
  t.ok(parts.length > 1, 'a shipment of several parts')
  t.ok(
    parts.every((p) => p.message.point_kind === 'application'),
    'each part says application',
  )
  const assembler = new ShipmentAssembler({ vm: 'vm1', staged_bytes_max: 1 << 20 })
  const got = parts.map((p) => assembler.add(p.message, p.attachment)).at(-1)
  t.equal(got?.kind === 'complete' ? got.shipment.point_kind : null, 'application')
  t.equal(partsOf(s!)[0]!.message.point_kind, undefined, 'a crash-consistent shipment says nothing (as before kinds)')
  assembler.add(parts[0]!.message, parts[0]!.attachment)
  const changed = { ...parts[1]!.message, point_kind: undefined }
  t.throws(() => assembler.add(changed, parts[1]!.attachment), { code: 'HVLAB_E_PROTOCOL' })
})

t.test('an application-consistent shipment always gives a point; the kind survives a reopen', async (t) => {
  const dir = join(t.testdir(), 'replica')
  const { shipments } = cycles(5, 21)
  const r = await open(dir)
  for (const s of shipments) await ship(r, s.cycle % 2 === 0 ? asApplication(s) : s)
  t.same(
    r.receiver.recoveryPoints().map((p) => [p.cycle, p.kind]),
    [
      [2, 'application'],
      [4, 'application'],
    ],
    'crash-consistent cycles within the point interval gave none',
  )
  const header = JSON.parse(readFileSync(join(dir, 'points', '2.undo'), 'utf8').split('\n')[0]!) as Record<string, unknown>
  t.match(header, { format: 2, kind: 'application' }, 'the point file says its kind')
  const again = await open(dir)
  t.same(again.receiver.recoveryPoints(), r.receiver.recoveryPoints(), 'the same points and kinds after a reopen')
})

t.test('a point file of format 1 (before kinds) is read as crash-consistent', async (t) => {
  const dir = join(t.testdir(), 'replica')
  const { shipments } = cycles(3, 5)
  const r = await open(dir)
  for (const s of shipments) await ship(r, asApplication(s))
  const file = join(dir, 'points', '2.undo')
  const bytes = readFileSync(file)
  const eol = bytes.indexOf(0x0a)
  const { kind: _kind, ...rest } = JSON.parse(bytes.subarray(0, eol).toString('utf8')) as Record<string, unknown>
  const old = { ...rest, format: 1, app_consistent: false }
  writeFileSync(file, Buffer.concat([Buffer.from(JSON.stringify(old)), bytes.subarray(eol)]))
  const again = await open(dir)
  t.same(
    again.receiver.recoveryPoints().map((p) => [p.cycle, p.kind]),
    [
      [1, 'application'],
      [2, 'crash'],
      [3, 'application'],
    ],
  )
})
