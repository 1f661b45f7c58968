/**
 * How `hvlab cluster status` and `hvlab vm list` print what is new in them: epochs of a
 * forced generation, each node's NodeWeight / DynamicWeight / DrainStatus, each vm's
 * failure counters against the policy, its priority and its storage as its owner sees it;
 * the host's storage verdict; and `vm set`'s option parsing (a bad value: exit 2, nothing sent).
 */
import t from 'tap'
import { EPOCHS_PER_GENERATION } from '../../shared/consensus/epoch-generation.js'
import { storageHealth } from '../../agent/cluster/vm-storage-health.js'
import { createVmRole } from '../../agent/cluster/vm-role.js'
import { formatClusterReport } from '../../scripts/cli/cluster-commands.js'
import { clusterRoleStatus, formatVmCounters } from '../../scripts/cli/cluster-roles.js'
import { formatEpoch, formatVmList, referenceHost } from '../../scripts/cli/format.js'
import { type CliIo, runHvlab } from '../../scripts/cli/run-hvlab.js'
import { parseChanges, parseFailback } from '../../scripts/cli/vm-set-command.js'
import { storageView } from '../../scripts/cli/vm-storage-status.js'
import type { ClusterStatus, VmRoleRecord } from '../../shared/protocol/cluster-messages.js'

const HOUR = 3_600_000
const NOW = Date.UTC(2026, 0, 1, 12, 0, 0)

const record = (over: Partial<VmRoleRecord> & { name: string }): VmRoleRecord =>
  ({
    ...createVmRole({ name: over.name }),
    state: 'running',
    owner: 'host-a1',
    last_owner: 'host-a1',
    reason: 'running on host-a1',
    ...over,
  }) as VmRoleRecord

t.test('epochs: plain in generation 0, GENERATION/EPOCH after a forced quorum', async (t) => {
  t.equal(formatEpoch(0), '0')
  t.equal(formatEpoch(42), '42')
  t.equal(formatEpoch(EPOCHS_PER_GENERATION), '1/0')
  t.equal(formatEpoch(2 * EPOCHS_PER_GENERATION + 3), '2/3')
})

function status(over: Partial<ClusterStatus> = {}): ClusterStatus {
  return {
    node: 'host-a1',
    model: 'node-and-file-share-majority',
    dynamic_quorum: true,
    dynamic_witness: true,
    epoch: EPOCHS_PER_GENERATION + 2,
    db_epoch: 9,
    coordinator: 'host-a1',
    is_coordinator: true,
    forced: true,
    holds_lease: true,
    lease_until_ms: NOW + 1000,
    members: ['host-a1', 'host-a2', 'host-b1'],
    voters: ['host-a1', 'host-a2'],
    witness: { name: 'witness', votes: true, reachable: true },
    votes_total: 3,
    votes_present: 3,
    votes_needed: 2,
    nodes: [
      { name: 'host-a1', site: 'site-a', state: 'Up', voter: true, node_weight: 1, dynamic_weight: 1 },
      { name: 'host-a2', site: 'site-a', state: 'Paused', voter: true, node_weight: 1, dynamic_weight: 1 },
      { name: 'host-b1', site: 'site-b', state: 'Up', voter: false, node_weight: 1, dynamic_weight: 0 },
    ],
    ...over,
  }
}

