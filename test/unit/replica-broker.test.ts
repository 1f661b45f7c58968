/**
 * The cluster's Replica Broker (agent/cluster/replica-broker.ts): its settings as the cluster
 * database keeps them, its allow list, where it places a failed-over VM's reverse replica;
 * and a replica server asking it (agent/replica/reverse-placement.ts): through any member, the
 * broker's owner named by another member, the last placement kept while nobody answers; its
 * role in the role controller; a replica's record written before it.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { ManualClock } from '../../shared/clock.js'
import { HvlabError } from '../../shared/errors.js'
import type { RoleCommandMessage, VmStorageSpecRecord } from '../../shared/protocol/cluster-messages.js'
import type { Message } from '../../shared/protocol/messages.js'
import { REPLICA_BROKER_ROLE } from '../../shared/protocol/replica-limits.js'
import { replicaBrokerSettingsSchema, type ReplicationSetting } from '../../shared/protocol/replica-messages.js'
import { brokerOf, checkBrokerAllows, placeReverseReplica, type ReversePlacementInput } from '../../agent/cluster/replica-broker.js'
import { encodeRole, roleKey } from '../../agent/cluster/role-record.js'
import { changeVmRole, createVmRole } from '../../agent/cluster/vm-role.js'
import { readReplicaVmRecord, recordPath } from '../../agent/replica/replica-vm-record.js'
import { ReversePlacements } from '../../agent/replica/reverse-placement.js'
import { placeReverse } from '../../agent/replica/replica-broker-service.js'
import { RoleController, type RoleCommand, type RoleEffect, type RoleInput } from '../../agent/cluster/role-controller.js'

const SITES = { a1: 'site-a', a2: 'site-a', b1: 'site-b', b2: 'site-b' }
const RC: VmStorageSpecRecord = {
  kind: 'replicated',
  group: 'rc-web1',
  volume: 'web1-disk0',
  size_bytes: 1 << 20,
  mode: 'sync',
  arrays: { primary: 'array-a', secondary: 'array-b' },
  hosts: ['a1', 'a2', 'b1', 'b2'],
}
const CSV: VmStorageSpecRecord = { kind: 'csv', csv: 'csv1', region: 'web1', size_bytes: 1 << 20, array: 'array-a', volume: 'csv1-vol' }

const input = (o: Omit<Partial<ReversePlacementInput>, 'vm'> & { vm?: Partial<ReversePlacementInput['vm']> }): ReversePlacementInput => ({
  broker_node: 'b1',
  members: ['a1', 'a2', 'b1', 'b2'],
  sites: SITES,
  current: undefined,
  ...o,
  vm: { preferred_owners: [], possible_owners: null, storage: RC, last_owner: 'a1', ...o.vm },
})

t.test('placement: a member that can write the VM volume, in the site it last ran in', async (t) => {
  t.equal(placeReverseReplica(input({ broker_node: 'a2' })), 'a2', "the broker's own node when it can")
  t.equal(
    placeReverseReplica(input({ vm: { preferred_owners: ['b2', 'a2', 'a1'] } })),
    'a2',
    "else the VM's first preferred owner in its site",
  )
  t.equal(placeReverseReplica(input({})), 'a1', 'else the members of its site by name')
  t.equal(placeReverseReplica(input({ members: ['b1', 'b2'] })), 'b1', "its site down: the broker's node in the other")
  t.equal(placeReverseReplica(input({ current: 'a2', broker_node: 'a1' })), 'a2', 'a placed member that is up keeps it')
  t.equal(placeReverseReplica(input({ current: 'a2', members: ['a1', 'b1', 'b2'] })), 'a1', 'a placed member gone: placed again')
  t.equal(
    placeReverseReplica(input({ broker_node: 'a1', vm: { storage: { ...RC, hosts: ['a2', 'b1'] } } })),
    'a2',
    'only a host the volume is presented to',
  )
  t.equal(placeReverseReplica(input({ broker_node: 'a1', vm: { possible_owners: ['a2', 'b2'] } })), 'a2', 'only a possible owner')
  t.equal(placeReverseReplica(input({ broker_node: 'b1', vm: { storage: CSV } })), 'b1', 'a CSV region: writable from every node')
  t.equal(placeReverseReplica(input({ vm: { storage: { kind: 'local' } } })), null, 'a local disk: nowhere')
  t.equal(placeReverseReplica(input({ vm: { storage: null } })), null, 'no disk: nowhere')
  t.equal(placeReverseReplica(input({ members: [] })), null, 'no member up: nowhere')
})

t.test("the broker's settings: validated, kept in its role, read back from the database", async (t) => {
  t.ok(replicaBrokerSettingsSchema.safeParse({ allow_any: false, allow: ['dr1'] }).success)
  t.notOk(replicaBrokerSettingsSchema.safeParse({ allow_any: true, allow: ['dr1'] }).success, 'any and a list: refused')
  t.notOk(replicaBrokerSettingsSchema.safeParse({ allow_any: false, allow: ['DR 1'] }).success, 'a bad name: refused')
  const nine = Array.from({ length: 9 }, (_, i) => `dr${i}`)
  t.notOk(replicaBrokerSettingsSchema.safeParse({ allow_any: false, allow: nine }).success, 'more than 8: refused')

  const config: Record<string, string> = {}
  t.equal(brokerOf(config), null, 'none')
  const role = changeVmRole(createVmRole({ name: REPLICA_BROKER_ROLE, memory_mib: 32 }), {
    replica_broker: { allow_any: false, allow: ['dr1'] },
  })
  config[roleKey(REPLICA_BROKER_ROLE)] = encodeRole(role)
  t.same(brokerOf(config), { settings: { allow_any: false, allow: ['dr1'] }, running_on: null }, 'stopped: runs nowhere')
  config[roleKey(REPLICA_BROKER_ROLE)] = encodeRole({ ...role, state: 'running', owner: 'a2' })
  t.same(brokerOf(config)?.running_on, 'a2')
  config[roleKey(REPLICA_BROKER_ROLE)] = encodeRole({ ...role, state: 'starting', owner: 'a2' })
  t.same(brokerOf(config)?.running_on, null, 'starting: not yet')

  t.throws(
    () => changeVmRole(createVmRole({ name: 'web1' }), { replica_broker: { allow_any: true, allow: [] } }),
    { code: 'HVLAB_E_USAGE' },
    'another role takes no broker settings',
  )
  t.throws(
    () => changeVmRole(role, { replication: { to: 'dr1', frequency_ms: 30_000, recovery_points: 0, compress: false } }),
    { code: 'HVLAB_E_USAGE' },
    'the broker is not replicated',
  )
})

t.test("the broker's allow list", async (t) => {
  t.doesNotThrow(() => checkBrokerAllows({ allow_any: false, allow: ['dr1'] }, 'dr1'))
  t.doesNotThrow(() => checkBrokerAllows({ allow_any: true, allow: [] }, 'dr9'))
  t.throws(() => checkBrokerAllows({ allow_any: false, allow: ['dr1'] }, 'dr2'), {
    code: 'HVLAB_E_REFUSED',
    detail: 'HVLAB_E_REPLICA_NOT_ALLOWED',
    message: /--allow dr1,dr2/,
  })
})

/** A replica server's placements over members answering from `answers` (a member absent: not connected). */
function placements(answers: Record<string, (q: Message) => Message>, reversed = ['web1'], elsewhere: string[] = []) {
  const asked: string[] = []
  const p = new ReversePlacements({
    runsElsewhere: (vm) => void elsewhere.push(vm),
    server: 'dr1',
    clock: new ManualClock(0),
    members: ['a1', 'a2', 'b1'],
    reversed: () => reversed,
    ask: async (node, q) => {
      asked.push(node)
      const answer = answers[node]
      if (answer === undefined) throw new HvlabError('HVLAB_E_CLOSED', `no connection to ${node}`)
      return answer(q)
    },
    log: { info: () => undefined, warn: () => undefined },
  })
  return { p, asked }
}

