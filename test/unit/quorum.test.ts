import t from 'tap'
import { computeVotes, forcedVotes, hasQuorum, totalVotes, votesNeeded, type QuorumSettings } from '../../agent/cluster/quorum.js'

const NODES = ['host-a1', 'host-a2', 'host-b1', 'host-b2']
const W = 'witness-c'
const fsm = (dynamic: boolean): QuorumSettings => ({
  model: 'node-and-file-share-majority',
  dynamic_quorum: dynamic,
  dynamic_witness: dynamic,
  nodes: NODES,
})
const nm = (dynamic: boolean): QuorumSettings => ({ model: 'node-majority', dynamic_quorum: dynamic, dynamic_witness: false, nodes: NODES })
const set = (...xs: string[]) => new Set(xs)

t.test('node and file share majority: four nodes and the witness, five votes', async (t) => {
  const v = computeVotes(NODES, fsm(true))
  t.same(v, { voters: NODES, witness_vote: true })
  t.equal(totalVotes(v), 5)
  t.equal(votesNeeded(v), 3)
  t.ok(hasQuorum(v, set('host-a1', 'host-a2', W), W), 'one site and the witness')
  t.notOk(hasQuorum(v, set('host-a1', 'host-a2'), W), 'one site alone')
  t.notOk(hasQuorum(v, set('host-b1', 'host-b2'), W), 'the other site alone')
})

t.test('dynamic witness: the witness votes only when node votes are even', async (t) => {
  t.same(computeVotes(['host-a1', 'host-a2', 'host-b1'], fsm(true)), { voters: ['host-a1', 'host-a2', 'host-b1'], witness_vote: false })
  t.same(computeVotes(['host-a1', 'host-a2'], fsm(true)), { voters: ['host-a1', 'host-a2'], witness_vote: true })
  t.same(computeVotes(['host-a1'], fsm(true)), { voters: ['host-a1'], witness_vote: false }, 'down to the last node')
})

t.test('static votes ignore who is a member', async (t) => {
  const v = computeVotes(['host-a1', 'host-a2'], fsm(false))
  t.same(v, { voters: NODES, witness_vote: true })
  t.notOk(hasQuorum(v, set('host-a1', 'host-a2'), W), '2 of 5 is no quorum')
})

t.test('dynamic quorum with node majority removes a tie-breaker vote when even', async (t) => {
  t.same(computeVotes(NODES, nm(true)).voters, ['host-a1', 'host-a2', 'host-b1'])
  const two = computeVotes(['host-a1', 'host-b1'], nm(true))
  t.same(two, { voters: ['host-a1'], witness_vote: false })
  t.ok(hasQuorum(two, set('host-a1'), W), 'a 50/50 split has one winner')
  t.notOk(hasQuorum(two, set('host-b1'), W))
  t.same(computeVotes(NODES, nm(false)).voters, NODES, 'static node majority keeps all four')
  t.notOk(hasQuorum(computeVotes(NODES, nm(false)), set('host-a1', 'host-a2'), W), 'a 2/2 split: nobody')
})

t.test('zero-weight nodes never vote', async (t) => {
  const v = computeVotes(NODES, { ...fsm(true), zero_weight_nodes: ['host-b2'] })
  t.same(v, { voters: ['host-a1', 'host-a2', 'host-b1'], witness_vote: false })
})

t.test('forced quorum and empty votes', async (t) => {
  t.same(forcedVotes('host-b1'), { voters: ['host-b1'], witness_vote: false })
  t.ok(hasQuorum(forcedVotes('host-b1'), set('host-b1'), W))
  t.notOk(hasQuorum({ voters: [], witness_vote: false }, set('host-a1', W), W), 'no votes, no quorum')
  t.notOk(hasQuorum(computeVotes(NODES, fsm(true)), set('stranger', 'other'), W), 'non-voters count for nothing')
})
