/**
 * LinkTable: what each process is told. The sender of a shaped direction shapes it; the
 * receiver of a cut direction is deaf; both ends of a cut make no new connection; a clear
 * setting removes its row; bad values are refused and change nothing.
 */
import t from 'tap'
import { LinkTable } from '../../scripts/controller/link-table.js'

const shaping = { latency_ms: 40, jitter_ms: 5, mbit: 100, loss: 0.01 }
const clear = { latency_ms: 0, jitter_ms: 0, mbit: 0, loss: 0 }

t.test('each end is told its own part of a link', async (t) => {
  const table = new LinkTable()
  table.shape(['a1'], ['b1', 'b2'], shaping)
  table.cut(['b1'], ['a1'])
  t.same(table.faultsFor('a1'), [
    { peer: 'b1', ...shaping, deaf: true, no_new_connections: true },
    { peer: 'b2', ...shaping, deaf: false, no_new_connections: false },
  ])
  t.same(
    table.faultsFor('b1'),
    [{ peer: 'a1', ...clear, deaf: false, no_new_connections: true }],
    'b1 sends a1 nothing that arrives; it shapes nothing',
  )
  t.same(table.faultsFor('b2'), [{ peer: 'a1', ...clear, deaf: false, no_new_connections: false }], 'b2 only receives shaped frames')
  t.same(table.faultsFor('c9'), [], 'a process no fault touches')
})

t.test('a clear setting removes its rows; a process is never linked to itself; clear() empties the table', async (t) => {
  const table = new LinkTable()
  table.shape(['a1', 'a2'], ['a1', 'b1'], shaping)
  t.same(
    table.list().map((r) => `${r.from}>${r.to}`),
    ['a1>b1', 'a2>a1', 'a2>b1'],
  )
  table.shape(['a2'], ['a1', 'b1'], clear)
  t.same(
    table.list().map((r) => `${r.from}>${r.to}`),
    ['a1>b1'],
  )
  table.cut(['a1'], ['b1'])
  table.shape(['a1'], ['b1'], clear)
  t.match(table.list(), [{ from: 'a1', to: 'b1', cut: true, latency_ms: 0 }], 'clearing the shaping keeps the cut')
  table.clear()
  t.same(table.list(), [])
})

t.test('bad values are refused and change nothing', async (t) => {
  const table = new LinkTable()
  for (const bad of [{ loss: 0.6 }, { mbit: -1 }, { latency_ms: Number.NaN }, { jitter_ms: 10_001 }]) {
    t.throws(() => table.shape(['a1'], ['b1'], { ...shaping, ...bad }), { code: 'HVLAB_E_USAGE' }, JSON.stringify(bad))
  }
  t.same(table.list(), [])
})
