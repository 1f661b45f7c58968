/**
 * CLX wired into the cluster: the create's storage choice, the disk target, the role
 * controller's handling of a start CLX refused (failed, not a node failure), a forced
 * start, a start still preparing storage, the role record's storage field, the migration
 * hooks, `vm deps`, and the storage checks of `cluster validate`.
 */
import t from 'tap'
import { HvlabError } from '../../shared/errors.js'
import { RoleController, START_REPLY_WAIT_MS, type RoleEffect, type RoleInput } from '../../agent/cluster/role-controller.js'
import { decodeRoles, encodeRole, roleKey } from '../../agent/cluster/role-record.js'
import { createVmRole } from '../../agent/cluster/vm-role.js'
import { validateCluster } from '../../scripts/cli/cluster-validation.js'
import { perVmOrder } from '../../agent/cluster/role-host.js'
import { chooseVmStorage, defaultStorageKind, DISK_BYTES_DEFAULT, preferredSiteOf } from '../../shared/vm-storage-choice.js'
import { arrayOfSite, diskTargetsFor } from '../../agent/clx/disk-target.js'
import { checkBeforeMigration, clxStorageHandOver, crossSiteMove } from '../../agent/clx/clx-hand-over.js'
import { formatVmDepsTree, vmDeps } from '../../scripts/cli/vm-deps.js'
import type { ClxResult } from '../../agent/clx/clx-service.js'
import type { VmRoleRecord, VmStorageSpecRecord } from '../../shared/protocol/cluster-messages.js'
import type { RcGroupStatus } from '../../shared/protocol/storage-messages.js'
import { ARRAYS, HOSTS } from './two-site-fixture.js'

const SPEC: Extract<VmStorageSpecRecord, { kind: 'replicated' }> = {
  kind: 'replicated',
  group: 'rc-web1',
  volume: 'web1-disk0',
  size_bytes: DISK_BYTES_DEFAULT,
  mode: 'sync',
  arrays: { primary: 'array-a', secondary: 'array-b' },
  hosts: HOSTS.map((h) => h.name),
}

