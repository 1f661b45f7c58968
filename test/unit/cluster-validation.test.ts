import t from 'tap'
import { validateCluster, validationPassed } from '../../scripts/cli/cluster-validation.js'
import type { ClusterStatus, VmRoleRecord } from '../../shared/protocol/cluster-messages.js'
import { formatValidation, formatVmList, validationHtml } from '../../scripts/cli/format.js'

const HOSTS = [
  { name: 'host-a1', site: 'site-a' },
  { name: 'host-b1', site: 'site-b' },
]

function status(node: string, down: string[] = [], witness = true): ClusterStatus {
  return {
    node,
    model: 'node-and-file-share-majority',
    dynamic_quorum: true,
    dynamic_witness: true,
    epoch: 3,
    db_epoch: 3,
    coordinator: 'host-a1',
    is_coordinator: node === 'host-a1',
    forced: false,
    holds_lease: true,
    lease_until_ms: 1,
    members: ['host-a1', 'host-b1'],
    voters: ['host-a1', 'host-b1'],
    witness: { name: 'witness', votes: true, reachable: witness },
    votes_total: 3,
    votes_present: 3,
    votes_needed: 2,
    nodes: HOSTS.map((h) => ({ name: h.name, site: h.site, state: down.includes(h.name) ? 'Down' : 'Up', voter: true })),
  }
}
const role = (name: string, preferred: string[]): VmRoleRecord => ({
  name,
  memory_mib: 1024,
  preferred_owners: preferred,
  possible_owners: null,
  failback: { enabled: false, window: null },
  state: 'running',
  owner: 'host-a1',
  last_owner: 'host-a1',
  reason: 'running on host-a1',
})
const witness = { name: 'witness', site: 'site-c' }

t.test('a healthy cluster passes; storage checks are skipped with why when no vm has a replicated disk', async (t) => {
  const checks = validateCluster({
    hosts: HOSTS,
    witness,
    statuses: { 'host-a1': status('host-a1'), 'host-b1': status('host-b1') },
    roles: [role('web1', ['host-b1'])],
  })
  t.ok(validationPassed(checks))
  t.same(
    checks.filter((c) => c.result === 'fail'),
    [],
  )
  t.ok(checks.some((c) => c.area === 'storage' && c.result === 'skip' && /no vm has a shared disk/.test(c.detail)))
})

t.test('a broken heartbeat link, a witness cut off from a site and a stranger owner fail, saying what to do', async (t) => {
  const checks = validateCluster({
    hosts: HOSTS,
    witness,
    statuses: { 'host-a1': status('host-a1', ['host-b1']), 'host-b1': status('host-b1', ['host-a1'], false) },
    roles: [role('web1', ['host-zz'])],
  })
  t.notOk(validationPassed(checks))
  const failed = checks.filter((c) => c.result === 'fail')
  t.match(
    failed.map((c) => c.detail).join('\n'),
    /no heartbeats from host-b1[\s\S]*no host of site-b reaches witness[\s\S]*host-zz is not a node of this cluster/,
  )
  const text = formatValidation(checks, '/x/report.html')
  t.match(text, /validation FAILED: 4 check\(s\) failed; report: \/x\/report.html/)
  t.match(validationHtml(checks, { name: 'lab <1>', at: 'now' }), /lab &lt;1&gt;[\s\S]*FAIL/)
})

t.test('a cut between two members shows in their links though both still see each other Up', async (t) => {
  const hosts = [...HOSTS, { name: 'host-b2', site: 'site-b' }]
  const up = (node: string): ClusterStatus => ({
    ...status(node),
    nodes: hosts.map((h) => ({ name: h.name, site: h.site, state: 'Up', voter: true })),
  })
  const checks = validateCluster({
    hosts,
    witness,
    statuses: { 'host-a1': up('host-a1'), 'host-b1': up('host-b1'), 'host-b2': up('host-b2') },
    links: { 'host-a1': ['host-b1', 'host-b2'], 'host-b1': ['host-a1'], 'host-b2': ['host-a1'] },
    roles: null,
  })
  t.match(
    checks.find((c) => c.name === 'host-b1 sees every node'),
    { result: 'fail', detail: /no heartbeats from host-b2/ },
  )
  t.match(
    checks.find((c) => c.name === 'host-a1 sees every node'),
    { result: 'pass' },
  )
})

t.test('a host that does not answer fails its check; no coordinator skips the vm checks', async (t) => {
  const checks = validateCluster({ hosts: HOSTS, witness, statuses: { 'host-a1': status('host-a1') }, roles: null })
  t.match(
    checks.find((c) => c.name === 'host-b1 sees every node'),
    { result: 'fail', detail: /did not answer/ },
  )
  t.match(
    checks.find((c) => c.area === 'roles'),
    { result: 'skip' },
  )
})

t.test('vm list: name, state, owner, preferred owners; a note when read from the database', async (t) => {
  t.match(
    formatVmList({ coordinator: 'host-a1', source: 'coordinator', roles: [role('web1', ['host-b1', 'host-a1'])] }),
    /web1\s+running\s+host-a1\s+1024 MiB\s+host-b1,host-a1/,
  )
  t.match(formatVmList({ coordinator: 'host-a1', source: 'database', roles: [] }), /did not answer[\s\S]*no vms yet/)
})
