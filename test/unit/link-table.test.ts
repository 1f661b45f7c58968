/**
 * LinkTable: what each process is told. The sender of a shaped direction shapes it; the
 * receiver of a cut direction is deaf; both ends of a cut make no new connection; a clear
 * setting removes its row; bad values are refused and change nothing.
 */
import t from 'tap'
import { LinkTable, topologyNetwork } from '../../scripts/controller/link-table.js'
import { loadTopology, parseTopology } from '../../shared/topology.js'

const shaping = { latency_ms: 40, jitter_ms: 5, mbit: 100, loss: 0.01 }
const clear = { latency_ms: 0, jitter_ms: 0, mbit: 0, loss: 0 }

t.test('each end is told its own part of a link', async (t) => {
  const table = new LinkTable()
  table.shape(['a1'], ['b1', 'b2'], shaping)
  table.cut(['b1'], ['a1'])
  t.same(table.faultsFor('a1', ['b1', 'b2']), [
    { peer: 'b1', ...shaping, deaf: true, no_new_connections: true },
    { peer: 'b2', ...shaping, deaf: false, no_new_connections: false },
  ])
  t.same(
    table.faultsFor('b1', ['a1']),
    [{ peer: 'a1', ...clear, deaf: false, no_new_connections: true }],
    'b1 sends a1 nothing that arrives; it shapes nothing',
  )
  t.same(table.faultsFor('b2', ['a1']), [], 'b2 only receives shaped frames: nothing to apply')
  t.same(table.faultsFor('c9', ['a1']), [], 'a process no fault touches')
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

t.test("the topology's network lies under the faults: wan between sites, lan within one; clear() returns to it", async (t) => {
  const wan = { latency_ms: 20, jitter_ms: 0, mbit: 100, loss: 0 }
  const site: Record<string, string> = { a1: 'a', a2: 'a', b1: 'b' }
  const table = new LinkTable((from, to) => (site[from] === site[to] ? clear : wan))
  t.same(table.faultsFor('a1', ['a2', 'b1']), [{ peer: 'b1', ...wan, deaf: false, no_new_connections: false }], 'a clear lan is no fault')
  table.shape(['a1'], ['b1'], clear)
  t.same(table.faultsFor('a1', ['b1']), [], 'a clear link set over the wan')
  t.same(
    table.faultsFor('b1', ['a1']),
    [{ peer: 'a1', ...wan, deaf: false, no_new_connections: false }],
    'the other direction keeps the wan',
  )
  table.shape(['a1'], ['b1'], wan)
  t.same(table.list(), [], 'shaping the same as the network under it is no fault')
  table.shape(['a1'], ['b1'], shaping)
  table.clear()
  t.same(table.faultsFor('a1', ['b1']), [{ peer: 'b1', ...wan, deaf: false, no_new_connections: false }], 'heal: back to the wan')
})

t.test("topologyNetwork: a topology's wan between its sites, its lan within one, clear where it sets none", async (t) => {
  const raw = { ...loadTopology(), network: { wan: { latency_ms: 20, mbit: 100 } } }
  const network = topologyNetwork(parseTopology(raw))
  t.same(network('host-a1', 'host-b1'), { latency_ms: 20, jitter_ms: 0, mbit: 100, loss: 0 }, 'across sites: the wan')
  t.same(network('host-a1', 'witness'), { latency_ms: 20, jitter_ms: 0, mbit: 100, loss: 0 }, 'the witness in its own site too')
  t.same(network('host-a1', 'array-a'), clear, 'within a site: no lan set, clear')
  t.same(topologyNetwork(loadTopology())('host-a1', 'host-b1'), clear, 'the default lab: clear links')
})

t.test('bad values are refused and change nothing', async (t) => {
  const table = new LinkTable()
  for (const bad of [{ loss: 0.6 }, { mbit: -1 }, { latency_ms: Number.NaN }, { jitter_ms: 10_001 }]) {
    t.throws(() => table.shape(['a1'], ['b1'], { ...shaping, ...bad }), { code: 'HVLAB_E_USAGE' }, JSON.stringify(bad))
  }
  t.same(table.list(), [])
})
