/**
 * The cluster's membership, quorum and witness state machines on a simulated network:
 * readable scripted scenarios, then thousands of seeded random fault schedules with
 * the safety invariants checked after every step. A failing seed is printed with the
 * command that reruns it alone (HVLAB_SEED=<seed>, see seed.ts).
 */
import t from 'tap'
import type { ClusterEvent } from '../../shared/consensus/cluster-effects.js'
import { isHvlabError } from '../../shared/errors.js'
import {
  checkSafety,
  convergenceProblem,
  leaseHolders,
  makeLab,
  SIM_CLOCK_SKEW_MS,
  WITNESS_NAME,
  type InvariantState,
  type LabOptions,
} from './cluster-fixture.js'
import { faultyNetwork, type SimNetwork } from './network.js'
import { forEachSeed, seeds } from './seed.js'

const A1 = 'host-a1'
const A2 = 'host-a2'
const B1 = 'host-b1'
const B2 = 'host-b2'
const SITE_A = [A1, A2]
const SITE_B = [B1, B2]
const HOSTS = [A1, A2, B1, B2]

/**
 * A lab whose every step is checked: every message against its schema, and every view
 * decided against the views other hosts decided for the same epoch; throws on the first
 * violation (the lease-overlap check is runChecked's).
 */
function checkedLab(o: LabOptions): SimNetwork {
  const net = makeLab({ ...o, net: { validate_messages: true, ...o.net } })
  watchViews(net, (problem) => {
    throw new Error(problem)
  })
  return net
}

/**
 * Watches every decided view: two different views for one epoch is a broken Paxos. The
 * first problem is kept in `problem`, and `onProblem` (if given) is called with it.
 */
function watchViews(net: SimNetwork, onProblem?: (problem: string) => void): { problem: string | null } {
  const views = new Map<number, string>()
  const watch = { problem: null as string | null }
  net.onEvent = (e: ClusterEvent) => {
    if (e.kind !== 'cluster.view-changed') return
    const d = e.details
    const key = JSON.stringify([d.members, d.voters, d.witness_vote, d.coordinator, d.forced])
    const epoch = d.epoch as number
    const seen = views.get(epoch)
    if (seen === undefined) views.set(epoch, key)
    else if (seen !== key && !watch.problem) {
      watch.problem = `two different views decided for epoch ${epoch} (the second by ${e.source} at ${net.now_ms} ms): ${seen} and ${key}`
      onProblem?.(watch.problem)
    }
  }
  return watch
}

function runChecked(net: SimNetwork, duration_ms: number): void {
  const s: InvariantState = { witness_epoch: 0, witness_db_epoch: 0 }
  net.runFor(duration_ms, (n) => {
    const problem = checkSafety(n, s)
    if (problem) throw new Error(problem)
  })
}

function holders(net: SimNetwork): string[] {
  return leaseHolders(net)
    .map((h) => h.name)
    .sort()
}

t.test('the four hosts and the witness form one cluster and agree on the database', async (t) => {
  const net = checkedLab({ seed: 1 })
  runChecked(net, 5000)
  t.equal(convergenceProblem(net), null)
  t.same(holders(net), [A1, A2, B1, B2])
  const view = net.hosts.get(A1)!.view()
  t.same(view.members, [A1, A2, B1, B2])
  t.equal(view.witness_vote, true, 'four node votes are even: the witness votes')

  net.command(B2, { kind: 'set-config', key: 'vm/web1/owner', value: A1 })
  net.command(A2, { kind: 'pause' })
  runChecked(net, 1000)
  for (const [name, host] of net.hosts) {
    t.equal(host!.database().config['vm/web1/owner'], A1, `${name} has the write`)
    t.equal(host!.database().config[`node/${A2}/state`], 'paused', `${name} sees host-a2 paused`)
  }
  t.ok(net.witnessRecord!.db_epoch >= net.hosts.get(A1)!.database().db_epoch, 'the witness recorded the newest database epoch')
})

t.test('kill a node: the others remove it and keep quorum; it rejoins and catches up', async (t) => {
  const net = checkedLab({ seed: 2 })
  runChecked(net, 5000)
  net.kill(B2)
  runChecked(net, 5000)
  t.equal(convergenceProblem(net), null)
  const view = net.hosts.get(A1)!.view()
  t.same(view.members, [A1, A2, B1])
  t.same(view.voters, [A1, A2, B1], 'dynamic quorum: the dead node lost its vote')
  t.equal(view.witness_vote, false, 'dynamic witness: three node votes are odd')
  net.command(A1, { kind: 'set-config', key: 'while-away', value: 'yes' })
  runChecked(net, 1000)
  net.restart(B2)
  runChecked(net, 5000)
  t.equal(convergenceProblem(net), null)
  t.same(net.hosts.get(B2)!.view().members, [A1, A2, B1, B2])
  t.equal(net.hosts.get(B2)!.database().config['while-away'], 'yes', 'the rejoined node caught up')
})