t.test('storage choice: replicated by default with one array in each of two sites, else local; csv:NAME a region of a CSV', async (t) => {
  t.equal(defaultStorageKind(ARRAYS), 'replicated')
  t.equal(defaultStorageKind([ARRAYS[0]!]), 'local', 'one array: no remote copy')
  t.equal(defaultStorageKind([...ARRAYS, { name: 'array-a2', site: 'site-a' }]), 'local', 'two arrays in a site: CLX does not know which')
  t.same(chooseVmStorage({}, ARRAYS), { kind: 'replicated', size_bytes: DISK_BYTES_DEFAULT })
  t.same(chooseVmStorage({ disk_gib: 2 }, ARRAYS), { kind: 'replicated', size_bytes: 2 * 1024 ** 3 })
  t.same(chooseVmStorage({}, []), { kind: 'local' })
  t.same(chooseVmStorage({ storage: 'local' }, ARRAYS), { kind: 'local' })
  t.same(chooseVmStorage({ storage: 'csv:vol1' }, ARRAYS), { kind: 'csv', csv: 'vol1', size_bytes: DISK_BYTES_DEFAULT })
  t.same(
    chooseVmStorage({ storage: 'csv:vol1', disk_gib: 2 }, []),
    { kind: 'csv', csv: 'vol1', size_bytes: 2 * 1024 ** 3 },
    'a CSV needs no pair of sites',
  )
  t.throws(() => chooseVmStorage({ storage: 'csv:' }, ARRAYS), /name the Cluster Shared Volume/)
  t.throws(() => chooseVmStorage({ storage: 'csv:Bad Name' }, ARRAYS), /name the Cluster Shared Volume/)
  t.throws(() => chooseVmStorage({ storage: 'replicated' }, [ARRAYS[0]!]), /needs one storage array in each of two sites/)
  t.throws(() => chooseVmStorage({ storage: 'local', disk_gib: 1 }, ARRAYS), /leave --disk-gib out/)
  t.throws(() => chooseVmStorage({ storage: 'local', disks: 2 }, ARRAYS), /leave --disks out/)
  t.throws(() => chooseVmStorage({ disks: 9 }, ARRAYS), /--disks must be a whole number from 1 to 8/)
  t.throws(() => chooseVmStorage({ disks: 0 }, ARRAYS), /--disks must be/)
  t.match(chooseVmStorage({ disks: 3 }, ARRAYS), { kind: 'replicated', disks: 3 }, 'three disks of the default size')
  t.match(chooseVmStorage({ storage: 'csv:vol1', disks: 2 }, ARRAYS), { kind: 'csv', csv: 'vol1', disks: 2 })
  t.notOk('disks' in chooseVmStorage({ disks: 1 }, ARRAYS), 'one disk is the default: not named')
  t.throws(() => chooseVmStorage({ storage: 'nfs' }, ARRAYS), /not a kind of storage/)
  t.throws(() => chooseVmStorage({ disk_gib: 5 }, ARRAYS), /from 1 to 4/)
  t.same(
    chooseVmStorage({ rc_period_ms: 2000 }, ARRAYS),
    { kind: 'replicated', size_bytes: DISK_BYTES_DEFAULT, period_ms: 2000 },
    '--rc-period-ms: a periodic group',
  )
  t.throws(() => chooseVmStorage({ storage: 'csv:vol1', rc_period_ms: 2000 }, ARRAYS), /no remote-copy group — leave --rc-period-ms out/)
  t.throws(() => chooseVmStorage({ rc_period_ms: 2000 }, [ARRAYS[0]!]), /no remote-copy group/, 'local by default with one array')
  t.throws(() => chooseVmStorage({ rc_period_ms: 0 }, ARRAYS), /--rc-period-ms must be a whole number of ms from 1/)
  t.equal(preferredSiteOf(['host-b2', 'host-a1'], HOSTS), 'site-b', 'the first preferred owner decides')
  t.equal(preferredSiteOf([], HOSTS), 'site-a', 'no preferred owner: the first host')
  t.throws(() => preferredSiteOf(['host-zz'], HOSTS), /host-zz is not a host/)
})

t.test('disk target: the array CLX made writable, the volume and the group; a mismatch is a bug', async (t) => {
  t.same(diskTargetsFor(SPEC, { array: 'array-b', group: 'rc-web1' })[0], {
    array: 'array-b',
    volume: 'web1-disk0',
    group: 'rc-web1',
    size_bytes: SPEC.size_bytes,
    csv: null,
  })
  t.throws(() => diskTargetsFor(SPEC, { array: 'array-c', group: 'rc-web1' }), /array-c/)
  t.throws(() => diskTargetsFor(SPEC, { array: 'array-a', group: 'rc-db1' }), /rc-db1/)
  t.equal(arrayOfSite(ARRAYS, 'site-b'), 'array-b')
  t.equal(arrayOfSite(ARRAYS, 'site-c'), undefined)
})

type Start = Extract<RoleEffect, { kind: 'start-vm' }>
const starts = (fx: RoleEffect[]) => fx.filter((f): f is Start => f.kind === 'start-vm')
const kinds = (fx: RoleEffect[]) => fx.flatMap((f) => (f.kind === 'emit' ? [f.event.kind] : []))

function lab() {
  const c = new RoleController()
  let now = 0
  const step = (input: RoleInput) => c.step(input, (now += 1000))
  step({ kind: 'membership', epoch: 1, nodes: HOSTS.map((h) => ({ name: h.name, status: 'up' as const, memory_mib: 8192 })) })
  return {
    c,
    step,
    advance: (ms: number) => (now += ms),
    cmd: (command: Extract<RoleInput, { kind: 'command' }>['command']) => step({ kind: 'command', command }),
  }
}

