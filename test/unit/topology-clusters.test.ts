/**
 * A topology of several failover clusters (shared/topology.ts `clusters`): each cluster's
 * processes, the view a process of one cluster has (its cluster in the top-level fields),
 * who talks to whom across clusters, which peers are members, and the rules per cluster.
 */
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import {
  clusterNamed,
  clusterView,
  clustersOf,
  isClusterPeer,
  parseTopology,
  peersOf,
  processesOf,
  type Topology,
} from '../../shared/topology.js'

const FILE = fileURLToPath(new URL('../lab/fixtures/two-cluster-fast.json', import.meta.url))
const raw = (): Record<string, unknown> => JSON.parse(readFileSync(FILE, 'utf8')) as Record<string, unknown>
const topology = (): Topology => parseTopology(raw(), 'two-cluster-fast')

t.test('each cluster with its hosts, witness and arrays; the first one first', async (t) => {
  const top = topology()
  t.same(
    clustersOf(top).map(
      (c) => `${c.name}: ${c.hosts.map((h) => h.name).join(',')} / ${c.witness?.name} / ${c.arrays.map((a) => a.name).join(',')}`,
    ),
    ['main: host-a1,host-a2 / witness-a / array-a', 'dr: host-dr1,host-dr2 / witness-dr / array-dr'],
  )
  t.same(
    processesOf(top).map((p) => `${p.name} ${p.role} ${p.cluster}`),
    [
      'host-a1 host main',
      'host-a2 host main',
      'witness-a witness main',
      'array-a array main',
      'host-dr1 host dr',
      'host-dr2 host dr',
      'witness-dr witness dr',
      'array-dr array dr',
    ],
  )
  t.throws(() => clusterNamed(top, 'nope'), { code: 'HVLAB_E_NOT_FOUND', message: /its clusters: main, dr/ })
  const { cluster_name: _name, ...unnamed } = raw()
  t.equal(parseTopology(unnamed).cluster_name, 'main', "the first cluster's name by default")
})

t.test("a dr process sees dr as the topology's cluster, the others listed beside it", async (t) => {
  const top = topology()
  const dr = clusterView(top, 'dr')
  t.same(
    dr.hosts.map((h) => h.name),
    ['host-dr1', 'host-dr2'],
  )
  t.equal(dr.witness?.name, 'witness-dr')
  t.same(
    dr.arrays.map((a) => a.name),
    ['array-dr'],
  )
  t.equal(dr.cluster_name, 'dr')
  t.same(
    dr.clusters.map((c) => c.name),
    ['main'],
    'the first cluster is one of the others now',
  )
  t.equal(clusterView(top, 'main'), top, "the first cluster's view is the topology itself")
  const main = clusterView(dr, 'main')
  t.same(
    main.hosts.map((h) => h.name),
    ['host-a1', 'host-a2'],
    'and back again',
  )
})

t.test('across clusters only hosts talk; a witness or array serves its own cluster', async (t) => {
  const top = topology()
  const peers = (name: string) => peersOf(top, name).map((p) => p.name)
  t.same(peers('host-a1'), ['host-a2', 'witness-a', 'array-a', 'host-dr1', 'host-dr2'])
  t.same(peers('witness-dr'), ['host-dr1', 'host-dr2'])
  t.same(peers('array-dr'), ['host-dr1', 'host-dr2'])
})

t.test('a member is a host of the same cluster: another cluster may not command it, nor vote in it', async (t) => {
  const dr = clusterView(topology(), 'dr')
  t.ok(isClusterPeer(dr, { remoteName: 'host-dr2', remoteRole: 'host' }))
  t.notOk(isClusterPeer(dr, { remoteName: 'host-a1', remoteRole: 'host' }), "main's host is no member of dr")
  t.notOk(isClusterPeer(dr, { remoteName: 'witness-dr', remoteRole: 'witness' }), 'a witness only where asked for')
  t.ok(isClusterPeer(dr, { remoteName: 'witness-dr', remoteRole: 'witness' }, true))
  t.notOk(isClusterPeer(dr, { remoteName: 'witness-a', remoteRole: 'witness' }, true), "main's witness is not dr's")
  t.notOk(isClusterPeer(dr, { remoteName: 'array-dr', remoteRole: 'array' }, true))
})

t.test('the rules hold per cluster, and cluster names are unique', async (t) => {
  const bad = raw()
  const clusters = bad.clusters as Record<string, unknown>[]
  clusters[0] = { ...clusters[0], name: 'main', witness: { name: 'witness-dr', site: 'site-dr' } }
  t.throws(() => parseTopology(bad, 'bad'), {
    code: 'HVLAB_E_TOPOLOGY',
    message: /the cluster name main is used twice[\s\S]*the witness \(cluster main\) shares site site-dr with hosts/,
  })
  const noWitness = raw()
  ;(noWitness.clusters as Record<string, unknown>[])[0] = { ...(noWitness.clusters as Record<string, unknown>[])[0], witness: undefined }
  t.throws(() => parseTopology(noWitness, 'bad'), { message: /quorum model node-and-file-share-majority \(cluster dr\) needs a "witness"/ })
  const twice = raw()
  ;(twice.clusters as Record<string, unknown>[])[0] = {
    ...(twice.clusters as Record<string, unknown>[])[0],
    hosts: [{ name: 'host-a1', site: 'site-dr' }],
  }
  t.throws(() => parseTopology(twice, 'bad'), { message: /the name host-a1 is used by more than one process/ })
})
