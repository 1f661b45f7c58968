/**
 * Forced quorum with static votes (dynamic quorum and witness off), on the simulated
 * network of test/sim: the witness, then host-b2, then host-b1 die one after the other;
 * site-a (2 of 5 votes) loses quorum. `force-quorum` on host-a1 brings the cluster up,
 * and it stays forced while host-a2 joins (WSFC leaves ForceQuorum only once the nodes'
 * own votes make a quorum). Prevent quorum: when the witness, host-b1 and host-b2 come
 * back — 3 of the old 5 votes, a majority of the old configuration — they join the forced
 * cluster and never decide a view of their own. The safety invariants are checked after
 * every step. Seeded (three seeds in CI); HVLAB_SEED=<seed> reruns one (test/sim/seed.ts).
 */
import t from 'tap'
import type { ClusterEvent } from '../../shared/consensus/cluster-effects.js'
import { EPOCHS_PER_GENERATION } from '../../shared/consensus/epoch-generation.js'
import { checkSafety, convergenceProblem, leaseHolders, makeLab, WITNESS_NAME, type InvariantState } from '../sim/cluster-fixture.js'
import type { SimNetwork } from '../sim/network.js'
import { seeds } from '../sim/seed.js'

const [A1, A2, B1, B2] = ['host-a1', 'host-a2', 'host-b1', 'host-b2'] as const

function run(net: SimNetwork, duration_ms: number, s: InvariantState): void {
  net.runFor(duration_ms, (n) => {
    const problem = checkSafety(n, s)
    if (problem) throw new Error(problem)
  })
}

const holders = (net: SimNetwork): string[] =>
  leaseHolders(net)
    .map((h) => h.name)
    .sort()

for (const seed of seeds(import.meta.url, [11, 12, 13]).list) {
  t.test(`static votes: lost after sequential failures, forced on host-a1, others join it (seed ${seed})`, async (t) => {
    const net = makeLab({ seed, quorum: { dynamic_quorum: false, dynamic_witness: false }, net: { validate_messages: true } })
    const views: Extract<ClusterEvent, { kind: 'cluster.view-changed' }>[] = []
    net.onEvent = (e) => {
      if (e.kind === 'cluster.view-changed') views.push(e)
    }
    const s: InvariantState = { witness_epoch: 0, witness_db_epoch: 0 }
    run(net, 5000, s)
    t.same(holders(net), [A1, A2, B1, B2])
    net.kill(WITNESS_NAME)
    run(net, 4000, s)
    net.kill(B2)
    run(net, 4000, s)
    t.same(holders(net), [A1, A2, B1], 'witness + one host down: 3 of 5 votes still hold quorum')
    net.kill(B1)
    run(net, 6000, s)
    t.same(holders(net), [], 'then host-b1: 2 of 5 votes, no quorum')

    net.command(A1, { kind: 'force-quorum' })
    run(net, 6000, s)
    const forced = net.hosts.get(A1)!.view()
    t.same(holders(net), [A1, A2], 'forced quorum: host-a1 runs the cluster, host-a2 joined it')
    t.match(forced, { members: [A1, A2], voters: [A1], forced: true }, 'the view stays forced while the joined nodes hold 2 of 5 votes')
    t.ok(forced.epoch >= EPOCHS_PER_GENERATION, 'a new generation of epochs')

    const seen = views.length
    const oldNewest = Math.max(...views.map((e) => e.details.epoch as number).filter((epoch) => epoch < forced.epoch))
    net.restart(WITNESS_NAME)
    net.restart(B1)
    net.restart(B2)
    const oldLeases: string[] = []
    net.runFor(10_000, (n) => {
      const problem = checkSafety(n, s)
      if (problem) throw new Error(problem)
      for (const h of leaseHolders(n)) if (h.epoch < forced.epoch) oldLeases.push(`${h.name}@${h.epoch}`)
    })
    t.same(oldLeases, [], 'prevent quorum: no host of the old generation held quorum, though together they have 3 of its 5 votes')
    t.equal(convergenceProblem(net), null, 'one cluster again')
    const after = net.hosts.get(B1)!.view()
    t.match(after, { members: [A1, A2, B1, B2], forced: false }, 'all four back: normal quorum, no longer forced')
    t.equal(after.voters.length, 4, 'static votes again')
    t.equal(after.witness_vote, true)
    // (a restarted host may still catch up to an old view it missed; none newer than before the force may appear)
    const older = views.slice(seen).filter((e) => (e.details.epoch as number) > oldNewest && (e.details.epoch as number) < forced.epoch)
    t.same(
      older.map((e) => e.details.epoch),
      [],
      'prevent quorum: no new view of the old generation was decided after the force',
    )
  })
}

t.test('dynamic votes: forcing is not needed, the same failures keep quorum', async (t) => {
  const net = makeLab({ seed: 14, quorum: { dynamic_quorum: true, dynamic_witness: true } })
  const s: InvariantState = { witness_epoch: 0, witness_db_epoch: 0 }
  run(net, 5000, s)
  for (const victim of [WITNESS_NAME, B2, B1]) {
    net.kill(victim)
    run(net, 5000, s)
  }
  t.same(holders(net), [A1, A2])
  t.match(net.hosts.get(A1)!.view(), { members: [A1, A2], forced: false })
})