t.test(
  'a start carries the role storage; a start CLX refused is a failed start the failover policy retries, then fails over',
  async (t) => {
    const l = lab()
    l.cmd({ op: 'create', spec: { name: 'web1', memory_mib: 64, preferred_owners: ['host-b1'], storage: SPEC } })
    const [s] = starts(l.cmd({ op: 'start', name: 'web1' }))
    t.match(s, { node: 'host-b1', storage: SPEC, force_storage: false })
    const reason = 'cannot start vm web1 on host-b1: remote copy group rc-web1 is syncing on array-b; …'
    let fx = l.step({ kind: 'vm-start-failed', role: 'web1', node: 'host-b1', op: s!.op, reason, storage_refused: true })
    t.ok(kinds(fx).includes('role.storage-refused'), 'a role.storage-refused event')
    t.ok(kinds(fx).includes('role.failure'), 'counted by the failover policy')
    const nodes: string[] = []
    // keep refusing on every node of site-b: the policy restarts, then fails over, and ends on another node
    for (let i = 0; i < 12; i++) {
      if (starts(fx).length > 0) t.fail('a refused start is not retried in the same step (the restart delay)')
      const next = starts(l.step({ kind: 'timer' }))[0]
      if (next === undefined) break
      nodes.push(next.node)
      t.same(next.storage, SPEC, 'every retry carries the storage')
      if (!next.node.startsWith('host-b')) break
      fx = l.step({ kind: 'vm-start-failed', role: 'web1', node: next.node, op: next.op, reason, storage_refused: true })
    }
    t.ok(
      nodes.some((n) => n.startsWith('host-a')),
      `the policy moved it on to site-a, where the writable copy is (${nodes.join(' → ')})`,
    )
    t.match(l.c.role('web1')?.reason ?? '', /refused by storage|start/, 'the reason says why')
    // The operator forces: the next start (only) carries the force.
    l.cmd({
      op: 'create',
      spec: { name: 'web2', memory_mib: 64, preferred_owners: ['host-b1'], storage: { ...SPEC, group: 'rc-web2', volume: 'web2-disk0' } },
    })
    const [forced] = starts(l.cmd({ op: 'start', name: 'web2', force_storage: true }))
    t.match(forced, { node: 'host-b1', force_storage: true })
    const fx2 = l.step({
      kind: 'vm-start-failed',
      role: 'web2',
      node: 'host-b1',
      op: forced!.op,
      reason: 'array-b unreachable',
      storage_refused: false,
    })
    t.ok(kinds(fx2).includes('role.failure'), 'a start that failed for another reason goes to the failover policy too')
    const retried = starts(l.step({ kind: 'timer' }))
    t.equal(retried.length, 1, 'restarted after the restart delay')
    t.equal(retried[0]?.force_storage, false, 'the force was for one start')
  },
)

t.test('a start still preparing storage is not failed by an inventory until START_REPLY_WAIT_MS has passed', async (t) => {
  const l = lab()
  l.cmd({ op: 'create', spec: { name: 'web1', memory_mib: 64, preferred_owners: ['host-a1'], storage: SPEC } })
  const [s] = starts(l.cmd({ op: 'start', name: 'web1' }))
  const inventory = () => l.step({ kind: 'inventory', node: 'host-a1', vms: [], ops_at_request: l.c.opSnapshot() })
  t.notOk(kinds(inventory()).includes('role.failure'))
  t.match(l.c.role('web1'), { state: 'starting', owner: 'host-a1' })
  l.advance(START_REPLY_WAIT_MS)
  t.ok(kinds(inventory()).includes('role.failure'), 'no answer and no vm after the wait: a failure')
  t.not(s, undefined)
  // A vm without a replicated disk answers at once: a missing one is a failure right away, as before.
  l.cmd({ op: 'create', spec: { name: 'loc1', memory_mib: 64, preferred_owners: ['host-a2'] } })
  l.cmd({ op: 'start', name: 'loc1' })
  const fx = l.step({ kind: 'inventory', node: 'host-a2', vms: [], ops_at_request: l.c.opSnapshot() })
  t.ok(kinds(fx).includes('role.failure'))
})

