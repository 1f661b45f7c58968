/**
 * Which fault a lost acknowledged write goes to (scripts/soak/loss-attribution.ts): the
 * first fault not yet healed when it was acknowledged — during a fault's hold, that fault;
 * in the quiet after a heal, the next one; after the last heal, none; a fault never healed
 * takes everything after its start. Allowed losses and violations are counted apart.
 */
import t from 'tap'
import { blamedFault, lossByFault, type FaultWindow } from '../../scripts/soak/loss-attribution.js'

const FAULTS: FaultWindow[] = [
  { id: 1, start_ms: 10_000, heal_ms: 20_000 },
  { id: 2, start_ms: 30_000, heal_ms: 40_000 },
]

t.test('the fault in progress at the acknowledgement, else the next to start', async (t) => {
  t.equal(blamedFault(FAULTS, 5_000), 1, 'before any fault: the first (its failover could take it)')
  t.equal(blamedFault(FAULTS, 10_000), 1, 'at its start')
  t.equal(blamedFault(FAULTS, 20_000), 1, 'at its heal')
  t.equal(blamedFault(FAULTS, 25_000), 2, 'in the quiet after a heal: the next fault')
  t.equal(blamedFault(FAULTS, 35_000), 2)
  t.equal(blamedFault(FAULTS, 45_000), null, 'after the last heal: no fault')
  t.equal(blamedFault([{ id: 7, start_ms: 10_000, heal_ms: null }], 99_000), 7, 'a fault never healed stays open')
  t.equal(blamedFault([FAULTS[1]!, FAULTS[0]!], 5_000), 1, 'by start, whatever the order given')
})

t.test('losses per fault: writes and bytes, allowed apart from violations', async (t) => {
  const byFault = lossByFault(FAULTS, [
    { acked_ms: 12_000, bytes: 4096, allowed: false },
    { acked_ms: 15_000, bytes: 4096, allowed: true },
    { acked_ms: 16_000, bytes: 4096, allowed: true },
    { acked_ms: 26_000, bytes: 4096, allowed: false },
    { acked_ms: 50_000, bytes: 4096, allowed: false },
  ])
  t.same(byFault.get(1), { writes_lost: 1, bytes_lost: 4096, writes_lost_allowed: 2, bytes_lost_allowed: 8192 })
  t.same(byFault.get(2), { writes_lost: 1, bytes_lost: 4096, writes_lost_allowed: 0, bytes_lost_allowed: 0 })
  t.equal([...byFault.keys()].length, 2, "the loss after the last heal is no fault's")
})