t.test('cluster status: weights, drain status, epochs, and each vm’s counters against the policy', async (t) => {
  const roles = clusterRoleStatus(
    {
      coordinator: 'host-a1',
      source: 'coordinator',
      roles: [
        record({
          name: 'web1',
          owner: 'host-b1',
          failures: {
            restarts: [
              { node: 'host-b1', at_ms: NOW - 60_000 },
              { node: 'host-a1', at_ms: NOW - 120_000 },
            ],
            failovers_ms: [NOW - 7 * HOUR, NOW - 30_000],
          },
        }),
        record({ name: 'db1' }),
        record({
          name: 'soak1',
          failover_threshold: 1000,
          failover_period_h: 1,
          failures: { restarts: [], failovers_ms: [NOW - 2 * HOUR, NOW - 60_000] },
        }),
      ],
      failover_policy: { restarts_max: 3, restart_period_ms: 15 * 60_000, failovers_max: 3, failover_period_ms: 6 * HOUR },
      drains: [
        { node: 'host-a1', status: 'NotInitiated' },
        { node: 'host-a2', status: 'Completed' },
      ],
    },
    NOW,
  )
  t.match(
    roles.vms,
    [
      { name: 'web1', restarts: 1, failovers: 1, last_failure_ms: NOW - 30_000 },
      { name: 'db1', restarts: 0, failovers: 0, last_failure_ms: null },
      { name: 'soak1', failovers: 1, failovers_max: 1000, failover_period_ms: HOUR },
    ],
    'only the owner’s restarts and the failovers inside the windows count',
  )
  const text = formatClusterReport({ hosts: { 'host-a1': status() }, witness: null, refreshed_ms: NOW, roles }, NOW)
  t.match(text, /epoch 1\/2 \(FORCED\)/)
  t.match(text, /NODE +SITE +STATE +WEIGHT +DYNAMIC +DRAIN +QUORUM +EPOCH/)
  t.match(text, /host-a2 +site-a +Paused +1 +1 +Completed +- +-/)
  t.match(text, /host-a1 +site-a +Up +1 +1 +NotInitiated +yes +1\/2/)
  t.match(text, /host-b1 +site-b +Up +1 +0 +NotInitiated/)
  t.match(text, /DYNAMIC 0 on an Up node/)
  t.match(text, /web1 +running +host-b1 +1 of 3 in 15 min +1 of 3 in 6 h +11:59:30 \(30s ago\)/)
  t.match(text, /db1 +running +host-a1 +0 of 3 in 15 min +0 of 3 in 6 h +-/)
  t.match(text, /soak1 +running +host-a1 +0 of 3 in 15 min +1 of 1000 in 1 h /, "a role's own failover threshold and period")
  const fromDb = formatVmCounters({ ...roles, source: 'database' }, NOW)
  t.match(fromDb, /from the cluster database/)
  const noRoles = formatClusterReport({ hosts: { 'host-a1': status() }, witness: null, refreshed_ms: NOW, roles: null }, NOW)
  t.notMatch(noRoles, /DRAIN/, 'no drain column without the coordinator')
  t.match(noRoles, /the role list did not answer/)
})

t.test('vm list: priority, storage as the owner sees it, and why storage is lost', async (t) => {
  const replicated: VmRoleRecord['storage'] = {
    kind: 'replicated',
    group: 'rc-x',
    volume: 'x-disk0',
    size_bytes: 1,
    mode: 'sync',
    arrays: { primary: 'array-a', secondary: 'array-b' },
    hosts: [],
  }
  const roles = [
    record({ name: 'web1', priority: 'high', storage: replicated }),
    record({ name: 'db1', owner: 'host-a2', storage: replicated }),
    record({ name: 'loc', storage: { kind: 'local' } }),
    record({ name: 'off', state: 'pending', owner: null, storage: replicated, reason: 'waiting: no up node has 9000 MiB free' }),
  ]
  const inv = new Map([
    [
      'host-a1',
      [
        {
          role: 'web1',
          op: 1,
          epoch: 1,
          memory_mib: 64,
          state: 'running' as const,
          guest_heartbeats: 1,
          storage: { state: 'ok' as const, reason: '' },
        },
      ],
    ],
    [
      'host-a2',
      [
        {
          role: 'db1',
          op: 1,
          epoch: 1,
          memory_mib: 64,
          state: 'running' as const,
          guest_heartbeats: 1,
          storage: { state: 'lost' as const, reason: 'array-a cannot be reached' },
        },
      ],
    ],
  ])
  const storage = storageView(roles, inv)
  t.same(storage.off, { state: 'unknown', reason: '' })
  const text = formatVmList({ coordinator: 'host-a1', source: 'coordinator', roles }, storage)
  t.match(text, /NAME +STATE +OWNER +MEMORY +PREFERRED +PRIORITY +STORAGE +REASON/)
  t.match(text, /web1 +running +host-a1 +1024 MiB +- +high +ok +running on host-a1/)
  t.match(text, /db1 +running +host-a2 +1024 MiB +- +medium +lost +running on host-a1; storage lost: array-a cannot be reached/)
  t.match(text, /loc +running +host-a1 +1024 MiB +- +medium +local/)
  t.match(
    text,
    /off +pending +\(host-a1\) +1024 MiB +- +medium +- +waiting: no up node has 9000 MiB free/,
    'a role that cannot be placed says why',
  )
})

