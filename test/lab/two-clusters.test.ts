/**
 * Two failover clusters in one lab (test/lab/fixtures/two-cluster-fast.json): `main` (host-a1,
 * host-a2, witness-a) and `dr` (host-dr1, host-dr2, witness-dr, array-dr). Each forms with its
 * own witness; `hvlab --cluster dr …` addresses dr (a CSV on its array, a VM with two disks
 * there), the default stays main, and an unknown cluster is a usage error. A host of main
 * reaches dr's hosts (Replica between clusters) but not dr's witness or array (and dr takes no
 * command from it: test/unit/topology-clusters.test.ts). A dr host killed: its VM fails over
 * within dr, and main does not notice. Replica from main to dr (`replica enable web1 --to
 * cluster:dr`): refused until dr's broker allows main; then dr keeps web1's replica as a
 * stopped role on its CSV (it does not start it), placed by its broker; replication follows
 * web1 through a live migration in main, and once caught up dr's replica is web1's two
 * disks byte for byte. A planned failover to dr (refused until main's broker takes the
 * changes back) loses nothing, dr runs web1 replicating back into main's volumes (nothing
 * differs), and a planned failover back returns it to main, its settings with it. Then web2
 * replicates to dr with recovery points (`replica status` names the member of dr holding it,
 * from either cluster); main's hosts are killed, and an unplanned failover (refused while
 * main ran it) starts web2 in dr from a recovery point, exactly as it was; main's hosts come
 * back and stop their older copy; dr replicates web2 back into it, sending only what differs.
 */
import { fileURLToPath } from 'node:url'
import t, { type Test } from 'tap'
import type { VmRoleRecord } from '../../shared/protocol/cluster-messages.js'
import { startLab, type TestLab } from './lab-fixture.js'

const TOPOLOGY = fileURLToPath(new URL('./fixtures/two-cluster-fast.json', import.meta.url))
/** A VM's disk: 16 MiB of 4 KiB blocks. */
const DISK_BLOCKS = 4096

/** The SHA-256 of each 256 blocks of a CSV region, read through `host`. */
async function regionHashes(lab: TestLab, host: string, csv: string, region: string): Promise<string[]> {
  const out: string[] = []
  for (let block = 0; block < DISK_BLOCKS; block += 256) {
    const r = await lab.control().request(host, { t: 'csv-read-request', csv, region, block, blocks: 256 }, 'csv-io-reply', 10_000)
    out.push(r.sha256 ?? '')
  }
  return out
}

/** `replica enable VM --to cluster:dr`, every 30 s, keeping 4 recovery points. */
const replicateToDr = (lab: TestLab, vm: string) =>
  lab.cli('replica', 'enable', vm, '--to', 'cluster:dr', '--frequency', '30s', '--recovery-points', '4', '--timeout-s', '60')

/** `vm`'s replica as `host` (a member of dr) holds it. */
async function replicaOn(lab: TestLab, host: string, vm: string) {
  const r = await lab.control().request(host, { t: 'replica-status-request', vm }, 'replica-status-reply', 10_000)
  return r.replicas.find((x) => x.vm === vm)
}

interface StatusView {
  vm: string
  primary_host: string | null
  to: string
  replica_host?: string | null
  replica: { recovery_points: { cycle: number }[] } | null
}

interface VmListView {
  source: string
  roles: VmRoleRecord[]
}

