import t from 'tap'
import { PingTally, formatPingSummary } from '../../scripts/cli/ping-tally.js'

t.test('counts sent, received, lost, gaps and hosts', async (t) => {
  const p = new PingTally()
  for (let s = 0; s < 5; s++) p.sent(s, s * 10)
  t.equal(p.pong(0, 100, 'host-a1', 2), 'new')
  t.equal(p.pong(1, 101, 'host-a1', 12), 'new')
  t.equal(p.pong(3, 102, 'host-a2', 80), 'new') // 2 is late
  t.equal(p.pong(2, 103, 'host-a2', 81), 'new')
  t.equal(p.waiting, 1)
  const s = p.summary()
  t.equal(s.sent, 5)
  t.equal(s.received, 4)
  t.equal(s.lost, 1, 'seq 4 never answered')
  t.equal(s.out_of_order, 1, 'seq 2 came after seq 3')
  t.equal(s.gap_ms_max, 68, 'longest time between consecutive replies')
  t.equal(s.rtt_ms_max, 61, 'seq 2: sent at 20, answered at 81')
  t.same(s.hosts, ['host-a1', 'host-a2'], 'hosts in the order they first answered')
  t.equal(s.value_continuous, true)
  t.equal(s.first_value, 100)
  t.equal(s.last_value, 103)
})

t.test('duplicates, unexpected seqs and unreachable pings', async (t) => {
  const p = new PingTally()
  p.sent(0, 0)
  p.sent(1, 1)
  p.pong(0, 1, 'h', 2)
  t.equal(p.pong(0, 2, 'h', 3), 'duplicate')
  t.equal(p.pong(7, 3, 'h', 3), 'unexpected', 'a seq never sent')
  t.equal(p.unreachable(1, 'no such address'), 'new')
  t.equal(p.unreachable(1, 'no such address'), 'duplicate')
  const s = p.summary()
  t.equal(s.duplicates, 1)
  t.equal(s.received, 1)
  t.equal(s.lost, 1, 'an unreachable ping is lost')
  t.equal(s.unreachable, 1)
  t.same(s.reasons, ['no such address'])
  t.throws(() => p.sent(1, 5), RangeError, 'seqs must rise')
})

t.test('a value that does not rise breaks continuity', async (t) => {
  const p = new PingTally()
  for (let s = 0; s < 4; s++) p.sent(s, s)
  p.pong(0, 10, 'h', 1)
  p.pong(1, 11, 'h', 2)
  p.pong(2, 5, 'h', 3) // went backwards: memory did not move intact
  p.pong(3, 5, 'h', 4) // repeated
  const s = p.summary()
  t.equal(s.value_backwards, 2)
  t.equal(s.value_continuous, false)
  t.match(formatPingSummary('web1', s), /went backwards 2 times/)
})

t.test('the summary reads like ping', async (t) => {
  const p = new PingTally()
  p.sent(0, 0)
  p.sent(1, 10)
  p.pong(0, 1, 'host-a1', 1)
  p.pong(1, 2, 'host-a2', 250)
  const text = formatPingSummary('web1', p.summary())
  t.match(text, /2 sent, 2 received, 0 lost \(0%\), 0 out of order, 0 duplicates/)
  t.match(text, /longest gap between replies 249 ms/)
  t.match(text, /hosts host-a1 → host-a2/)
})