/** The quorum-lost events of every host but `except`. */
function leaseLosses(net: SimNetwork, except: string): string[] {
  return net.events
    .filter((e) => e.kind === 'cluster.quorum-lost' && e.source !== except)
    .map((e) => `${e.source} ${JSON.stringify(e.details)}`)
}

t.test('lease continuity: killing a member or the coordinator costs the survivors no lease', async (t) => {
  for (const victim of ['member', 'coordinator'] as const) {
    const net = checkedLab({ seed: 11, net: { events_kept_max: 100_000 } })
    runChecked(net, 5000)
    const coordinator = net.hosts.get(A1)!.view().coordinator
    const killed = victim === 'coordinator' ? coordinator : HOSTS.find((h) => h !== coordinator)!
    net.events.length = 0
    net.kill(killed)
    runChecked(net, 5000)
    t.equal(convergenceProblem(net), null, `${victim} killed: one view of the survivors`)
    t.notOk(
      net.hosts
        .get(A1 === killed ? A2 : A1)!
        .view()
        .members.includes(killed),
      `${killed} was removed`,
    )
    t.same(leaseLosses(net, killed), [], `${victim} (${killed}) killed: no survivor lost its lease`)
    const changes = net.events.filter((e) => e.kind === 'cluster.view-changed' && e.details.removed.includes(killed))
    t.ok(changes.length > 0, 'the view change that removed it was announced')
  }
})

// A member takes over once a renewal interval of its lease is left (membership.ts
// takeoverDue), so a coordinator that stalls right before it would renew keeps its view for
// stalls up to a lease less two renewal intervals (400 ms here; 1 s in the default lab).
t.test('a coordinator that stalls for less than a lease less two renewals keeps its view', async (t) => {
  const net = checkedLab({ seed: 12, net: { events_kept_max: 100_000 } })
  runChecked(net, 5000)
  const view = net.hosts.get(A1)!.view()
  net.events.length = 0
  net.pause(view.coordinator, 380) // the sim's lease is 800 ms, renewed every 200 ms
  runChecked(net, 3000)
  t.equal(net.hosts.get(A1)!.view().epoch, view.epoch, 'no view change')
  t.same(leaseLosses(net, ''), [], 'nobody lost the lease')
})

/** Messages that prove their sender alive (membership.ts: a lease request, ack or grant stands in for a heartbeat). */
const LIVENESS_MESSAGES = new Set(['cluster-heartbeat', 'cluster-lease-request', 'cluster-lease-ack', 'cluster-lease-grant'])

/**
 * The liveness messages sent over the next `duration_ms`: between two members, to and from
 * the coordinator; and how many of the coordinator's were heartbeats proper.
 */
function livenessOver(
  net: SimNetwork,
  duration_ms: number,
): { between_members: number; to_coordinator: number; from_coordinator: number; heartbeats_from_coordinator: number } {
  const counts = { between_members: 0, to_coordinator: 0, from_coordinator: 0, heartbeats_from_coordinator: 0 }
  net.onTransmit = (from, to, m) => {
    if (!LIVENESS_MESSAGES.has(m.t) || to === net.witnessName || from === net.witnessName) return
    const coordinator = net.hosts.get(from)?.view().coordinator
    if (from === coordinator && m.t === 'cluster-heartbeat') counts.heartbeats_from_coordinator++
    if (from === coordinator) counts.from_coordinator++
    else if (to === coordinator) counts.to_coordinator++
    else counts.between_members++
  }
  runChecked(net, duration_ms)
  net.onTransmit = null
  return counts
}