const reply = (host: string | null, broker_owner: string | null) => (): Message => ({
  t: 'replica-broker-place-reply',
  vm: 'web1',
  host,
  broker_owner,
})

t.test('a replica server asks the broker where its reverse replicas go', async (t) => {
  const answers: Record<string, (q: Message) => Message> = { a2: reply(null, 'b1'), b1: reply('a2', 'b1') }
  const { p, asked } = placements(answers)
  await p.refresh()
  t.equal(p.hostOf('web1'), 'a2', "the broker's owner placed it")
  t.same(asked, ['a1', 'a2', 'b1'], 'a1 not connected, a2 named the owner')
  asked.length = 0
  await p.refresh()
  t.same(asked, ['b1'], 'the owner is asked first from then on')

  answers.b1 = reply('a1', 'b1')
  await p.refresh()
  t.equal(p.hostOf('web1'), 'a1', 'placed again: the next answer says so')

  delete answers.b1
  delete answers.a2
  await p.refresh()
  t.equal(p.hostOf('web1'), 'a1', 'nobody answers: the last placement stays')

  answers.a2 = () => {
    throw new HvlabError('HVLAB_E_REPLICA_NOT_ALLOWED', 'the broker does not take replication from dr1')
  }
  await p.refresh()
  t.match(p.errorOf('web1'), { detail: 'HVLAB_E_REPLICA_NOT_ALLOWED' }, 'a refusal is kept for the status')
})

