/** flattenEventDetails: what a host's, the witness's and an array's events look like on the timeline. */
import t from 'tap'
import { flattenEventDetails } from '../../shared/timeline/flatten.js'
import { detailValue } from '../../shared/protocol/runtime-messages.js'

t.test('scalars and short lists stay; nested values become JSON text', async (t) => {
  t.same(flattenEventDetails({ a: 1, b: 'x', c: null, d: ['p', 'q'], e: { n: 1, node: 'h' }, f: false }), {
    a: 1,
    b: 'x',
    c: null,
    d: ['p', 'q'],
    e: '{"n":1,"node":"h"}',
    f: false,
  })
})

t.test('at the limits: JSON text of at most 4096 characters, lists of at most 64 scalars', async (t) => {
  const big = { s: 'x'.repeat(10_000) }
  const out = flattenEventDetails({
    big,
    list64: Array.from({ length: 64 }, (_, i) => i),
    list65: Array.from({ length: 65 }, (_, i) => i),
    nested: [[1]],
    nan: Number.NaN,
    none: undefined,
  })
  t.equal((out.big as string).length, 4096)
  t.same(
    out.list64,
    Array.from({ length: 64 }, (_, i) => i),
  )
  t.equal(out.list65, JSON.stringify(Array.from({ length: 65 }, (_, i) => i)))
  t.equal(out.nested, '[[1]]')
  t.equal(out.nan, 'null')
  t.equal(out.none, null)
  for (const [k, v] of Object.entries(out)) t.ok(detailValue.safeParse(v).success, `${k} is a valid timeline detail`)
})