t.test('64 hosts in two sites form one cluster, lose a member and the coordinator without a lease gap', async (t) => {
  const sites: Record<string, string> = {}
  for (let i = 1; i <= 32; i++) {
    sites[`host-a${i}`] = 'site-a'
    sites[`host-b${i}`] = 'site-b'
  }
  const net = makeLab({ seed: 64, sites, net: { events_kept_max: 1_000_000 } })
  runChecked(net, 6000)
  t.equal(convergenceProblem(net), null, 'one view of all 64, every host holding the lease')
  const views = new Set(net.events.filter((e) => e.kind === 'cluster.view-changed').map((e) => e.details.epoch))
  t.ok(views.size <= 64, `formation decided ${views.size} views for 64 joining hosts (at most one per host)`)
  const beats = livenessOver(net, 2000)
  const coordinator = net.hosts.get('host-a1')!.view().coordinator
  t.same(beats.between_members, 0, 'steady: members heartbeat their coordinator only, not each other')
  t.ok(beats.to_coordinator > 0 && beats.from_coordinator > 0, `steady: ${coordinator} and its members prove each other alive`)
  // Its lease requests and grants, every renewal interval (200 ms), come more often than
  // its heartbeats are due (100 ms after the last liveness message, on the 100 ms ticks).
  t.equal(beats.heartbeats_from_coordinator, 0, `steady: ${coordinator}'s lease traffic stands in for its heartbeats`)
  for (const victim of ['member', 'coordinator'] as const) {
    const coordinator = net.hosts.get('host-a1')!.view().coordinator
    const killed = victim === 'coordinator' ? coordinator : Object.keys(sites).find((h) => h !== coordinator && net.isAlive(h))!
    net.events.length = 0
    net.kill(killed)
    runChecked(net, 6000)
    t.equal(convergenceProblem(net), null, `${victim} ${killed} killed: one view of the survivors`)
    t.same(leaseLosses(net, killed), [], `${victim} ${killed} killed: no survivor lost its lease`)
  }
})

t.test('site-a cut from site-b, both reach the witness: exactly one side keeps quorum', async (t) => {
  const net = checkedLab({ seed: 3 })
  runChecked(net, 5000)
  net.split([
    [...SITE_A, WITNESS_NAME],
    [...SITE_B, WITNESS_NAME],
  ])
  runChecked(net, 8000)
  const h = holders(net)
  const sideA = h.every((n) => SITE_A.includes(n)) && h.length === 2
  const sideB = h.every((n) => SITE_B.includes(n)) && h.length === 2
  t.ok(sideA !== sideB, `exactly one site holds quorum (holders: ${h.join(',')})`)
  net.heal()
  runChecked(net, 6000)
  t.equal(convergenceProblem(net), null, 'after healing, one view again')
})

function witnessAndHostsLost(dynamic: boolean): string[] {
  const net = checkedLab({ seed: 4, quorum: { dynamic_quorum: dynamic, dynamic_witness: dynamic } })
  runChecked(net, 5000)
  net.kill(WITNESS_NAME)
  runChecked(net, 4000)
  net.kill(B2)
  runChecked(net, 4000)
  net.kill(B1)
  runChecked(net, 6000)
  return holders(net)
}

t.test('witness lost, then hosts b2 and b1 one after the other: kept with dynamic quorum, lost without', async (t) => {
  t.same(witnessAndHostsLost(true), [A1, A2], 'dynamic quorum: votes follow the failures, site-a keeps quorum')
  t.same(witnessAndHostsLost(false), [], 'static votes: 2 of 5 is no quorum')
})

t.test('witness and one of four hosts lost at once: 3 of 5 votes keep quorum either way', async (t) => {
  for (const dynamic of [true, false]) {
    const net = checkedLab({ seed: 5, quorum: { dynamic_quorum: dynamic, dynamic_witness: dynamic } })
    runChecked(net, 5000)
    net.kill(WITNESS_NAME)
    net.kill(B2)
    runChecked(net, 6000)
    t.same(holders(net), [A1, A2, B1], `dynamic=${dynamic}`)
  }
})

t.test('partition in time: a host with an old database cannot form the cluster; forced quorum and prevent quorum', async (t) => {
  const sites = { 'host-a1': 'site-a', 'host-b1': 'site-b' }
  const net = checkedLab({ seed: 6, sites, net: { events_kept_max: 100_000 } })
  runChecked(net, 5000)
  t.same(holders(net), [A1, B1])
  net.kill(B1)
  runChecked(net, 4000)
  t.same(holders(net), [A1], 'host-a1 and the witness carry on')
  net.command(A1, { kind: 'set-config', key: 'written-while-b1-was-down', value: '1' })
  runChecked(net, 1000)
  net.kill(A1)
  net.restart(B1)
  runChecked(net, 8000)
  t.same(holders(net), [], 'host-b1 (old database) cannot form the cluster, even with the witness')
  t.ok(
    net.events.some((e) => e.source === B1 && e.kind === 'cluster.partition-in-time'),
    'and says why',
  )

  net.command(B1, { kind: 'force-quorum' })
  runChecked(net, 1000)
  t.same(holders(net), [B1], 'forced quorum: host-b1 runs the cluster alone')
  net.restart(A1)
  runChecked(net, 6000)
  t.equal(convergenceProblem(net), null)
  t.same(holders(net), [A1, B1], 'host-a1 joined the forced cluster instead of forming its own')
  t.equal(net.hosts.get(A1)!.database().config['written-while-b1-was-down'], undefined, "the forced host's database is authoritative")
})