t.test('the broker says the VM runs in its cluster as its own: the asker is told its copy is the older', async (t) => {
  const elsewhere: string[] = []
  const refusal = new HvlabError('HVLAB_E_REPLICA_NOT_ALLOWED', 'not allowed')
  const answers: Record<string, (q: Message) => Message> = {
    a1: () => {
      throw refusal
    },
  }
  const { p } = placements(answers, ['web1'], elsewhere)
  await p.refresh()
  t.same(elsewhere, [], 'another refusal is no such word')
  answers.a1 = () => {
    throw new HvlabError('HVLAB_E_REPLICA_RUNS_ELSEWHERE', 'vm web1 failed over to cluster dr and runs there')
  }
  await p.refresh()
  t.same(elsewhere, ['web1'], 'the stable code is')
  t.equal(p.hostOf('web1'), undefined, 'and nothing is placed')
})

t.test('a VM no longer replicated back loses its placement', async (t) => {
  const reversed = ['web1']
  const { p } = placements({ a1: reply('a1', 'a1') }, reversed)
  await p.refresh()
  t.equal(p.hostOf('web1'), 'a1')
  reversed.pop()
  await p.refresh()
  t.equal(p.hostOf('web1'), undefined)
})

t.test(
  'the broker is a role of the role controller: settings changed again are recorded, and it fails over when its node dies',
  async (t) => {
    const c = new RoleController()
    let now = 1_000_000
    const up = { a1: 'up', a2: 'up', b1: 'up' } as Record<string, 'up' | 'down'>
    const view = () => Object.entries(up).map(([name, status]) => ({ name, status, memory_mib: 8192 }))
    let epoch = 1
    const step = (input: RoleInput) => c.step(input, (now += 1000))
    step({ kind: 'membership', epoch, nodes: view() })
    const cmd = (command: RoleCommand) => step({ kind: 'command', command })
    cmd({ op: 'create', spec: { name: REPLICA_BROKER_ROLE, memory_mib: 32 } })
    const settings = (allow: string[]) => ({ allow_any: false, allow })
    const written = (fx: RoleEffect[]) => fx.flatMap((f) => (f.kind === 'write-role-record' ? [f.role] : []))
    t.match(written(cmd({ op: 'set', name: REPLICA_BROKER_ROLE, changes: { replica_broker: settings(['dr2']) } })), [
      { replica_broker: settings(['dr2']) },
    ])
    t.match(
      written(cmd({ op: 'set', name: REPLICA_BROKER_ROLE, changes: { replica_broker: settings(['dr1']) } })),
      [{ replica_broker: settings(['dr1']) }],
      'enabling again changes its settings',
    )
    const start = (fx: RoleEffect[]) => fx.find((f): f is Extract<RoleEffect, { kind: 'start-vm' }> => f.kind === 'start-vm')
    const first = start(cmd({ op: 'start', name: REPLICA_BROKER_ROLE }))!
    step({ kind: 'vm-started', role: first.role, node: first.node, op: first.op })
    t.match(c.role(REPLICA_BROKER_ROLE), { state: 'running', owner: first.node })
    up[first.node] = 'down'
    const again = start(step({ kind: 'membership', epoch: ++epoch, nodes: view() }))
    t.ok(again !== undefined && again.node !== first.node, `its node died: started again on another (${again?.node ?? 'none'})`)
    t.match(c.role(REPLICA_BROKER_ROLE), { replica_broker: settings(['dr1']) }, 'with its settings')
  },
)

