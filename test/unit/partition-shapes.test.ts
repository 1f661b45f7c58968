/**
 * partitionShape: who still reaches whom under each shape. isolate cuts one process from
 * all; halves splits every process into two sides; bridge leaves one process on neither
 * side; ring leaves each process exactly its two neighbours; the seed decides the order.
 */
import t from 'tap'
import { partitionShape, type Cut } from '../../scripts/controller/partition-shapes.js'
import { mulberry32 } from '../../shared/seeded-random.js'

const SEVEN = ['array-a', 'array-b', 'host-a1', 'host-a2', 'host-b1', 'host-b2', 'witness']

/** Who each process still reaches once every cut is in place. */
function reach(cuts: Cut[], all: readonly string[]): Map<string, string[]> {
  const cut = new Set(cuts.flatMap((c) => c.a.flatMap((a) => c.b.flatMap((b) => [`${a}|${b}`, `${b}|${a}`]))))
  return new Map(all.map((p) => [p, all.filter((q) => q !== p && !cut.has(`${p}|${q}`))]))
}

t.test('isolate: one process reaches nobody, the others each other', async (t) => {
  const cuts = partitionShape('isolate', SEVEN, Math.random, 'witness')
  const r = reach(cuts, SEVEN)
  t.same(r.get('witness'), [])
  t.equal(r.get('host-a1')!.length, 5)
  t.throws(() => partitionShape('isolate', SEVEN, Math.random, 'host-z9'), {
    code: 'HVLAB_E_USAGE',
    message: /--isolate needs a process of the lab/,
  })
})

t.test('halves: two sides, every process on one, 3 and 4 of 7', async (t) => {
  const [c, ...more] = partitionShape('halves', SEVEN, mulberry32(1))
  t.same(more, [])
  t.same([...c!.a, ...c!.b].sort(), SEVEN)
  t.same([c!.a.length, c!.b.length], [3, 4])
})

t.test('bridge: one process on neither side reaches everyone; the halves reach only their own and it', async (t) => {
  const cuts = partitionShape('bridge', SEVEN, mulberry32(2))
  const r = reach(cuts, SEVEN)
  const bridges = SEVEN.filter((p) => r.get(p)!.length === SEVEN.length - 1)
  t.equal(bridges.length, 1, 'exactly one bridge')
  t.same([cuts[0]!.a.length, cuts[0]!.b.length], [3, 3])
  for (const p of SEVEN.filter((x) => x !== bridges[0])) t.equal(r.get(p)!.length, 3, `${p}: its half (2 others) and the bridge`)
})

t.test('ring: each process reaches exactly its two neighbours', async (t) => {
  const r = reach(partitionShape('ring', SEVEN, mulberry32(3)), SEVEN)
  for (const p of SEVEN) t.equal(r.get(p)!.length, 2, p)
  const walk = [SEVEN[0]!]
  while (walk.length < SEVEN.length) walk.push(r.get(walk.at(-1)!)!.find((q) => !walk.includes(q))!)
  t.ok(r.get(walk.at(-1)!)!.includes(walk[0]!), 'the neighbours close one ring through all seven')
})

t.test('the seed decides the order; too few processes are refused', async (t) => {
  t.same(partitionShape('halves', SEVEN, mulberry32(7)), partitionShape('halves', SEVEN, mulberry32(7)), 'same seed, same halves')
  t.throws(() => partitionShape('bridge', ['a', 'b'], Math.random), { code: 'HVLAB_E_USAGE', message: /at least 3 processes/ })
})