t.test('two clusters: each its own quorum, witness and roles; --cluster picks one; neither commands the other', async (t) => {
  const { lab, status } = await startLab(t, { topology: TOPOLOGY })
  t.equal(status.lab.clusterFormed, true, 'both clusters formed')
  t.match(status.cluster, { name: 'main', witness: { vote_holder: /^host-a[12]$/ } })
  t.match(status.clusters, [{ name: 'dr', witness: { vote_holder: /^host-dr[12]$/ } }])
  t.same(Object.keys(status.cluster!.hosts).sort(), ['host-a1', 'host-a2'])
  t.same(Object.keys(status.clusters![0]!.hosts).sort(), ['host-dr1', 'host-dr2'])
  const a1 = status.processes.find((p) => p.name === 'host-a1')!
  t.match(a1, { cluster: 'main' })
  t.ok(a1.expectedPeers.includes('host-dr1'), "main's hosts reach dr's (Replica between clusters)")
  t.notOk(a1.expectedPeers.includes('witness-dr') || a1.expectedPeers.includes('array-dr'), "but not dr's witness or its array")
  const text = await lab.cli('status')
  t.match(text.stdout, /cluster main: node-and-file-share-majority[\s\S]*cluster dr: node-and-file-share-majority/)

  const emptyDr = await lab.cli('--cluster', 'dr', 'vm', 'list')
  t.match(emptyDr.stdout, /no vms yet; create one with `hvlab --cluster dr vm create NAME --preferred HOST,…`/, "a hint for dr's own hosts")

  // dr: a CSV on its own array, a VM with two disks on it
  const csv = await lab.cli('--cluster', 'dr', 'csv', 'create', 'v1', '--array', 'array-dr')
  t.equal(csv.code, 0, `csv create in dr: ${csv.stderr}`)
  const created = await lab.cli(
    '--cluster',
    'dr',
    'vm',
    'create',
    'db1',
    '--storage',
    'csv:v1',
    '--disks',
    '2',
    '--preferred',
    'host-dr2,host-dr1',
  )
  t.equal(created.code, 0, `vm create in dr: ${created.stderr}`)
  t.equal((await lab.cli('--cluster', 'dr', 'vm', 'start', 'db1')).code, 0)
  t.equal((await lab.cli('--cluster', 'dr', 'vm', 'load', 'db1', '--disk-iops', '10')).code, 0)
  const inDr = await lab.json<VmListView>('--cluster', 'dr', 'vm', 'list')
  t.match(inDr.roles, [{ name: 'db1', state: 'running', owner: 'host-dr2' }], "dr's coordinator runs it")
  t.same((await lab.json<VmListView>('vm', 'list')).roles, [], 'main has no such role: the default is the first cluster')
  const onMain = await lab.cli('csv', 'create', 'v2', '--array', 'array-dr')
  t.not(onMain.code, 0, "main cannot put a CSV on dr's array")
  const nope = await lab.cli('--cluster', 'nope', 'vm', 'list')
  t.equal(nope.code, 2, 'an unknown cluster is a usage error')
  t.match(nope.stderr, /--cluster nope: this lab has no failover cluster of that name \(its clusters: main, dr\)/)

  // Replica from main to dr: web1 on a CSV of main, its replica on dr's CSV, placed by dr's broker
  t.equal((await lab.cli('csv', 'create', 'va', '--array', 'array-a')).code, 0)
  t.equal((await lab.cli('vm', 'create', 'web1', '--storage', 'csv:va', '--disks', '2', '--preferred', 'host-a1,host-a2')).code, 0)
  t.equal((await lab.cli('vm', 'start', 'web1')).code, 0)
  t.equal((await lab.cli('vm', 'load', 'web1', '--disk-iops', '20')).code, 0)
  const noBroker = await lab.cli('replica', 'enable', 'web1', '--to', 'cluster:dr')
  t.equal(noBroker.code, 1, 'refused while dr is no replica server')
  t.match(noBroker.stderr, /hvlab --cluster dr replica server enable cluster --allow main first; nothing was changed/)
  const broker = await lab.cli('--cluster', 'dr', 'replica', 'server', 'enable', 'cluster', '--allow', 'main', '--storage', 'csv:v1')
  t.equal(broker.code, 0, `dr's broker: ${broker.stderr}`)
  t.equal((await lab.cli('replica', 'enable', 'web1', '--to', 'cluster:nope')).code, 1, 'an unknown cluster')
  const enabled = await replicateToDr(lab, 'web1')
  t.equal(enabled.code, 0, `replica enable --to cluster:dr: ${enabled.stderr}`)
  t.match(
    enabled.stdout,
    /vm web1 replicates from cluster main \(host-a1\) to cluster dr every 30 s, into its own volume\(s\) on host-dr[12] \(placed by dr's Replica Broker\); the initial replication is done/,
  )
  const replicaRole = (await lab.json<VmListView>('--cluster', 'dr', 'vm', 'list')).roles.find((r) => r.name === 'web1')!
  t.match(replicaRole, { state: 'stopped', replication: { to: 'main', to_cluster: true } }, "dr keeps web1's replica as a stopped role")
  const startThere = await lab.cli('--cluster', 'dr', 'vm', 'start', 'web1')
  t.equal(startThere.code, 1, 'dr does not start it: it runs in main')
  t.match(
    startThere.stderr,
    /cannot start vm web1: it runs in cluster main, and this cluster holds its replica \(on host-dr[12]\); run it here by a failover/,
  )
  // it follows web1 through a live migration within main
  const moved = await lab.cli('vm', 'migrate', 'web1', '--to', 'host-a2', '--timeout-s', '60')
  t.equal(moved.code, 0, `live migration in main: ${moved.stderr}`)
  t.equal((await lab.cli('vm', 'load', 'web1', '--disk-iops', '0')).code, 0)
  const level = await lab.waitFor('web1 replicated from host-a2, caught up', async () => {
    const r = await lab.control().request('host-a2', { t: 'replica-status-request', vm: 'web1' }, 'replica-status-reply', 10_000)
    const p = r.primaries[0]
    return p !== undefined && p.cycles_applied >= 2 && p.pending_bytes === 0 && p.in_flight === null && !p.resyncing ? p : undefined
  })
  t.equal(level.to, 'dr', 'to cluster dr')
  t.match(level.continued_from, { host: 'host-a1' }, 'going on from host-a1, no resync')
  for (const region of ['web1', 'web1-disk1'])
    t.same(
      await regionHashes(lab, 'host-dr1', 'v1', region),
      await regionHashes(lab, 'host-a1', 'va', region),
      `dr's replica of ${region} is main's, byte for byte`,
    )

  // a planned failover to dr: refused until main's broker takes web1's changes back from dr; then nothing is lost, and back again
  t.equal((await lab.cli('vm', 'load', 'web1', '--disk-iops', '20')).code, 0)
  const noWayBack = await lab.cli('replica', 'failover', 'web1', '--planned')
  t.equal(noWayBack.code, 1, 'refused: main has no broker to take the changes back')
  t.match(noWayBack.stderr, /hvlab --cluster main replica server enable cluster --allow dr; nothing was shut down/)
  t.match(await lab.role('web1'), { state: 'running' }, 'web1 runs on in main')
  t.equal((await lab.cli('replica', 'server', 'enable', 'cluster', '--allow', 'dr')).code, 0)
  await lab.waitFor('writes not yet sent', async () => {
    const r = await lab.control().request('host-a2', { t: 'replica-status-request', vm: 'web1' }, 'replica-status-reply', 10_000)
    return (r.primaries[0]?.pending_bytes ?? 0) > 0 ? true : undefined
  })
  t.equal((await lab.cli('vm', 'load', 'web1', '--disk-iops', '0')).code, 0) // the load stays with main's role: it runs idle in dr
  const toDr = await lab.cli('replica', 'failover', 'web1', '--planned', '--timeout-s', '60')
  t.equal(toDr.code, 0, `planned failover to dr: ${toDr.stderr}`)
  t.comment(toDr.stdout.trim())
  t.match(
    toDr.stdout,
    /vm web1 failed over to cluster dr: it runs on host-dr[12] from every change it made in cluster main \(planned: nothing lost; down \d+\.\d s\); replication is reversed, its changes go back to cluster main \(placed on host-a[12]\)/,
  )
  t.match(await lab.role('web1'), { state: 'stopped', replication: { to: 'dr', to_cluster: true, reversed_to: /^host-a[12]$/ } })
  const inDrNow = (await lab.json<VmListView>('--cluster', 'dr', 'vm', 'list')).roles.find((r) => r.name === 'web1')
  t.match(inDrNow, { state: 'running', replication: { to: 'main', to_cluster: true } }, 'dr runs it, replicating back to main')
  t.notOk(inDrNow?.replication?.reversed_to, 'no longer a replica there')
  for (const region of ['web1', 'web1-disk1'])
    t.same(await regionHashes(lab, 'host-dr1', 'v1', region), await regionHashes(lab, 'host-a1', 'va', region), `nothing lost: ${region}`)
  const backResync = await lab.waitFor("dr's first cycle back to main", async () => {
    const e = (await lab.events()).find((x) => x.kind === 'replica.resynced' && x.details.vm === 'web1' && /^host-dr/.test(x.source))
    return e
  })
  t.equal(backResync.details.blocks_sent, 0, "main's volumes are web1's replica now: nothing differs")
  const back = await lab.cli('replica', 'failover', 'web1', '--planned', '--timeout-s', '60')
  t.equal(back.code, 0, `planned failover back to main: ${back.stderr}`)
  t.match(back.stdout, /vm web1 failed over to cluster main: it runs on host-a[12] from every change it made in cluster dr/)
  t.match(
    await lab.role('web1'),
    { state: 'running', replication: { to: 'dr', to_cluster: true, recovery_points: 4 } },
    'its settings went there and back',
  )

  // main is lost: an unplanned failover to dr from a recovery point, main's older copy stopped when it returns, then replicated back
  await unplannedToDr(t, lab)

  // a dr host dies: db1 fails over within dr; main's view does not change
  const mainEpoch = (await lab.status()).cluster!.hosts['host-a1']!.epoch
  t.equal((await lab.cli('kill', 'host-dr2')).code, 0)
  const failedOver = await lab.waitFor('db1 running on host-dr1', async () => {
    const r = (await lab.json<VmListView>('--cluster', 'dr', 'vm', 'list')).roles.find((x) => x.name === 'db1')
    return r?.state === 'running' && r.owner === 'host-dr1' ? r : undefined
  })
  t.match(failedOver, { owner: 'host-dr1' })
  const inspect = await lab.json<{ host: string; data_disks?: unknown[] }>('--cluster', 'dr', 'vm', 'inspect', 'db1')
  t.match(inspect, { host: 'host-dr1', data_disks: [{ state: /writing|idle/ }] }, 'with both disks')
  const after = await lab.status()
  t.equal(after.cluster!.hosts['host-a1']!.epoch, mainEpoch, "main's view did not change")
  t.match(after.clusters, [{ name: 'dr', hosts: { 'host-dr1': { members: ['host-dr1'] } } }])
})

/**
 * web2, a VM of main that never restarts before the disaster (a restarted VM writes its
 * first boot's records again, which would hide what changed), replicates to dr with
 * recovery points. A point is taken once it is caught up and idle (its disk then is H); it
 * writes on; the failover is refused while main runs it; main's hosts are killed; the
 * failover to dr from that point restores H exactly. main's hosts come back: its older copy
 * stops and replicates nowhere; dr replicates web2 back into it, and only what differs travels.
 */
async function unplannedToDr(t: Test, lab: TestLab): Promise<void> {
  const disk = (host: string, csv: string) => regionHashes(lab, host, csv, 'web2')
  const inDr = async () => (await lab.json<VmListView>('--cluster', 'dr', 'vm', 'list')).roles.find((r) => r.name === 'web2')
  const inMain = async () => (await lab.json<VmListView>('vm', 'list')).roles.find((r) => r.name === 'web2')
  t.equal((await lab.cli('vm', 'create', 'web2', '--storage', 'csv:va', '--preferred', 'host-a1,host-a2')).code, 0)
  t.equal((await lab.cli('vm', 'start', 'web2')).code, 0)
  const enabled = await replicateToDr(lab, 'web2')
  t.equal(enabled.code, 0, `web2 to dr: ${enabled.stderr}`)
  const member = (await inDr())!.replication!.reversed_to!
  const owner = (await inMain())!.owner!
  t.equal((await lab.cli('vm', 'load', 'web2', '--disk-iops', '20')).code, 0)
  await lab.waitFor('web2 written to dr', async () => ((await replicaOn(lab, member, 'web2'))?.applied_cycle ?? 0) >= 2 || undefined)
  t.equal((await lab.cli('vm', 'load', 'web2', '--disk-iops', '0')).code, 0)
  await lab.waitFor('web2 caught up, idle', async () => {
    const r = await lab.control().request(owner, { t: 'replica-status-request', vm: 'web2' }, 'replica-status-reply', 10_000)
    const p = r.primaries[0]
    return p !== undefined && p.pending_bytes === 0 && p.in_flight === null && !p.resyncing ? p : undefined
  })
  const applied = (await replicaOn(lab, member, 'web2'))!.applied_cycle
  const point = await lab.waitFor('a recovery point of web2 idle', async () =>
    (await replicaOn(lab, member, 'web2'))?.recovery_points.find((p) => p.cycle >= applied),
  )
  const seen = await lab.json<StatusView[]>('replica', 'status', 'web2')
  t.match(seen, [{ vm: 'web2', primary_host: owner, to: 'dr', replica_host: member }], 'replica status: the member of dr holding it')
  t.ok(
    seen[0]?.replica?.recovery_points.some((p) => p.cycle === point.cycle),
    'with its recovery points',
  )
  const fromDr = await lab.json<StatusView[]>('--cluster', 'dr', 'replica', 'status', 'web2')
  t.match(fromDr, [{ vm: 'web2', primary_host: owner, to: 'dr', replica_host: member }], 'the same seen from dr')
  const atPoint = await disk('host-dr1', 'v1')
  t.same(atPoint, await disk('host-a1', 'va'), "at the point dr's replica is main's web2")
  t.equal((await lab.cli('vm', 'load', 'web2', '--disk-iops', '20')).code, 0)
  await lab.waitFor('cycles with writes applied after the point', async () => {
    const r = await replicaOn(lab, member, 'web2')
    return r !== undefined && r.applied_cycle >= point.cycle + 2 ? r : undefined
  })
  t.notSame(await disk('host-dr1', 'v1'), atPoint, 'the replica moved on from the point')
  const whileRunning = await lab.cli('--cluster', 'dr', 'replica', 'failover', 'web2', '--recovery-point', String(point.cycle))
  t.equal(whileRunning.code, 1, 'refused while main runs web2')
  t.match(whileRunning.stderr, /vm web2 still runs on its primary \(host-a[12]\): starting the replica now would run it twice/)

  for (const host of ['host-a1', 'host-a2']) t.equal((await lab.cli('kill', host)).code, 0)
  const lost = await lab.json<StatusView[]>('--cluster', 'dr', 'replica', 'status', 'web2')
  t.match(lost, [{ vm: 'web2', primary_host: null, replica_host: member }], 'main lost: dr still lists the replica')
  t.ok(
    lost[0]?.replica?.recovery_points.some((p) => p.cycle === point.cycle),
    'and its points',
  )
  const failover = await lab.cli(
    '--cluster',
    'dr',
    'replica',
    'failover',
    'web2',
    '--recovery-point',
    String(point.cycle),
    '--timeout-s',
    '60',
  )
  t.equal(failover.code, 0, `unplanned failover to dr: ${failover.stderr}`)
  t.comment(failover.stdout.trim())
  t.match(
    failover.stdout,
    new RegExp(
      `vm web2 failed over to cluster dr \\(unplanned\\): it runs on host-dr[12] from the recovery point of cycle ${point.cycle}, whose log closed \\d+\\.\\d s before the failover[^]*hvlab --cluster dr replica enable web2 --to cluster:main`,
    ),
  )
  const running = await inDr()
  t.match(running, { state: 'running' })
  t.equal(running?.replication, undefined, 'its replication ended')
  t.same(await disk('host-dr1', 'v1'), atPoint, 'it runs from the recovery point, exactly')
  t.equal(await replicaOn(lab, member, 'web2'), undefined, `${member} holds no replica of it any more`)

  // main returns: its older copy stops, replicating nowhere; dr replicates web2 back into it
  for (const host of ['host-a1', 'host-a2']) t.equal((await lab.cli('restart', host)).code, 0)
  const older = await lab.waitFor("main's older copy stopped, replicating nowhere", async () => {
    const r = await inMain().catch(() => undefined)
    return r?.state === 'stopped' && r.replication === undefined ? r : undefined
  })
  t.match(older, { state: 'stopped' })
  t.match(await inDr(), { state: 'running' }, 'dr runs it on')
  const since = (await lab.events()).length
  const back = await lab.cli(
    '--cluster',
    'dr',
    'replica',
    'enable',
    'web2',
    '--to',
    'cluster:main',
    '--frequency',
    '30s',
    '--timeout-s',
    '60',
  )
  t.equal(back.code, 0, `replicated back to main: ${back.stderr}`)
  t.match(
    back.stdout,
    /vm web2 replicates from cluster dr \(host-dr[12]\) to cluster main every 30 s, into its own volume\(s\) on host-a[12]/,
  )
  const resynced = await lab.waitFor('the resync into the older copy', async () =>
    (await lab.events()).slice(since).find((x) => x.kind === 'replica.resynced' && x.details.vm === 'web2'),
  )
  const sent = Number(resynced.details.blocks_sent)
  t.ok(sent > 0 && sent < DISK_BLOCKS, `only what differs travels: ${sent} blocks of ${DISK_BLOCKS}`)
  t.match(await inMain(), { state: 'stopped', replication: { to: 'dr', to_cluster: true, reversed_to: /^host-a[12]$/ } })
  t.same(await disk('host-a1', 'va'), await disk('host-dr1', 'v1'), "main's copy is dr's web2 again")
}
