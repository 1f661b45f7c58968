/**
 * Quorum with real processes: dynamic quorum against static votes, forced quorum, and a
 * hung guest. One VM per host (each host the first preferred owner of one).
 *
 * Why the failures are sequential: with 4 nodes + the witness there are 5 votes and 3
 * are needed, so losing the witness and one host AT ONCE leaves 3 of 5 — a quorum with or
 * without dynamic quorum (test/sim/cluster.test.ts checks exactly that). Dynamic quorum
 * (WSFC 2012+) makes the difference when failures come one after the other: after each
 * one the votes are recomputed from the members that are left. So both labs lose the
 * witness, then host-b2, then host-b1:
 *   - dynamic quorum + dynamic witness (the default lab): witness gone (4 of 5 still) →
 *     host-b2 gone: the view of 3 nodes has 3 votes, the witness none (odd) → host-b1
 *     gone: 2 nodes are even, so the witness vote is back (3 votes) and 2 of them are
 *     present: site-a KEEPS quorum and runs every VM.
 *   - static votes (test/lab/fixtures/two-site-static.json): 5 votes throughout; after
 *     the witness and host-b2, 3 of 5 still hold; after host-b1, 2 of 5: quorum is LOST,
 *     host-a1 and host-a2 stop their VMs (role.stopped-no-quorum). `hvlab cluster
 *     force-quorum host-a1` brings the cluster up (forced) and the VMs start again; when
 *     the witness, host-b1 and host-b2 come back — 3 of the old 5 votes, a majority of the
 *     old configuration — they join the forced cluster instead of forming their own
 *     (prevent quorum), and once the nodes' own votes make a quorum it is no longer forced.
 * The default lab also proves `hvlab vm hang`: the hung guest fails LooksAlive, then
 * IsAlive, and the VM is restarted on its node with a fresh start op.
 */
import t from 'tap'
import { fileURLToPath } from 'node:url'
import { EPOCHS_PER_GENERATION } from '../../shared/consensus/epoch-generation.js'
import { clusterStatusNow } from '../../scripts/cli/cluster-commands.js'
import { referenceHost } from '../../scripts/cli/format.js'
import type { LabClusterStatus } from '../../scripts/controller/lab-controller.js'
import type { VmRoleRecord } from '../../shared/protocol/cluster-messages.js'
import { startLab, type HostVm, type LabEvent, type TestLab } from './lab-fixture.js'

const HOSTS = ['host-a1', 'host-a2', 'host-b1', 'host-b2']
const VM_OF: Record<string, string> = { 'host-a1': 'vm-a1', 'host-a2': 'vm-a2', 'host-b1': 'vm-b1', 'host-b2': 'vm-b2' }
const VMS = Object.values(VM_OF)
const STATIC_TOPOLOGY = fileURLToPath(new URL('./fixtures/two-site-static.json', import.meta.url))
const WAIT_MS = 90_000

type TestHandle = Pick<typeof t, 'equal' | 'ok' | 'same' | 'comment' | 'match' | 'not'>
type Inventories = Record<string, HostVm[]>

/** `hvlab cluster status` text once it matches `re` (the last text if it never does, for the assertion to show). */
async function cliText(lab: TestLab, re: RegExp): Promise<string> {
  let last = ''
  try {
    return await lab.waitFor(
      `cluster status text matching ${re}`,
      async () => {
        last = (await lab.cli('cluster', 'status')).stdout
        return re.test(last) ? last : undefined
      },
      30_000,
    )
  } catch {
    // waitFor throws only its timeout (a probe's error is kept for that message): the
    // caller's assertion then shows the last text seen.
    return last
  }
}

/** The cluster status as `hvlab cluster status --json` prints it, asked in-process (no CLI spawn per poll). */
const clusterStatus = (lab: TestLab): Promise<LabClusterStatus> => clusterStatusNow(lab.control())

/** Every host of `members` holds the lease in one view of exactly `members`. */
async function heldBy(lab: TestLab, members: string[]): Promise<LabClusterStatus | undefined> {
  const s = await clusterStatus(lab)
  const views = members.map((h) => s.hosts[h])
  if (views.some((v) => !v?.holds_lease || v.members.join(',') !== members.join(','))) return undefined
  return new Set(views.map((v) => v!.epoch)).size === 1 ? s : undefined
}

/** Every VM running on one of `on`, as `vm list` and the hosts themselves agree. */
async function allRunningOn(lab: TestLab, on: string[]): Promise<Inventories | undefined> {
  const list = await lab.vmList()
  if (list.source !== 'coordinator' || list.roles.length !== VMS.length) return undefined
  if (!list.roles.every((r) => r.state === 'running' && r.owner !== null && on.includes(r.owner))) return undefined
  const inv = await lab.inventories()
  return list.roles.every((r) => inv[r.owner!]?.some((v) => v.role === r.name)) ? inv : undefined
}