t.test('role record: storage is kept; an old record without it decodes as local (null)', async (t) => {
  const role = createVmRole({ name: 'web1', memory_mib: 64, storage: SPEC })
  const db = { [roleKey('web1')]: encodeRole(role) }
  t.same(decodeRoles(db).roles[0]?.storage, SPEC)
  const old = JSON.parse(encodeRole(createVmRole({ name: 'old1' }))) as Record<string, unknown>
  delete old.storage
  const decoded = decodeRoles({ [roleKey('old1')]: JSON.stringify(old) })
  t.same(decoded.damaged, [])
  t.equal(decoded.roles[0]?.storage, null)
  t.throws(
    () => createVmRole({ name: 'web2', possible_owners: ['host-a1', 'host-c1'], storage: SPEC }),
    /not presented to possible owner host-c1/,
  )
})

t.test(
  'migration hooks: a move within a site or of a local vm does nothing; across sites CLX checks, then switches over in the blackout',
  async (t) => {
    const calls: string[] = []
    const result = (site: string): ClxResult => ({
      action: 'switchover',
      vm: 'web1',
      group: 'rc-web1',
      array: site === 'site-a' ? 'array-a' : 'array-b',
      forced: false,
      why: 'test',
    })
    let refuse = false
    const switched: string[] = []
    const deps = {
      clx: {
        checkForLiveMigration: async (vm: string, group: string, site: string, destination?: string) => {
          calls.push(`check ${vm} ${group} ${site} ${destination}`)
          if (refuse) throw new HvlabError('HVLAB_E_REFUSED', 'live migration of vm web1 cancelled: remote copy group rc-web1 is syncing')
          return { action: 'switchover' as const, why: 'ok' }
        },
        switchoverInBlackout: async (vm: string, group: string, site: string, destination?: string) => {
          calls.push(`switch ${vm} ${group} ${site} ${destination}`)
          return result(site)
        },
      },
      siteOf: (h: string) => HOSTS.find((x) => x.name === h)?.site,
      storageOf: (vm: string): VmStorageSpecRecord | null => (vm === 'web1' ? SPEC : vm === 'loc1' ? { kind: 'local' } : null),
      onSwitched: (vm: string, site: string, r: ClxResult) => switched.push(`${vm} ${site} ${r.array}`),
    }
    t.equal(crossSiteMove(deps, 'web1', 'host-a1', 'host-a2'), null)
    t.equal(crossSiteMove(deps, 'loc1', 'host-a1', 'host-b1'), null)
    t.equal(checkBeforeMigration(deps, 'web1', 'host-a1', 'host-a2'), null)
    await checkBeforeMigration(deps, 'web1', 'host-a1', 'host-b1')
    refuse = true
    await t.rejects(checkBeforeMigration(deps, 'web1', 'host-a1', 'host-b1')!, /cancelled: remote copy group rc-web1 is syncing/)
    const hand = clxStorageHandOver(deps)
    await hand.handOver({ vm: 'web1', mode: 'csv', source: 'host-a1', destination: 'host-a2' })
    await hand.handOver({ vm: 'web1', mode: 'csv', source: 'host-a1', destination: 'host-b1' })
    await hand.handBack({ vm: 'web1', mode: 'csv', source: 'host-a1', destination: 'host-b1' })
    t.same(calls, [
      'check web1 rc-web1 site-b host-b1',
      'check web1 rc-web1 site-b host-b1',
      'switch web1 rc-web1 site-b host-b1',
      'switch web1 rc-web1 site-a host-a1',
    ])
    t.same(switched, ['web1 site-b array-b', 'web1 site-a array-a'])
  },
)