t.test('the broker is not removed while a VM replicates to the cluster through it, whoever asks', async (t) => {
  const c = new RoleController()
  let now = 1_000_000
  const step = (input: RoleInput) => c.step(input, (now += 1000))
  step({ kind: 'membership', epoch: 1, nodes: [{ name: 'a1', status: 'up', memory_mib: 8192 }] })
  const cmd = (command: RoleCommand) => step({ kind: 'command', command })
  cmd({ op: 'create', spec: { name: REPLICA_BROKER_ROLE, memory_mib: 32 } })
  cmd({ op: 'set', name: REPLICA_BROKER_ROLE, changes: { replica_broker: { allow_any: false, allow: ['dr1'] } } })
  cmd({ op: 'create', spec: { name: 'web1', memory_mib: 64 } })
  const reversed: ReplicationSetting = { to: 'dr1', frequency_ms: 30_000, recovery_points: 0, compress: false, reversed_to: 'a1' }
  cmd({ op: 'set', name: 'web1', changes: { replication: reversed } })
  t.throws(
    () => cmd({ op: 'remove', name: REPLICA_BROKER_ROLE }),
    { code: 'HVLAB_E_STATE', message: /vm web1 replicates to the cluster through the Replica Broker/ },
    'a raw removal is refused as `replica server disable cluster` is',
  )
  t.ok(c.role(REPLICA_BROKER_ROLE), 'the broker stays')
  cmd({ op: 'fail-back', name: 'web1', replication: { ...reversed, reversed_to: undefined } })
  cmd({ op: 'remove', name: REPLICA_BROKER_ROLE })
  t.equal(c.role(REPLICA_BROKER_ROLE), undefined, 'removed once none replicates through it')
})

t.test(
  'a failed-over replica recorded before the broker (its changes went back to one host) is read, the broker placing them now',
  async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'hvlab-broker-record-'))
    t.teardown(() => rmSync(dir, { recursive: true, force: true }))
    const record = {
      vm: 'web1',
      block_size_bytes: 4096,
      disk_blocks: 64,
      memory_mib: 64,
      recovery_points: 0,
      from: 'host-a1',
      state: 'failed-over',
    }
    writeFileSync(
      recordPath(dir),
      JSON.stringify({ format: 1, ...record, reverse: { to: 'host-a1', frequency_ms: 30_000, compress: false } }),
    )
    t.match(await readReplicaVmRecord(dir), { ...record, reverse: { frequency_ms: 30_000, compress: false } })
    t.notOk('to' in ((await readReplicaVmRecord(dir))?.reverse ?? {}), 'the old host is dropped')
    writeFileSync(recordPath(dir), JSON.stringify({ format: 1, ...record, reverse: { to: 'host-a1', frequency_ms: 7, compress: false } }))
    await t.rejects(readReplicaVmRecord(dir), { code: 'HVLAB_E_STATE' }, 'the rest is checked as ever')
  },
)