async function createVms(t: TestHandle, lab: TestLab): Promise<Inventories> {
  await lab.waitFor('the cluster to form', () => heldBy(lab, HOSTS), WAIT_MS)
  for (const [host, vm] of Object.entries(VM_OF)) {
    const c = await lab.cli('vm', 'create', vm, '--preferred', [host, ...HOSTS.filter((h) => h !== host)].join(','))
    t.equal(c.code, 0, `create ${vm}: ${c.stderr}`)
    t.equal((await lab.cli('vm', 'start', vm)).code, 0, `start ${vm}`)
  }
  return lab.waitFor(
    'every vm running on its home host',
    async () => {
      const inv = await allRunningOn(lab, HOSTS)
      return inv && HOSTS.every((h) => inv[h]?.some((v) => v.role === VM_OF[h])) ? inv : undefined
    },
    WAIT_MS,
  )
}

async function kill(t: TestHandle, lab: TestLab, name: string): Promise<void> {
  t.equal((await lab.cli('kill', name)).code, 0, `kill -9 ${name}`)
  await lab.waitFor(
    `${name} down`,
    async () => ((await lab.status()).processes.find((p) => p.name === name)?.state === 'down' ? true : undefined),
    WAIT_MS,
  )
}

const lastSeq = async (lab: TestLab): Promise<number> => (await lab.events()).at(-1)?.seq ?? 0