const record = (name: string, storage: VmStorageSpecRecord | null, possible: string[] | null = null): VmRoleRecord => ({
  name,
  memory_mib: 64,
  preferred_owners: [],
  possible_owners: possible,
  failback: { enabled: false, window: null },
  state: 'running',
  owner: 'host-a1',
  last_owner: 'host-a1',
  reason: 'running',
  storage,
})

t.test('vm deps: vm → disk → group → both arrays, and an array that did not answer', async (t) => {
  const status = (role: RcGroupStatus['role'], state: 'Synced' | 'Syncing'): RcGroupStatus => ({
    group: 'rc-web1',
    partner: 'x',
    role,
    mode: 'sync',
    started: true,
    link_up: true,
    bytes_behind: 0,
    bytes_resynced_total: 0,
    generation: 0,
    volumes: [{ volume: 'web1-disk0', remote_volume: 'web1-disk0', state, bytes_behind: 0 }],
  })
  const d = vmDeps(record('web1', SPEC), { 'array-a': { status: status('primary', 'Synced') }, 'array-b': { error: 'timed out' } })
  t.match(d.disks, [
    {
      kind: 'replicated',
      volume: 'web1-disk0',
      group: 'rc-web1',
      arrays: [
        { array: 'array-a', reachable: true, role: 'primary', state: 'Synced' },
        { array: 'array-b', reachable: false },
      ],
    },
  ])
  const text = formatVmDepsTree(d)
  t.match(
    text,
    /vm web1 \(running on host-a1, 64 MiB\)\n└─ disk web1-disk0 \(16\.0 MiB\)[^\n]*\n   └─ remote copy group rc-web1 \(synchronous\)[^\n]*\n      ├─ array array-a \(natural primary\): primary, started, link up, Synced, 0 B behind\n      └─ array array-b \(natural secondary\): did not answer: timed out/,
  )
  t.match(formatVmDepsTree(vmDeps(record('loc1', null), {})), /disk: local to its host/)
  const two = vmDeps(record('web1', { ...SPEC, data_volumes: ['web1-disk1'] }), { 'array-a': { status: status('primary', 'Synced') } })
  t.same(
    two.disks.map((x) => (x.kind === 'replicated' ? `${x.volume} in ${x.group}` : x.kind)),
    ['web1-disk0 in rc-web1', 'web1-disk1 in rc-web1'],
    'a data disk: a volume of its own in the one group',
  )
  t.match(formatVmDepsTree(two), /├─ disk 0: web1-disk0[^\n]*\n│  └─ remote copy group[\s\S]*└─ disk 1: web1-disk1/)
})

