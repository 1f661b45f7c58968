/**
 * The Replica Broker's handover of a replica from one primary to the next
 * (agent/replica/primary-handover.ts): a VM that moved goes on without a resync only from a
 * clean end of the move just before its own, at the cycle the replica applied; anything
 * else — no end yet, an end of another move, a replica resyncing or failed over, a cycle
 * applied since — waits (while it may) or takes over with a resync. An end is kept only
 * from the primary replicating now, at the cycle applied.
 */
import t from 'tap'
import { judgeBegin, judgeEnd, type ReplicaStanding } from '../../agent/replica/primary-handover.js'

/** web1 replicated from host-a1, which ended cleanly at cycle 7 when the VM had moved twice. */
const ended: ReplicaStanding = { from: 'host-a1', applied_cycle: 7, steady: true, ended: { from: 'host-a1', cycle: 7, moves: 2 } }
const open: ReplicaStanding = { ...ended, ended: null }

t.test('the next move goes on from a clean end at the cycle applied', async (t) => {
  t.equal(judgeBegin(ended, { from: 'host-a2', arrived: { moves: 3, wait: true } }), 'continue')
  t.equal(judgeBegin(ended, { from: 'host-a2', arrived: { moves: 3, wait: false } }), 'continue', 'also once it may not wait any more')
  t.equal(
    judgeBegin({ ...ended, from: 'host-a2' }, { from: 'host-a2', arrived: { moves: 3, wait: true } }),
    'continue',
    'again, when its first begin went through but the answer was lost: nothing was applied from it since',
  )
})

t.test('anything but a clean end of the move just before is a take-over (a resync)', async (t) => {
  t.equal(judgeBegin(ended, { from: 'host-a2' }), 'take-over', 'a VM started afresh (a failover after a crash), not moved')
  t.equal(judgeBegin(ended, { from: 'host-a2', arrived: { moves: 4, wait: true } }), 'take-over', 'a host ran the VM in between')
  t.equal(judgeBegin(ended, { from: 'host-a1', arrived: { moves: 2, wait: true } }), 'take-over', 'the same move again (no move at all)')
  t.equal(
    judgeBegin({ ...ended, applied_cycle: 8 }, { from: 'host-a2', arrived: { moves: 3, wait: true } }),
    'take-over',
    'a cycle applied since',
  )
  t.equal(
    judgeBegin({ ...ended, steady: false }, { from: 'host-a2', arrived: { moves: 3, wait: true } }),
    'take-over',
    'resyncing or failed over',
  )
})

t.test('while the previous primary has not ended, a moved VM waits for it as long as it may, then takes over', async (t) => {
  t.equal(judgeBegin(open, { from: 'host-a2', arrived: { moves: 3, wait: true } }), 'wait')
  t.equal(judgeBegin(open, { from: 'host-a2', arrived: { moves: 3, wait: false } }), 'take-over', 'its wait is over: a resync')
  t.equal(
    judgeBegin(open, { from: 'host-a1', arrived: { moves: 3, wait: true } }),
    'take-over',
    'it is the primary itself: nothing to wait for',
  )
  t.equal(
    judgeBegin({ ...open, steady: false }, { from: 'host-a2', arrived: { moves: 3, wait: true } }),
    'take-over',
    'a resync under way never ends cleanly',
  )
  t.equal(judgeBegin(open, { from: 'host-a2' }), 'take-over', 'a VM that did not move never waits')
  const went_on = { ...ended, from: 'host-a2', applied_cycle: 9 } // host-a2 went on from host-a1's end and applied cycles 8 and 9
  t.equal(
    judgeBegin(went_on, { from: 'host-a1', arrived: { moves: 4, wait: true } }),
    'wait',
    "moved back: host-a1's own end of before is not host-a2's",
  )
})

t.test('an end is kept only from the primary replicating now, at the cycle the replica applied, while it stands still', async (t) => {
  const end = { from: 'host-a1', cycle: 7, moves: 2 }
  t.same(judgeEnd(open, end), { ended: end })
  t.match(judgeEnd({ ...open, from: 'host-a2' }, end), { refused: /replicated from host-a2 now, not from host-a1/ }, 'another took it over')
  t.match(judgeEnd({ ...open, applied_cycle: 6 }, end), { refused: /applied cycle 6, not 7/ }, 'its last cycle is not applied')
  t.match(judgeEnd({ ...open, steady: false }, end), { refused: /resynchronised or has failed over/ })
})
