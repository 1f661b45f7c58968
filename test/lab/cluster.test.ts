/**
 * The failover cluster with real processes: the default lab forms one cluster with the
 * witness; a kill -9 of a host is detected and the survivors agree on a new view; the
 * host rejoins after a restart; cutting site-a from site-b (both still reach the
 * witness) leaves exactly one side with quorum; the witness keeps its epochs across a
 * kill -9; and a restart of the whole lab comes back with the same cluster (records on disk).
 */
import t from 'tap'
import type { LabClusterStatus } from '../../scripts/controller/lab-controller.js'
import { runCli, startLab, type LabEvent, type TestLab } from './lab-fixture.js'

const HOSTS = ['host-a1', 'host-a2', 'host-b1', 'host-b2']
const FORM_TIMEOUT_MS = 60_000

const clusterStatus = (lab: TestLab): Promise<LabClusterStatus> => lab.clusterStatus()

/** Every host named answers, holds the lease, and all are in one view of exactly `members`. */
function formedWith(s: LabClusterStatus, members: string[]): boolean {
  const views = members.map((n) => s.hosts[n])
  if (views.some((v) => !v || !v.holds_lease)) return false
  const epoch = views[0]!.epoch
  return views.every((v) => v!.epoch === epoch && v!.members.join(',') === members.join(','))
}

const waitFormed = (lab: TestLab, members: string[], what: string): Promise<LabClusterStatus> =>
  lab.waitFor(
    what,
    async () => {
      const s = await clusterStatus(lab)
      return formedWith(s, members) ? s : undefined
    },
    FORM_TIMEOUT_MS,
  )

