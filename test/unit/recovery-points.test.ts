/**
 * Recovery points (agent/replica/recovery-points.ts) against a model: a disk written by
 * seeded cycles, a point taken after some of them; returning to any kept point gives back
 * exactly the disk as it was then; the oldest beyond the limit is merged away; a resync
 * clears them.
 */
import t from 'tap'
import { RecoveryPoints } from '../../agent/replica/recovery-points.js'
import { mulberry32 } from '../../shared/seeded-random.js'

const BLOCKS = 32
const BS = 4

/** The replica disk: applies writes through the recovery points, as the replica server does. */
function replica(points: RecoveryPoints) {
  const disk: Uint8Array[] = Array.from({ length: BLOCKS }, () => new Uint8Array(BS))
  return {
    disk,
    write(block: number, data: Uint8Array) {
      points.beforeWrite(block, disk[block]!)
      disk[block] = data
    },
    snapshot: () => disk.map((b) => Array.from(b)),
  }
}

t.test('returning to any kept point gives back the disk as it was then', async (t) => {
  const rand = mulberry32(7)
  const points = new RecoveryPoints(5)
  const r = replica(points)
  const seen = new Map<number, number[][]>()
  for (let cycle = 1; cycle <= 12; cycle++) {
    for (let i = 0; i < 10; i++) r.write(Math.floor(rand() * BLOCKS), new Uint8Array(BS).fill(Math.floor(rand() * 256)))
    if (cycle % 2 === 0) {
      points.take({ cycle, at_ms: cycle * 1000, kind: cycle % 4 === 0 ? 'application' : 'crash' })
      seen.set(cycle, r.snapshot())
    }
  }
  t.same(
    points.list().map((p) => p.cycle),
    [4, 6, 8, 10, 12],
    'five kept: the oldest merged away',
  )
  t.same(
    points.list().map((p) => p.kind),
    ['application', 'crash', 'application', 'crash', 'application'],
  )
  for (const p of points.list()) {
    const back = r.snapshot()
    for (const [block, data] of points.revertTo(p.cycle)) back[block] = Array.from(data)
    t.same(back, seen.get(p.cycle), `point of cycle ${p.cycle}`)
  }
  t.equal(points.atOrBefore(9_500)?.cycle, 8)
  t.equal(points.atOrBefore(100), undefined)
  t.throws(() => points.revertTo(2), /no recovery point at cycle 2; the replica has 4, 6, 8, 10, 12/)
  t.throws(() => points.take({ cycle: 12, at_ms: 0, kind: 'crash' }), /not after the last one/)
  points.clear()
  t.same(points.list(), [], 'cleared by a resync')
})

t.test(
  'it says what changed, for the store to keep: the undo entry kept, the points merged away; restore starts from points read back',
  async (t) => {
    const points = new RecoveryPoints(2)
    t.equal(points.beforeWrite(1, Uint8Array.of(1, 1, 1, 1)), null, 'no point yet: nothing kept')
    t.same(points.take({ cycle: 1, at_ms: 1000, kind: 'crash' }), [])
    t.same(points.beforeWrite(1, Uint8Array.of(2, 2, 2, 2)), { cycle: 1, block: 1, data: Uint8Array.of(2, 2, 2, 2) })
    t.equal(points.beforeWrite(1, Uint8Array.of(3, 3, 3, 3)), null, 'once a point: a later overwrite keeps nothing')
    t.same(points.take({ cycle: 2, at_ms: 2000, kind: 'crash' }), [])
    t.same(points.take({ cycle: 3, at_ms: 3000, kind: 'crash' }), [1], 'the oldest merged away')
    const restored = new RecoveryPoints(2)
    t.same(
      restored.restore([
        { cycle: 1, at_ms: 1000, kind: 'crash', undo: new Map([[1, Uint8Array.of(2, 2, 2, 2)]]) },
        { cycle: 2, at_ms: 2000, kind: 'crash', undo: new Map([[1, Uint8Array.of(4, 4, 4, 4)]]) },
        { cycle: 3, at_ms: 3000, kind: 'application', undo: new Map() },
      ]),
      [1],
      'beyond the limit on restore: merged away too',
    )
    t.same(restored.revertTo(2), new Map([[1, Uint8Array.of(4, 4, 4, 4)]]))
    t.same(new RecoveryPoints(0).take({ cycle: 1, at_ms: 0, kind: 'crash' }), [], 'none kept, none merged')
  },
)

t.test('a block overwritten many times after a point keeps its content at the point', async (t) => {
  const points = new RecoveryPoints(2)
  const r = replica(points)
  r.write(3, new Uint8Array(BS).fill(1))
  points.take({ cycle: 1, at_ms: 0, kind: 'crash' })
  for (let v = 2; v < 10; v++) r.write(3, new Uint8Array(BS).fill(v))
  t.same(Array.from(points.revertTo(1).get(3)!), [1, 1, 1, 1])
  t.same(new RecoveryPoints(0).list(), [], 'none kept')
  t.throws(() => new RecoveryPoints(25), /from 0 to 24/)
})