t.test('cluster validate: replicated disks presented to every possible owner, on both arrays, one vm per group', async (t) => {
  const storageChecks = (
    roles: VmRoleRecord[],
    arrays?: Record<string, { volumes: string[]; presented?: Record<string, string[]> } | { error: string }>,
  ) =>
    validateCluster({ hosts: HOSTS, witness: null, statuses: {}, roles, ...(arrays ? { arrays } : {}) }).filter((c) => c.area === 'storage')
  const good = storageChecks([record('web1', SPEC)], { 'array-a': { volumes: ['web1-disk0'] }, 'array-b': { volumes: ['web1-disk0'] } })
  t.same(
    good.map((c) => c.result),
    ['pass', 'pass'],
  )
  const data = storageChecks([record('web1', { ...SPEC, data_volumes: ['web1-disk1'] })], {
    'array-a': { volumes: ['web1-disk0', 'web1-disk1'] },
    'array-b': { volumes: ['web1-disk0'] },
  })
  t.match(data, [
    { name: /disk web1-disk0/, result: 'pass' },
    { name: /disk web1-disk1/, result: 'fail', detail: /array-b has no volume web1-disk1/ },
    { result: 'pass' },
  ])
  const partial = { ...SPEC, hosts: ['host-a1', 'host-a2'] }
  t.match(storageChecks([record('web1', partial)]), [{ result: 'fail', detail: /not presented to host-b1, host-b2/ }, { result: 'pass' }])
  t.match(
    storageChecks([record('web1', partial, ['host-a1', 'host-a2'])]),
    [{ result: 'pass' }, { result: 'pass' }],
    'possible owners limited to the presented hosts',
  )
  t.match(storageChecks([record('web1', SPEC)], { 'array-a': { volumes: ['web1-disk0'] }, 'array-b': { volumes: [] } }), [
    { result: 'fail', detail: /array array-b has no volume web1-disk0/ },
  ])
  t.match(storageChecks([record('web1', SPEC)], { 'array-a': { volumes: ['web1-disk0'] }, 'array-b': { error: 'timed out' } }), [
    { result: 'fail', detail: /array-b did not answer/ },
  ])
  // the arrays' own LUN masking: a host the record lists but an array does not present to fails the check
  const all = ['host-a1', 'host-a2', 'host-b1', 'host-b2']
  const masked = (b: string[]) => ({
    'array-a': { volumes: ['web1-disk0'], presented: { 'web1-disk0': all } },
    'array-b': { volumes: ['web1-disk0'], presented: { 'web1-disk0': b } },
  })
  t.match(storageChecks([record('web1', SPEC)], masked(all)), [{ result: 'pass', detail: /LUN presentations/ }, { result: 'pass' }])
  t.match(storageChecks([record('web1', SPEC)], masked(['host-a1', 'host-a2', 'host-b1'])), [
    { result: 'fail', detail: /array-b does not present it to host-b2/ },
  ])
  // a VM on a CSV: the CSV's volume must be presented to every possible owner
  const csvSpec = { kind: 'csv' as const, csv: 'v1', region: 'db1', size_bytes: 1 << 20, array: 'array-a', volume: 'csv-v1' }
  t.match(storageChecks([record('db1', csvSpec)], { 'array-a': { volumes: ['csv-v1'], presented: { 'csv-v1': all } } }), [
    { result: 'pass', name: /Cluster Shared Volume v1/ },
  ])
  t.match(storageChecks([record('db1', csvSpec)], { 'array-a': { volumes: ['csv-v1'], presented: { 'csv-v1': ['host-a1'] } } }), [
    { result: 'fail', detail: /does not present it to host-a2, host-b1, host-b2/ },
  ])
  t.match(storageChecks([record('db1', csvSpec)], { 'array-a': { volumes: [] } }), [{ result: 'fail', detail: /has no volume csv-v1/ }])
  const shared = storageChecks([record('web1', SPEC), record('web2', { ...SPEC, volume: 'web2-disk0' })])
  t.match(shared.at(-1), { name: 'one vm per remote-copy group', result: 'fail', detail: /rc-web1 holds web1, web2/ })
})

t.test('per-vm order: a stop waits for the start before it (even a slow CLX one); other vms do not wait', async (t) => {
  const inOrder = perVmOrder()
  const log: string[] = []
  let release!: () => void
  const gate = new Promise<void>((r) => (release = r))
  const start = inOrder('web1', async () => {
    await gate
    log.push('start web1')
    return 1
  })
  const stop = inOrder('web1', async () => {
    log.push('stop web1')
    return 2
  })
  const other = inOrder('db1', async () => {
    log.push('start db1')
    throw new Error('db1 failed')
  })
  await t.rejects(other, /db1 failed/)
  t.same(log, ['start db1'])
  release()
  t.equal(await start, 1)
  t.equal(await stop, 2)
  t.same(log, ['start db1', 'start web1', 'stop web1'])
  t.equal(await inOrder('db1', async () => 3), 3, 'a failed op does not block the next one')
})