t.test('leave: the node stops and the others remove it', async (t) => {
  const net = checkedLab({ seed: 7 })
  runChecked(net, 5000)
  net.command(B2, { kind: 'leave' })
  runChecked(net, 4000)
  t.same(holders(net), [A1, A2, B1])
  t.same(net.hosts.get(A1)!.view().members, [A1, A2, B1])
})

t.test('the view check fails a run that decides two different views for one epoch', async (t) => {
  const net = checkedLab({ seed: 8 })
  const decided = (coordinator: string): ClusterEvent =>
    ({
      kind: 'cluster.view-changed',
      source: coordinator,
      details: { epoch: 1, members: [A1, A2, B1], voters: [A1, A2, B1], witness_vote: false, coordinator, forced: false },
    }) as ClusterEvent
  net.onEvent!(decided(A1), net)
  net.onEvent!(decided(A1), net)
  t.pass('the same view learned twice is fine')
  t.throws(() => net.onEvent!(decided(B1), net), { message: /two different views decided for epoch 1/ }, 'a second view for epoch 1 throws')
})

// ---- seeded random fault schedules ------------------------------------------------------

type Fault = (net: SimNetwork, pick: <T>(xs: readonly T[]) => T) => string

const FAULTS: Fault[] = [
  (net) => (
    net.split([
      [A1, A2],
      [B1, B2, WITNESS_NAME],
    ]),
    'halves, witness with site-b'
  ),
  (net) => (
    net.split([
      [A1, A2, WITNESS_NAME],
      [B1, B2],
    ]),
    'halves, witness with site-a'
  ),
  (net) => (
    net.split([
      [A1, A2, WITNESS_NAME],
      [B1, B2, WITNESS_NAME],
    ]),
    'halves, both reach the witness'
  ),
  (net, pick) => {
    const n = pick(HOSTS)
    net.split([HOSTS.filter((h) => h !== n).concat(WITNESS_NAME)])
    return `isolate ${n}`
  },
  (net, pick) => {
    const bridge = pick(HOSTS)
    const others = HOSTS.filter((h) => h !== bridge)
    net.split([
      [bridge, others[0]!, WITNESS_NAME],
      [bridge, others[1]!, others[2]!],
    ])
    return `bridge through ${bridge}`
  },
  (net) => {
    const ring = [A1, A2, B1, B2, WITNESS_NAME]
    net.partition((a, b) => {
      const i = ring.indexOf(a)
      const j = ring.indexOf(b)
      return Math.abs(i - j) === 1 || Math.abs(i - j) === ring.length - 1
    })
    return 'majorities ring'
  },
  (net) => (net.split([HOSTS]), 'witness cut off'),
  (net) => (net.heal(), 'heal'),
  (net, pick) => {
    const n = pick([...HOSTS, WITNESS_NAME])
    net.kill(n)
    return `kill ${n}`
  },
  (net, pick) => {
    const n = pick([...HOSTS, WITNESS_NAME])
    net.restart(n)
    return `restart ${n}`
  },
  (net, pick) => {
    // SIGSTOP: from a short stall to well past a lease (600 ms): the zombie that wakes up.
    const n = pick([...HOSTS, WITNESS_NAME])
    const for_ms = 100 + Math.floor(net.rng() * 1400)
    net.pause(n, for_ms)
    return `pause ${n} for ${for_ms} ms`
  },
  (net, pick) => {
    const n = pick(HOSTS)
    if (!net.isAlive(n)) return `no write (${n} down)`
    try {
      net.command(n, { kind: 'set-config', key: `k${Math.floor(net.rng() * 8)}`, value: String(net.now_ms) })
    } catch (e) {
      // The one refusal expected here: no cluster has formed yet (epoch 0), so there is no
      // database to write to. Anything else (a TypeError in onCommand, say) fails the seed.
      if (isHvlabError(e) && e.code === 'HVLAB_E_STATE' && net.hosts.get(n)!.view().epoch === 0)
        return `write via ${n} refused: no cluster yet`
      throw e
    }
    return `write via ${n}`
  },
]