t.test("the broker's answer to a placement request: refusals by typed code, the placement recorded in the role", async (t) => {
  const config: Record<string, string> = {}
  const setRole = (state: 'stopped' | 'running', replication?: ReplicationSetting) => {
    config[roleKey('web1')] = encodeRole({
      ...createVmRole({ name: 'web1', memory_mib: 64, preferred_owners: ['a1'], storage: RC }),
      state,
      owner: state === 'running' ? 'a1' : null,
      ...(replication === undefined ? {} : { replication }),
    })
  }
  const setBroker = (allow: string[], owner = 'b1') => {
    config[roleKey(REPLICA_BROKER_ROLE)] = encodeRole({
      ...createVmRole({ name: REPLICA_BROKER_ROLE, memory_mib: 32 }),
      state: 'running',
      owner,
      replica_broker: { allow_any: false, allow },
    })
  }
  const commands: RoleCommandMessage[] = []
  const deps = {
    cluster: 'dr',
    database: () => ({ config }),
    members: () => ['a1', 'a2', 'b1', 'b2'],
    clusterOf: (host: string) => (host.startsWith('m') ? 'main' : null), // m1, m2: hosts of another cluster, main
    roleCommand: async (c: RoleCommandMessage) => void commands.push(c),
  }
  const ask = (first: boolean, server = 'dr1') =>
    placeReverse('b1', SITES, deps, { t: 'replica-broker-place-request', vm: 'web1', server, first })
  const FORWARD: ReplicationSetting = { to: 'dr1', frequency_ms: 30_000, recovery_points: 0, compress: false }

  await t.rejects(ask(true), { detail: 'HVLAB_E_REPLICA_NO_BROKER', message: /replica server enable cluster/ }, 'no broker')
  setBroker(['dr1'], 'a2')
  t.match(await ask(true), { host: null, broker_owner: 'a2' }, 'another member names the owner')
  setBroker(['dr2'])
  await t.rejects(
    ask(true),
    { detail: 'HVLAB_E_REPLICA_NOT_ALLOWED', message: /does not take replication from dr1/ },
    'a server the broker does not allow',
  )
  setBroker(['dr1', 'dr2'])
  await t.rejects(ask(true), { code: 'HVLAB_E_NOT_FOUND' }, 'no such vm')
  setRole('stopped', FORWARD)
  await t.rejects(
    ask(true, 'dr2'),
    { detail: 'HVLAB_E_REPLICA_NOT_ALLOWED', message: /does not replicate to dr2/ },
    'not the vm replica server',
  )
  await t.rejects(ask(false), { code: 'HVLAB_E_STATE' }, 'asked again before it was placed: nothing replicates back')
  setRole('running', FORWARD)
  await t.rejects(ask(true), { code: 'HVLAB_E_STATE', message: /only once the cluster has it stopped/ }, 'the cluster runs it')
  setRole('stopped', FORWARD)
  t.match(await ask(true), { host: 'b1', broker_owner: 'b1' }, 'placed on its own node, which can write the volume')
  t.same(commands, [{ op: 'set', name: 'web1', changes: { replication: { ...FORWARD, reversed_to: 'b1' } } }], 'recorded in the role')
  setRole('stopped', { ...FORWARD, reversed_to: 'b1' })
  await t.rejects(ask(true), { code: 'HVLAB_E_STATE', message: /already/ }, 'a first placement once')
  t.match(await ask(false), { host: 'b1' }, 'asked again: it stays')
  t.equal(commands.length, 1, 'and nothing is recorded again')

  // a VM of another cluster, main: whichever of main's hosts runs it asks, once the broker allows main
  const FROM_MAIN: ReplicationSetting = { to: 'main', to_cluster: true, frequency_ms: 30_000, recovery_points: 0, compress: false }
  setRole('stopped', { ...FROM_MAIN, reversed_to: 'b1' })
  await t.rejects(
    ask(false, 'm2'),
    { detail: 'HVLAB_E_REPLICA_NOT_ALLOWED', message: /does not take replication from m2/ },
    'main not allowed',
  )
  setBroker(['main'])
  t.match(await ask(false, 'm2'), { host: 'b1' }, 'a host of main: the VM runs there')
  t.match(await ask(false, 'm1'), { host: 'b1' }, 'any of them (the VM moved)')
  setBroker(['main', 'dr1'])
  await t.rejects(
    ask(false, 'dr1'),
    { detail: 'HVLAB_E_REPLICA_NOT_ALLOWED', message: /does not replicate to dr1/ },
    'not from a server elsewhere',
  )

  // an unplanned failover made it this cluster's own: a host of main that runs it still is told its copy is the older
  setRole('running', { ...FROM_MAIN })
  await t.rejects(
    ask(false, 'm1'),
    { code: 'HVLAB_E_STATE', message: /does not replicate back/ },
    'a planned failover: it replicates back to main',
  )
  setRole('running')
  const elsewhere = {
    detail: 'HVLAB_E_REPLICA_RUNS_ELSEWHERE',
    message: /runs in cluster dr as its own, replicating from cluster main no more.*--cluster dr replica enable web1 --to cluster:main/,
  }
  await t.rejects(ask(false, 'm1'), elsewhere, 'failed over unplanned: replicating nowhere')
  setRole('running', FORWARD)
  await t.rejects(ask(false, 'm1'), elsewhere, 'or to a server, not back to main')
  await t.rejects(ask(false, 'dr1'), { code: 'HVLAB_E_STATE', message: /does not replicate back/ }, 'its replica server is not told so')
  setRole('running')
  await t.rejects(
    ask(false, 'dr1'),
    {
      detail: 'HVLAB_E_REPLICA_RUNS_ELSEWHERE',
      message: /runs in cluster dr as its own, replicating from dr1 no more.*hvlab replica enable web1 --to dr1/,
    },
    'failed back unplanned: the replica server that ran it is told its copy is the older',
  )
  await t.rejects(
    ask(true, 'dr1'),
    { detail: 'HVLAB_E_REPLICA_NOT_ALLOWED', message: /does not replicate to dr1/ },
    "the operator's first placement is answered as before",
  )
  t.equal(commands.length, 1, 'nothing recorded')
})