t.test(
  'dynamic quorum (default lab): a hung guest is restarted; witness, then host-b2, then host-b1 die and site-a keeps quorum',
  async (t) => {
    const { lab } = await startLab(t)
    const home = await createVms(t, lab)

    // 1. guest hang: LooksAlive, then IsAlive fail; the VM is restarted on its node (a fresh start op)
    const op0 = home['host-a1']!.find((v) => v.role === 'vm-a1')!.op
    const seq0 = await lastSeq(lab)
    const hang = await lab.cli('vm', 'hang', 'vm-a1')
    t.equal(hang.code, 0, `vm hang: ${hang.stderr}`)
    t.match(hang.stdout, /vm vm-a1 on host-a1: the guest hangs until released or restarted/)
    const restarted = await lab.waitFor(
      'vm-a1 restarted on host-a1 by its health check',
      async () => {
        const events = (await lab.events()).filter((e) => e.seq > seq0)
        const failed = events.find((e) => e.kind === 'role.health-failed' && e.details.role === 'vm-a1')
        const started = events.find((e) => e.kind === 'vm.started' && e.source === 'host-a1' && e.details.vm === 'vm-a1')
        if (!failed || !started) return undefined
        const now = (await lab.inventories())['host-a1']?.find((v) => v.role === 'vm-a1')
        return now && now.op > op0 && now.guest_heartbeats > 0 ? { events, now } : undefined
      },
      120_000,
    )
    const kinds = restarted.events.filter((e) => JSON.stringify(e.details).includes('vm-a1')).map((e) => e.kind)
    const order = ['vm.guest-hung', 'role.health-suspect', 'role.health-failed', 'role.failure', 'vm.stopped', 'vm.started']
    t.same(
      order.map((k) => kinds.indexOf(k) >= 0),
      order.map(() => true),
      `timeline: ${order.join(' → ')} (got ${kinds.join(', ')})`,
    )
    t.same(
      order.map((k) => kinds.indexOf(k)),
      [...order.map((k) => kinds.indexOf(k))].sort((a, b) => a - b),
      'in that order',
    )
    const failure = restarted.events.find((e) => e.kind === 'role.failure' && e.details.role === 'vm-a1')
    t.equal(failure?.details.action, 'restart', 'the failover policy restarts it in place first')
    t.ok(restarted.now.op > op0, `a fresh start op (${op0} -> ${restarted.now.op}), and its guest beats again`)
    // a hang can also be released by hand
    t.equal((await lab.cli('vm', 'hang', 'vm-a2')).code, 0)
    const release = await lab.cli('vm', 'hang', 'vm-a2', '--release')
    t.equal(release.code, 0, `vm hang --release: ${release.stderr}`)
    t.match(release.stdout, /vm vm-a2 on host-a2: the guest answers its heartbeat again/)
    const both = await lab.cli('vm', 'hang', 'vm-a2', '--release', '--for-ms', '100')
    t.not(both.code, 0, 'both --for-ms and --release is refused')
    t.match(both.stderr, /either --for-ms or --release/)

    // 2. the witness dies: four node votes of five remain
    const before = await lab.inventories()
    const seq1 = await lastSeq(lab)
    await kill(t, lab, 'witness')
    // 3. then host-b2: the three left recompute the votes (3 nodes, odd: the witness has none)
    await kill(t, lab, 'host-b2')
    const three = await lab.waitFor('a1, a2, b1 holding quorum', () => heldBy(lab, ['host-a1', 'host-a2', 'host-b1']), WAIT_MS)
    const a1 = three.hosts['host-a1']!
    t.match(
      a1,
      { votes_total: 3, votes_present: 3, votes_needed: 2, witness: { votes: false } },
      'dynamic quorum: 3 of 3 votes, 2 needed; dynamic witness: no witness vote',
    )
    // the text through the real CLI; a view change right after the probe may show a moment without quorum, so wait for it
    const text = await cliText(lab, /quorum: HELD by [a-z0-9,-]+; votes present 3 of 3, needed 2/)
    t.match(text, /quorum: HELD by [a-z0-9,-]+; votes present 3 of 3, needed 2/, '`cluster status` shows votes present/needed')
    await lab.waitFor('vm-b2 running on a survivor', () => allRunningOn(lab, ['host-a1', 'host-a2', 'host-b1']), WAIT_MS)
    // 4. then host-b1: two nodes are even, so the witness vote comes back; 2 of 3 present
    await kill(t, lab, 'host-b1')
    const two = await lab.waitFor('a1, a2 holding quorum', () => heldBy(lab, ['host-a1', 'host-a2']), WAIT_MS)
    t.match(
      two.hosts['host-a1']!,
      { votes_total: 3, votes_present: 2, votes_needed: 2, voters: ['host-a1', 'host-a2'] },
      'two node votes and the (dead) witness: 2 of 3 present, quorum kept',
    )
    const after = await lab.waitFor('every vm running in site-a', () => allRunningOn(lab, ['host-a1', 'host-a2']), WAIT_MS)
    for (const host of ['host-a1', 'host-a2']) {
      for (const vm of before[host] ?? []) {
        t.equal(after[host]?.find((v) => v.role === vm.role)?.op, vm.op, `${vm.role} kept running on ${host} (same start op)`)
      }
    }
    const restartedVm = (vm: string) => (e: LabEvent) => e.kind === 'vm.started' && e.details.vm === vm
    const events = await lab.eventsAfter(seq1, (evs) => evs.some(restartedVm('vm-b2')) && evs.some(restartedVm('vm-b1')))
    t.same(
      events.filter((e) => e.kind === 'role.stopped-no-quorum').map((e) => e.source),
      [],
      'no survivor stopped its vms for lack of quorum',
    )
    t.ok(events.some(restartedVm('vm-b2')), 'vm-b2 was restarted on a survivor')
    t.ok(events.some(restartedVm('vm-b1')), 'vm-b1 was restarted on a survivor')
  },
)