t.test('a migration check names the destination host in its refusal, and changes nothing', async (t) => {
  const { ClxService } = await import('../../agent/clx/clx-service.js')
  const { ManualClock } = await import('../../shared/clock.js')
  const group = (role: RcGroupStatus['role'], started: boolean): RcGroupStatus => ({
    group: 'rc-web1',
    partner: 'x',
    role,
    mode: 'sync',
    started,
    link_up: true,
    bytes_behind: 0,
    bytes_resynced_total: 0,
    generation: 0,
    volumes: [{ volume: 'web1-disk0', remote_volume: 'web1-disk0', state: started ? 'Synced' : 'Stopped', bytes_behind: 0 }],
  })
  const asked: string[] = []
  const events: string[] = []
  const clx = new ClxService({
    host: 'host-b1',
    arrays: ARRAYS,
    clock: new ManualClock(0),
    emit: (kind) => events.push(kind),
    admin: {
      request: async (array, m) => {
        asked.push(`${array} ${m.t}`)
        if (m.t !== 'rc-status-request') throw new Error(`unexpected ${m.t}`)
        return { t: 'rc-status', groups: [array === 'array-b' ? group('primary-rev', false) : group('secondary-rev', false)] }
      },
    },
  })
  await t.rejects(
    clx.checkForLiveMigration('web1', 'rc-web1', 'site-a', 'host-a1', 'quick-migration'),
    /^cannot quick-migrate vm web1 to host-a1: remote copy group rc-web1 is stopped on array-b; start it with `hvlab rcopy start rc-web1`, then move the VM again$/,
    'a quick move names the stopped group and the command that starts it; no force (a move has none)',
  )
  t.same(events, ['clx.refused'])
  t.ok(
    asked.every((a) => a.endsWith('rc-status-request')),
    'only status was asked',
  )
})

t.test(
  'both arrays hold the group as a writable copy (a failover during a cut): the stale side is refused even forced, the newest runs',
  async (t) => {
    const { decideClx } = await import('../../agent/clx/clx-decision.js')
    const st = (role: RcGroupStatus['role'], generation = 0): RcGroupStatus => ({
      group: 'rc-web1',
      partner: 'x',
      role,
      mode: 'sync',
      started: true,
      link_up: true,
      bytes_behind: 0,
      bytes_resynced_total: 0,
      generation,
      volumes: [{ volume: 'web1-disk0', remote_volume: 'web1-disk0', state: 'Synced', bytes_behind: 0 }],
    })
    const input = (local: RcGroupStatus['role'], remote: RcGroupStatus['role'], force = false, local_gen = 0, remote_gen = 0) => ({
      vm: 'web1',
      group: 'rc-web1',
      host: 'host-b1',
      host_site: 'site-b',
      force,
      local: { array: 'array-b', reachable: true as const, status: st(local, local_gen) },
      remote: { array: 'array-a', reachable: true as const, status: st(remote, remote_gen) },
    })
    t.match(
      decideClx(input('primary', 'primary-rev', true, 0, 1)),
      {
        action: 'refuse',
        reason: 'both-primary',
        forceable: false,
        message: /both hold remote copy group rc-web1 as a writable copy[\s\S]*hvlab rcopy recover rc-web1/,
      },
      'the stale side (lower generation) is refused, even forced',
    )
    t.match(
      decideClx(input('primary', 'primary-rev', false, 0, 0)),
      { action: 'refuse', reason: 'both-primary' },
      'equal generations: nobody can tell, refused',
    )
    t.match(
      decideClx(input('primary-rev', 'primary', false, 1, 0)),
      { action: 'none', array: 'array-b', why: /newest writable copy/ },
      'the side that failed over last runs the vm',
    )
    t.match(decideClx(input('primary', 'secondary')), { action: 'none', array: 'array-b' })
    t.match(
      decideClx({ ...input('primary-rev', 'primary'), remote: { array: 'array-a', reachable: false, error: 'closed' } }),
      { action: 'none' },
      'the other array lost: nothing to compare with',
    )
  },
)
