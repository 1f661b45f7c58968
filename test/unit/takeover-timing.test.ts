import t from 'tap'
import { HeartbeatDetector } from '../../agent/cluster/heartbeat-detector.js'
import { newElection, quorumStillPossible } from '../../agent/cluster/view-election.js'

t.test('silentFor: time since the last message, Infinity after a leave', async (t) => {
  const sites = new Map([
    ['a', 's1'],
    ['b', 's1'],
  ])
  const d = new HeartbeatDetector(
    'a',
    sites,
    { same_site_interval_ms: 100, same_site_missed_max: 5, cross_site_interval_ms: 100, cross_site_missed_max: 5 },
    1000,
  )
  t.equal(d.silentFor('b', 1000), 0, 'counted from start')
  d.heard('b', 1200)
  t.equal(d.silentFor('b', 1450), 250)
  t.equal(d.silentFor('b', 1100), 0, 'never negative')
  d.markDown('b')
  t.equal(d.silentFor('b', 1500), Infinity)
})

t.test('quorumStillPossible: false once the voters that could still answer cannot make a quorum', async (t) => {
  const ballot = { n: 1, node: 'a' }
  const e = newElection(2, ballot, { voters: ['a', 'b', 'c'], witness_vote: true }, new Set(['a', 'b', 'w']), 0, 100, 1000)
  t.ok(quorumStillPossible(e, 'w'), 'a, b and the witness may still answer')
  e.refused.add('b')
  t.ok(quorumStillPossible(e, 'w') === false, 'a and w are 2 of 4 votes: no quorum; c is not expected (silent)')
  e.promises.set('c', { t: 'cluster-promise', from: 'c', slot: 2, ballot, accepted: null, db_epoch: 0, db: null, leases_until_ms: 0 })
  t.ok(quorumStillPossible(e, 'w'), 'a late promise from c counts')
})