const QUORUM_VARIANTS: LabOptions['quorum'][] = [
  { model: 'node-and-file-share-majority', dynamic_quorum: true, dynamic_witness: true },
  { model: 'node-and-file-share-majority', dynamic_quorum: false, dynamic_witness: false },
  { model: 'node-majority', dynamic_quorum: true, dynamic_witness: false },
]

interface SeedResult {
  problem: string | null
  schedule: string[]
  steps: number
}

function runSeed(seed: number): SeedResult {
  const quorum = QUORUM_VARIANTS[seed % QUORUM_VARIANTS.length]
  const net = makeLab({
    seed,
    quorum,
    witness: true,
    net: faultyNetwork(SIM_CLOCK_SKEW_MS),
  })
  const views = watchViews(net)
  const s: InvariantState = { witness_epoch: 0, witness_db_epoch: 0 }
  const schedule: string[] = [`quorum ${JSON.stringify(quorum)}`]
  let problem: string | null = null
  const check = (n: SimNetwork): void => {
    if (!problem) problem = checkSafety(n, s) ?? views.problem
  }
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(net.rng() * xs.length)]!
  const faults_until_ms = 8_000
  while (net.now_ms < faults_until_ms && !problem) {
    net.runFor(300 + Math.floor(net.rng() * 1500), check)
    try {
      schedule.push(`${net.now_ms} ms: ${pick(FAULTS)(net, pick)}`)
    } catch (e) {
      problem = `a fault at ${net.now_ms} ms threw ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`
    }
  }
  // Faults stop: heal, restart everything, no more loss or spikes.
  net.heal()
  for (const n of net.allNames()) net.restart(n)
  net.options.loss_probability = 0
  net.options.spike_probability = 0
  schedule.push(`${net.now_ms} ms: faults stop`)
  if (!problem) net.runFor(10_000, check)
  if (!problem) {
    const c = convergenceProblem(net)
    if (c) problem = `did not converge 10 s after faults stopped: ${c}`
  }
  return { problem, schedule, steps: net.steps }
}

const SEEDS = seeds(import.meta.url, { base: 1, count: 2000 })

t.test('seeded random partitions, kills, restarts and delays keep the invariants', async (t) => {
  let steps = 0
  const { runs, failures } = await forEachSeed(t, SEEDS, (seed) => {
    const r = runSeed(seed)
    steps += r.steps
    return { problem: r.problem, report: `schedule:\n  ${r.schedule.join('\n  ')}` }
  })
  t.equal(failures, 0, `${runs} seeds, ${steps} steps checked`)
})

t.test('a lease request without the database: voted on by a member that holds its epoch, a catch-up from one that does not', async (t) => {
  const net = makeLab({ seed: 7 })
  runChecked(net, 6000)
  t.equal(convergenceProblem(net), null, 'one view, every host leased')
  const coordinator = net.hosts.get(A1)!.view().coordinator
  const member = [...net.hosts.keys()].find((h) => h !== coordinator && net.isAlive(h))!
  const m = net.hosts.get(member)!
  const { view, db } = m.record()
  const now_ms = net.localNow(member)
  const request = (db_epoch: number, round: number) => ({
    kind: 'message' as const,
    message: { t: 'cluster-lease-request' as const, from: coordinator, epoch: view.epoch, round, started_ms: now_ms, db_epoch, db: null },
  })
  const sent = (fx: ReturnType<typeof m.step>) => fx.flatMap((e) => (e.kind === 'send' ? [e.message] : []))

  const held = sent(m.step(request(db.db_epoch, 10_000), now_ms))
  t.match(held, [{ t: 'cluster-lease-ack', round: 10_000, vote: true }], 'it holds that epoch: a vote, the database kept')
  t.equal(m.record().db, db, 'the same database object: nothing was replaced')

  const ahead = sent(m.step(request(db.db_epoch + 1, 10_001), now_ms + 200))
  t.same(
    ahead.map((x) => x.t),
    ['cluster-catch-up'],
    'a newer epoch it does not hold: no vote (it cannot vote for what it lacks), it asks to catch up',
  )
  t.equal(m.record().db.db_epoch, db.db_epoch, 'its database is unchanged')

  const mismatched = {
    kind: 'message' as const,
    message: { ...request(db.db_epoch, 10_002).message, db: { ...db, db_epoch: db.db_epoch + 1 } },
  }
  t.same(sent(m.step(mismatched, now_ms + 400)), [], 'a request whose database disagrees with its db_epoch is ignored')
})
