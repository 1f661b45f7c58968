/**
 * writeProblems on hand-made histories: the last acknowledged write must be there (or a
 * later one in doubt); an older one is a lost write, data no write put there is invented,
 * a block never written holds zeros; a write whose loss the configuration allows is
 * reported and forgiven, never the one before it (async-replication.test.ts has the RPO).
 */
import t from 'tap'
import { isViolation, writeProblems, type WriteRecord } from '../../scripts/soak/write-history.js'

const ZERO = 'zero'
const final = (entries: [number, string][]): Map<number, string> => new Map(entries)

t.test('the last acknowledged write, or a later one in doubt: no problem', async (t) => {
  const writes: WriteRecord[] = [
    { block: 0, value: 'w1', acked: true },
    { block: 0, value: 'w2', acked: true },
    { block: 0, value: 'w3', acked: false },
    { block: 1, value: 'w4', acked: false },
  ]
  t.same(
    writeProblems(
      writes,
      final([
        [0, 'w2'],
        [1, ZERO],
        [2, ZERO],
      ]),
      ZERO,
    ),
    [],
    'in doubt and absent',
  )
  t.same(
    writeProblems(
      writes,
      final([
        [0, 'w3'],
        [1, 'w4'],
      ]),
      ZERO,
    ),
    [],
    'in doubt and present',
  )
})

t.test('one lost write, one invented block, one never written that is not zeros', async (t) => {
  const writes: WriteRecord[] = [
    { block: 0, value: 'w1', acked: true },
    { block: 0, value: 'w2', acked: true },
    { block: 1, value: 'w3', acked: true },
  ]
  const problems = writeProblems(
    writes,
    final([
      [0, 'w1'],
      [1, 'zz'],
      [2, 'w3'],
      [3, ZERO],
    ]),
    ZERO,
  )
  t.same(problems, [
    { kind: 'lost', block: 0, lost: 'w2', holds: 'w1' },
    { kind: 'invented', block: 1, holds: 'zz' },
    { kind: 'invented', block: 2, holds: 'w3' },
  ])
  t.ok(problems.every(isViolation))
  t.same(
    writeProblems(writes, final([[1, ZERO]]), ZERO),
    [{ kind: 'lost', block: 1, lost: 'w3', holds: ZERO }],
    'zeros where a write was acknowledged',
  )
})

t.test('a write whose loss the configuration allows (one copy only, within an RPO) may be lost; the one before it may not', async (t) => {
  const writes: WriteRecord[] = [
    { block: 0, value: 'synced', acked: true },
    { block: 0, value: 'one-copy', acked: true, loss_allowed: true },
  ]
  const allowed = writeProblems(writes, final([[0, 'synced']]), ZERO)
  t.same(allowed, [{ kind: 'lost-allowed', block: 0, lost: 'one-copy', holds: 'synced' }])
  t.notOk(allowed.some(isViolation))
  t.same(
    writeProblems(writes, final([[0, ZERO]]), ZERO),
    [{ kind: 'lost', block: 0, lost: 'synced', holds: ZERO }],
    'the synced one must be there',
  )
})
