/**
 * Two failover clusters in one lab (test/lab/fixtures/two-cluster-fast.json): `main` (host-a1,
 * host-a2, witness-a) and `dr` (host-dr1, host-dr2, witness-dr, array-dr). Each forms with its
 * own witness; `hvlab --cluster dr …` addresses dr (a CSV on its array, a VM with two disks
 * there), the default stays main, and an unknown cluster is a usage error. A host of main
 * reaches dr's hosts (Replica between clusters) but not dr's witness or array (and dr takes no
 * command from it: test/unit/topology-clusters.test.ts). A dr host killed: its VM fails over
 * within dr, and main does not notice.
 */
import { fileURLToPath } from 'node:url'
import t from 'tap'
import type { VmRoleRecord } from '../../shared/protocol/cluster-messages.js'
import { startLab } from './lab-fixture.js'

const TOPOLOGY = fileURLToPath(new URL('./fixtures/two-cluster-fast.json', import.meta.url))

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