t.test('cluster: form, kill -9 a host, rejoin, site partition, witness restart, whole-lab restart', async (t) => {
  const { lab } = await startLab(t)

  // 1. one cluster of four hosts with the witness voting (four node votes are even)
  const formed = await waitFormed(lab, HOSTS, 'the four hosts to form a cluster')
  const a1 = formed.hosts['host-a1']!
  t.equal(a1.model, 'node-and-file-share-majority')
  t.equal(a1.votes_total, 5, 'four node votes and the witness')
  t.equal(a1.votes_needed, 3)
  t.same(
    a1.nodes.map((n) => n.state),
    ['Up', 'Up', 'Up', 'Up'],
  )
  t.ok(a1.witness?.votes && a1.witness.reachable, 'the witness votes and is reachable')
  // A host whose promise reached the coordinator after the first view formed joins in the
  // next one (it shows Joining meanwhile): read the CLI once the view has settled.
  const text = await lab.waitFor(
    '`hvlab status` with the quorum held',
    async () => {
      const r = await lab.cli('status')
      return /quorum: HELD/.test(r.stdout) && /host-b2\s+site-b\s+Up\s+1\s+1\s+yes/.test(r.stdout) ? r : undefined
    },
    FORM_TIMEOUT_MS,
  )
  t.match(text.stdout, /quorum: HELD/, '`hvlab status` shows the quorum')
  t.match(
    text.stdout,
    /host-b2\s+site-b\s+Up\s+1\s+1\s+yes/,
    '`hvlab status` shows each node: state, vote (NodeWeight), whether it counts (DynamicWeight), quorum',
  )
  const human = await lab.cli('cluster', 'status')
  t.match(human.stdout, /votes present 5 of 5, needed 3/)

  // 2. kill -9 a host: detected, the survivors agree on a view without it
  const before = (await lab.events()).at(-1)!.seq
  t.equal((await lab.cli('kill', 'host-b2')).code, 0)
  const three = ['host-a1', 'host-a2', 'host-b1']
  const after = await waitFormed(lab, three, 'a view without host-b2')
  t.ok(after.hosts['host-a1']!.epoch > a1.epoch, 'a newer epoch')
  t.equal(after.hosts['host-a1']!.nodes.find((n) => n.name === 'host-b2')?.state, 'Down', 'host-b2 shown Down')
  const nodeDown = (e: LabEvent) => e.kind === 'cluster.node-down' && e.details.node === 'host-b2'
  const viewChanged = (e: LabEvent) => e.kind === 'cluster.view-changed' && (e.details.removed as string[]).includes('host-b2')
  const events = await lab.eventsAfter(before, (evs) => evs.some(nodeDown) && evs.some(viewChanged))
  t.ok(events.some(nodeDown), 'timeline: host-b2 detected down')
  t.ok(events.some(viewChanged), 'timeline: view changed without host-b2')

  // 3. it restarts from its record and rejoins with the same database
  t.equal((await lab.cli('restart', 'host-b2')).code, 0)
  const rejoined = await waitFormed(lab, HOSTS, 'host-b2 to rejoin')
  const dbs = new Set(HOSTS.map((h) => rejoined.hosts[h]!.db_epoch))
  t.equal(dbs.size, 1, 'every host has the same cluster database')
  const restored = (e: LabEvent) => e.kind === 'cluster.node-restored' && e.source === 'host-b2'
  t.ok((await lab.eventsAfter(before, (evs) => evs.some(restored))).some(restored), 'host-b2 restored its record')

  // 4. cut site-a from site-b: both reach the witness; exactly one side keeps quorum
  t.equal((await lab.cli('partition', 'site-a', 'site-b')).code, 0)
  const split = await lab.waitFor(
    'one side to hold quorum alone',
    async () => {
      const s = await clusterStatus(lab)
      const holders = HOSTS.filter((h) => s.hosts[h]?.holds_lease)
      const sites = new Set(holders.map((h) => h.slice(0, 6)))
      return holders.length === 2 && sites.size === 1 && formedWith(s, holders) ? { s, holders } : undefined
    },
    FORM_TIMEOUT_MS,
  )
  t.equal(split.holders.length, 2, `one site keeps quorum: ${split.holders.join(',')}`)
  // it stays that way: the other side never gets quorum while cut off
  for (let i = 0; i < 5; i++) {
    const s = await clusterStatus(lab)
    const holders = HOSTS.filter((h) => s.hosts[h]?.holds_lease)
    t.ok(
      holders.every((h) => split.holders.includes(h)),
      `no host of the cut-off side holds quorum (check ${i + 1})`,
    )
    await new Promise((r) => setTimeout(r, 500))
  }
  t.equal((await lab.cli('heal')).code, 0)
  const healed = await waitFormed(lab, HOSTS, 'all four together after heal')

  // 5. the witness survives kill -9 with its epochs
  // (the controller refreshes the witness's part of the status about every second)
  const witnessBefore = await lab.waitFor(
    'the witness to report the newest epoch',
    async () => {
      const w = (await lab.status()).cluster?.witness
      return w && w.committed_epoch >= healed.hosts['host-a1']!.epoch ? w : undefined
    },
    30_000,
  )
  t.ok(witnessBefore.committed_epoch >= healed.hosts['host-a1']!.epoch, 'the witness recorded the newest epoch')
  t.equal((await lab.cli('kill', 'witness')).code, 0)
  await lab.waitFor('witness down', async () =>
    (await lab.status()).processes.find((p) => p.name === 'witness')!.state === 'down' ? true : undefined,
  )
  t.equal((await lab.cli('restart', 'witness')).code, 0)
  const witnessAfter = await lab.waitFor('witness status back', async () => {
    const w = (await lab.status()).cluster?.witness
    return w && (await lab.status()).processes.find((p) => p.name === 'witness')!.state === 'up' ? w : undefined
  })
  t.ok(witnessAfter.committed_epoch >= witnessBefore!.committed_epoch, 'witness epoch not lost')
  t.ok(witnessAfter.db_epoch >= witnessBefore!.db_epoch, 'witness database epoch not lost')

  // 6. restart the whole lab: the cluster comes back from its records, not from scratch
  const lastEpoch = (await waitFormed(lab, HOSTS, 'cluster before restart')).hosts['host-a1']!.epoch
  t.equal((await lab.cli('down')).code, 0)
  const up = await runCli(['up', '--detach', '--dir', lab.dir])
  t.equal(up.code, 0, `lab up again: ${up.stderr}`)
  const back = await waitFormed(lab, HOSTS, 'the cluster after a full restart')
  // From its records, not from scratch: the last view (all members back) or a newer one, never an older one.
  t.ok(
    lastEpoch > 0 && back.hosts['host-a1']!.epoch >= lastEpoch,
    `the cluster resumes at its last epoch or later (${lastEpoch} -> ${back.hosts['host-a1']!.epoch})`,
  )
  t.same(
    await lab.protocolRefusals(),
    [],
    "no process refused a peer's frame, through the restarts of a host, the witness and the whole lab",
  )
})