t.test('static votes: witness, then host-b2, then host-b1 die → quorum lost; force-quorum; the others join (prevent quorum)', async (t) => {
  const { lab } = await startLab(t, { topology: STATIC_TOPOLOGY })
  await createVms(t, lab)
  const formed = await clusterStatus(lab)
  t.match(formed.hosts['host-a1']!, { dynamic_quorum: false, dynamic_witness: false, votes_total: 5, votes_needed: 3 })

  await kill(t, lab, 'witness')
  await kill(t, lab, 'host-b2')
  // (right after the view change a host may still count the dead witness as reachable for a moment: wait for 3 present)
  const three = await lab.waitFor(
    'a1, a2, b1 holding quorum with 3 votes present',
    async () => {
      const s = await heldBy(lab, ['host-a1', 'host-a2', 'host-b1'])
      return s?.hosts['host-a1']?.votes_present === 3 ? s : undefined
    },
    WAIT_MS,
  )
  t.match(
    three.hosts['host-a1']!,
    { votes_total: 5, votes_present: 3, votes_needed: 3 },
    'the witness and one host of four lost: 3 of 5 votes still hold',
  )
  await lab.waitFor('vm-b2 running on a survivor', () => allRunningOn(lab, ['host-a1', 'host-a2', 'host-b1']), WAIT_MS)

  // host-b1 too: 2 of 5 votes. Quorum is lost and the survivors stop their VMs.
  const seq = await lastSeq(lab)
  await kill(t, lab, 'host-b1')
  // (site-a loses its lease 2 s after host-b1's death and stops its VMs 250 ms later; it
  // declares host-b1 down only after 20 missed cross-site heartbeats, 5 s: wait for both)
  const lost = await lab.waitFor(
    'no host holding quorum, host-b1 counted absent and site-a running no vm',
    async () => {
      const s = await clusterStatus(lab)
      if (['host-a1', 'host-a2'].some((h) => !s.hosts[h] || s.hosts[h]!.holds_lease)) return undefined
      // as the last view's coordinator counts (the CLI's reference host): a member judges only its coordinator
      if (referenceHost(s)?.votes_present !== 2) return undefined
      const inv = await lab.inventories()
      return ['host-a1', 'host-a2'].every((h) => inv[h] !== undefined && inv[h]!.length === 0) ? s : undefined
    },
    WAIT_MS,
  )
  t.match(referenceHost(lost), { votes_total: 5, votes_present: 2, votes_needed: 3 }, 'static votes: 2 of 5 present, 3 needed')
  const stoppedBy = (evs: LabEvent[]) => evs.filter((e) => e.kind === 'role.stopped-no-quorum').map((e) => e.source)
  const stopped = stoppedBy(await lab.eventsAfter(seq, (evs) => ['host-a1', 'host-a2'].every((h) => stoppedBy(evs).includes(h))))
  t.ok(
    stopped.includes('host-a1') && stopped.includes('host-a2'),
    `both survivors stopped their vms for lack of quorum (${stopped.join(',')})`,
  )
  const text = await cliText(lab, /quorum: NOT HELD by no host; votes present 2 of 5, needed 3/)
  t.match(text, /quorum: NOT HELD by no host; votes present 2 of 5, needed 3/, '`cluster status` says so')

  // forced quorum on host-a1: the cluster runs again (forced), host-a2 joins, the VMs start again
  const force = await lab.cli('cluster', 'force-quorum', 'host-a1')
  t.equal(force.code, 0, `force-quorum: ${force.stderr}`)
  const forced = await lab.waitFor('a forced cluster of a1, a2', () => heldBy(lab, ['host-a1', 'host-a2']), WAIT_MS)
  const fv = forced.hosts['host-a1']!
  t.ok(fv.forced, 'the view is forced while the nodes hold 2 of 5 votes')
  t.ok(fv.epoch >= EPOCHS_PER_GENERATION, `a new generation of epochs (${fv.epoch})`)
  t.match(
    await cliText(lab, /\(FORCED\)[\s\S]*quorum: HELD by [a-z0-9,-]+; votes present 1 of 1, needed 1/),
    /\(FORCED\)[\s\S]*quorum: HELD by [a-z0-9,-]+; votes present 1 of 1, needed 1/,
    '`cluster status` shows the forced quorum',
  )
  await lab.waitFor('every vm running again in site-a', () => allRunningOn(lab, ['host-a1', 'host-a2']), WAIT_MS)

  // the witness, host-b1 and host-b2 come back: 3 of the OLD 5 votes, yet they join the forced cluster
  const seqForce = await lastSeq(lab)
  for (const name of ['witness', 'host-b1', 'host-b2']) t.equal((await lab.cli('restart', name)).code, 0, `restart ${name}`)
  const back = await lab.waitFor('all four in one cluster', () => heldBy(lab, HOSTS), WAIT_MS * 2)
  const bv = back.hosts['host-b1']!
  t.ok(bv.epoch > fv.epoch, `host-b1 joined the forced cluster's generation (${bv.epoch} > ${fv.epoch})`)
  t.notOk(bv.forced, 'all four back: normal quorum again, no longer forced')
  t.match(bv, { votes_total: 5, votes_needed: 3 })
  const events = (await lab.events()).filter((e) => e.seq > seqForce)
  // (a restarted host may catch up to an old view it missed, but no newer one of the old generation may be decided, and no lease held in one)
  const oldEpoch = three.hosts['host-a1']!.epoch
  const oldGeneration = events.filter((e) => {
    const epoch = typeof e.details.epoch === 'number' ? e.details.epoch : null
    if (epoch === null || epoch >= fv.epoch) return false
    return e.kind === 'cluster.quorum-gained' || (e.kind === 'cluster.view-changed' && epoch > oldEpoch)
  })
  t.same(
    oldGeneration.map((e) => `${e.source} ${e.kind} ${String(e.details.epoch)}`),
    [],
    'prevent quorum: no new view or quorum of the old generation after the force',
  )
  t.same(
    events.filter((e) => e.kind === 'cluster.forced-quorum').map((e) => e.source),
    [],
    'nobody else forced anything',
  )
  await lab.waitFor('every vm running', () => allRunningOn(lab, HOSTS), WAIT_MS)
})