t.test('the host’s storage verdict', async (t) => {
  const target = { array: 'array-a', volume: 'v', group: 'rc-v', size_bytes: 1, csv: null }
  const up = () => true
  const idle = { state: 'idle' as const, last_write_failed: false, last_error: null }
  t.same(storageHealth(undefined, null, up), { state: 'none', reason: '' })
  t.same(storageHealth(target, idle, up), { state: 'ok', reason: '' })
  t.match(
    storageHealth(target, idle, () => false),
    { state: 'lost', reason: /array-a, which holds the writable copy of v, cannot be reached/ },
  )
  t.match(storageHealth(target, { ...idle, state: 'fenced' }, up), { state: 'lost', reason: /fenced by array-a/ })
  t.match(storageHealth(target, { state: 'writing', last_write_failed: true, last_error: 'not writable' }, up), {
    state: 'lost',
    reason: /last write .* failed: not writable/,
  })
  t.same(
    storageHealth({ ...target, csv: { name: 'csv1', region: 'r' } }, idle, () => false),
    { state: 'ok', reason: '' },
    'a CSV redirects its I/O',
  )
})

t.test('vm set: options parsed to changes; a bad value is a usage error', async (t) => {
  t.same(
    parseChanges({ preferred: 'host-b1,host-a1', priority: 'none', failback: 'window:22-06', antiAffinity: 'sql', memoryMib: '128' }),
    {
      preferred_owners: ['host-b1', 'host-a1'],
      priority: 'none',
      failback: { enabled: true, window: { start_hour: 22, end_hour: 6 } },
      anti_affinity: 'sql',
      memory_mib: 128,
    },
  )
  t.same(parseChanges({ preferred: 'none', antiAffinity: 'none' }), { preferred_owners: [], anti_affinity: null })
  t.same(parseFailback('off'), { enabled: false, window: null })
  t.same(parseFailback('immediate'), { enabled: true, window: null })
  for (const bad of ['window:5-5', 'window:24-1', 'window:1', 'sometimes'])
    t.throws(() => parseFailback(bad), { code: 'HVLAB_E_USAGE', message: /window:HH-HH/ }, bad)
  t.throws(() => parseChanges({}), { code: 'HVLAB_E_USAGE', message: /nothing to change/ })
  t.throws(() => parseChanges({ priority: 'urgent' }), { message: /write one of high, medium, low, none/ })
  t.throws(() => parseChanges({ memoryMib: '12.5' }), { message: /whole number of MiB from 32/ })
  t.throws(() => parseChanges({ preferred: 'host-a1,HOST' }), { message: /"HOST" is not a host name/ })
})

t.test('`hvlab vm set` with a bad value: exit 2 and what to write, before any lab is asked', async (t) => {
  const err: string[] = []
  const io: CliIo = { stdout: () => undefined, stderr: (s) => void err.push(s), isTTY: false }
  t.equal(await runHvlab(['vm', 'set', 'web1', '--failback', 'later', '--dir', '/nonexistent-hvlab-dir'], io), 2)
  t.match(err.join(''), /--failback "later": write off, immediate, or window:HH-HH/)
})

t.test('with no lease held, status is read from the last view coordinator: it alone judges every member', async (t) => {
  const hosts = {
    'host-a1': status({ node: 'host-a1', holds_lease: false, is_coordinator: false, votes_present: 3 }),
    'host-a2': status({ node: 'host-a2', holds_lease: false, is_coordinator: true, votes_present: 2 }),
  }
  t.equal(referenceHost({ hosts } as never)?.node, 'host-a2', 'not host-a1, whose member view still counts a dead member')
  const holder = { ...hosts, 'host-a1': { ...hosts['host-a1'], holds_lease: true } }
  t.equal(referenceHost({ hosts: holder } as never)?.node, 'host-a1', 'a lease holder first')
})
