/**
 * Cluster Extension (CLX) and the VMs' default storage in the default two-site lab, one
 * lab start, through the real CLI: `vm create` gives web1 a replicated disk (volume on
 * array-a, its own synchronous group rc-web1, Synced) that `vm deps` shows and `cluster
 * validate` checks; a quick move within site-a does no storage failover; a live migration
 * to host-b1 switches the group over inside its blackout (array-b writable, the guest's
 * disk writes follow with zero refused); with the group stopped a cross-site
 * move is refused with a clear message and a clx.refused event and the VM stays where it
 * was; once Synced again, losing site-b entirely (kill -9 of array-b, host-b1, host-b2)
 * brings the VM up in site-a by a CLX failover, writing its disk with a newer epoch.
 */
import t from 'tap'
import type { MigrationResultMessage, VmRoleRecord } from '../../shared/protocol/cluster-messages.js'
import type { RcGroupStatus } from '../../shared/protocol/storage-messages.js'
import { startLab, type TestLab } from './lab-fixture.js'

const WAIT_MS = 120_000
const VM = 'web1'
const GROUP = 'rc-web1'

type Event = Awaited<ReturnType<TestLab['events']>>[number]
const ok = (t: { equal(a: unknown, b: unknown, m: string): unknown }, r: { code: number; stderr: string }, what: string) =>
  t.equal(r.code, 0, `${what}: ${r.stderr}`)

const runningOn = (lab: TestLab, hosts: string[]) => lab.vmRunningOn(VM, hosts, WAIT_MS)
const groupOn = async (lab: TestLab, array: string): Promise<RcGroupStatus | undefined> =>
  (await lab.control().request(array, { t: 'rc-status-request', group: GROUP }, 'rc-status', 5000)).groups.find((g) => g.group === GROUP)
const synced = (lab: TestLab, array: string) =>
  lab.waitFor(
    `${GROUP} Synced on ${array}`,
    async () => {
      const g = await groupOn(lab, array)
      return g && g.started && g.link_up && g.bytes_behind === 0 && g.volumes.length > 0 && g.volumes.every((v) => v.state === 'Synced')
        ? g
        : undefined
    },
    WAIT_MS,
  )
const lastSeq = async (lab: TestLab): Promise<number> => Math.max(0, ...(await lab.events()).map((e) => e.seq))
const eventsSince = async (lab: TestLab, seq: number): Promise<Event[]> =>
  (await lab.events()).filter((e) => e.seq > seq && e.details.vm === VM)
type DiskCounters = {
  array: string
  volume: string
  state: string
  writes_acked: number
  writes_refused: number
  write_errors: number
  last_epoch: number | null
}
/** The VM's disk writer as `vm inspect` shows it, once it has acked more than `after` writes on `array`. */
const diskWriting = (lab: TestLab, array: string, after = 0) =>
  lab.waitFor(
    `${VM}'s disk writes acked on ${array}`,
    async () => {
      const i = await lab.vmInspect(VM) // a failed poll is retried by waitFor (and named if it times out)
      return i?.disk && i.disk.array === array && i.disk.state === 'writing' && i.disk.writes_acked > after
        ? { host: i.host, ...i.disk }
        : undefined
    },
    WAIT_MS,
  )
const quickMove = async (lab: TestLab, to: string) => {
  const r = await lab.cli('vm', 'move', VM, '--to', to, '--quick', '--json')
  return { cli: r, result: r.stdout.trim().startsWith('{') ? (JSON.parse(r.stdout) as MigrationResultMessage) : null }
}

t.test('CLX: default replicated disk, moves within and across sites, a refused move, failover after losing array-b', async (t) => {
  const { lab } = await startLab(t)

  // 1. create: the disk is provisioned before the role is committed
  ok(t, await lab.cli('vm', 'create', VM, '--memory-mib', '64', '--preferred', 'host-a1'), 'vm create')
  const a = await synced(lab, 'array-a')
  t.equal(a.role, 'primary', "the primary copy is on array-a, the preferred owner's site")
  t.equal(a.mode, 'sync', 'a synchronous group')
  t.same(
    a.volumes.map((v) => v.volume),
    [`${VM}-disk0`],
    'one vm, one group: its disk only',
  )
  const b0 = await groupOn(lab, 'array-b')
  t.equal(b0?.role, 'secondary', 'array-b holds the secondary copy')
  const again = await lab.cli('vm', 'create', VM, '--memory-mib', '64')
  t.not(again.code, 0, 'a second create of the same name is refused')
  t.match(again.stderr, /a vm with that name exists/)
  const local = await lab.cli('vm', 'create', 'loc1', '--storage', 'local')
  t.not(local.code, 0, '--storage local without a host is refused')
  t.match(local.stderr, /name that host with --preferred HOST/)
  ok(
    t,
    await lab.cli('vm', 'create', 'loc1', '--storage', 'local', '--preferred', 'host-a2'),
    'vm create --storage local --preferred host-a2',
  )
  t.match(
    (await lab.vmList()).roles.find((r) => r.name === 'loc1'),
    { possible_owners: ['host-a2'], storage: { kind: 'local' } },
    'a local disk pins the vm to its host',
  )
  const csv = await lab.cli('vm', 'create', 'csv1', '--storage', 'csv:vol1')
  t.not(csv.code, 0)
  t.match(csv.stderr, /there is no CSV vol1/, 'csv:NAME needs an existing CSV')

  const start = await lab.cli('vm', 'start', VM)
  ok(t, start, 'vm start')
  t.equal(start.stdout, `vm ${VM} is running on host-a1\n`, '`vm start` waits until it runs and names the host')
  await runningOn(lab, ['host-a1'])
  // the guest writes its disk: block writes with the owner's cluster epoch to the writable copy
  ok(t, await lab.cli('vm', 'load', VM, '--disk-iops', '40'), 'vm load --disk-iops 40')
  const d1 = await diskWriting(lab, 'array-a')
  t.equal(d1.volume, `${VM}-disk0`, 'the guest writes its own volume')
  t.ok(d1.last_epoch !== null && d1.last_epoch > 0, `writes carry the owner's cluster epoch (${d1.last_epoch})`)
  t.equal(d1.writes_refused, 0, 'no write refused')
  const rate = await lab.waitFor(
    'an achieved write rate in vm inspect',
    async () => {
      const i = (await lab.vmInspect(VM)) as { disk?: { writes_acked_per_s?: number } | null } | undefined
      return (i?.disk?.writes_acked_per_s ?? 0) > 0 ? i!.disk!.writes_acked_per_s! : undefined
    },
    WAIT_MS,
  )
  t.ok(rate > 0, `vm inspect shows the achieved rate next to the requested one (${rate} writes/s of 40)`)
  t.match((await lab.cli('vm', 'inspect', VM)).stdout, /achieved \d+\.\d writes\/s of 40 requested, \d+\.\d skipped\/s/)
  const deps = await lab.cli('vm', 'deps', VM)
  ok(t, deps, 'vm deps')
  t.match(
    deps.stdout,
    new RegExp(
      `vm ${VM} \\(running on host-a1[\\s\\S]*disk ${VM}-disk0 \\(16\\.0 MiB\\)[\\s\\S]*remote copy group ${GROUP} \\(synchronous\\)[\\s\\S]*array array-a \\(natural primary\\): primary, started, link up, Synced[\\s\\S]*array array-b \\(natural secondary\\): secondary`,
    ),
    'vm deps shows vm → disk → group → arrays',
  )
  const validate = await lab
    .json<{ checks: { area: string; name: string; result: string; detail: string }[] }>('cluster', 'validate')
    .catch((e: unknown) => {
      t.fail(`hvlab cluster validate --json failed: ${e instanceof Error ? e.message : String(e)}`)
      return null
    })
  const storageChecks = validate?.checks.filter((c) => c.area === 'storage') ?? []
  t.ok(
    storageChecks.some((c) => c.name.includes(`${VM}-disk0`) && c.result === 'pass'),
    `cluster validate checks the disk: ${JSON.stringify(storageChecks)}`,
  )

  // 2. a quick move within site-a: no storage failover
  let seq = await lastSeq(lab)
  const inSite = await quickMove(lab, 'host-a2')
  ok(t, inSite.cli, 'quick move to host-a2')
  t.equal(inSite.result?.outcome, 'completed')
  await runningOn(lab, ['host-a2'])
  t.notOk(
    (await eventsSince(lab, seq)).some((e) => e.kind === 'clx.switchover' || e.kind === 'clx.failover'),
    'no CLX switchover or failover within a site',
  )
  t.equal((await groupOn(lab, 'array-a'))?.role, 'primary', 'array-a is still the primary')

  // 3. a live migration to site-b while the guest writes its disk: CLX checks the group
  //    before and switches it over inside the blackout; memory hashes match at the switch
  seq = await lastSeq(lab)
  const live = await lab.cli('vm', 'migrate', VM, '--to', 'host-b1', '--verify', '--json')
  ok(t, live, 'live migration to host-b1')
  const across = JSON.parse(live.stdout) as MigrationResultMessage & { hashes_match?: boolean }
  t.equal(across.outcome, 'completed', `live-migrated across sites: ${across.reason}`)
  t.equal(across.hashes_match, true, 'memory on host-b1 equals memory on host-a2 at the pause')
  t.comment(`cross-site live migration: blackout ${across.blackout_ms} ms (with the CLX switchover and --verify hashing inside it)`)
  await runningOn(lab, ['host-b1'])
  const d2 = await diskWriting(lab, 'array-b')
  t.equal(d2.host, 'host-b1', 'after the switchover the guest writes array-b, from host-b1')
  t.equal(d2.writes_refused, 0, 'and no write was refused')
  const sw = (await eventsSince(lab, seq)).find((e) => e.kind === 'clx.switchover')
  t.match(sw?.details, { group: GROUP, from_array: 'array-a', to_array: 'array-b' }, 'a clx.switchover event')
  const status = await lab.json<{ array: string; groups: RcGroupStatus[] }[]>('rcopy', 'status', GROUP)
  const onB = status.find((s) => s.array === 'array-b')?.groups.find((g) => g.group === GROUP)
  t.ok(onB && (onB.role === 'primary' || onB.role === 'primary-rev'), `rcopy status: array-b holds the writable copy (${onB?.role})`)
  await synced(lab, 'array-b')

  // 4. the group stopped: a cross-site move is refused, the VM keeps running on host-b1
  ok(t, await lab.cli('rcopy', 'stop', GROUP), 'rcopy stop')
  await lab.waitFor(`${GROUP} stopped`, async () => ((await groupOn(lab, 'array-b'))?.started === false ? true : undefined), WAIT_MS)
  seq = await lastSeq(lab)
  const refused = await quickMove(lab, 'host-a1')
  t.not(refused.cli.code, 0, 'the move fails')
  t.equal(refused.result?.outcome, 'failed')
  t.match(
    refused.result?.reason,
    new RegExp(
      `^cannot quick-migrate vm ${VM} to host-a1: remote copy group ${GROUP} is stopped on array-b; start it with \`hvlab rcopy start ${GROUP}\``,
    ),
    `a clear reason: ${refused.result?.reason}`,
  )
  const ref = (await eventsSince(lab, seq)).find((e) => e.kind === 'clx.refused')
  t.match(ref?.details, { group: GROUP, reason: 'stopped' }, 'a clx.refused event')
  t.equal((await runningOn(lab, ['host-b1'])).owner, 'host-b1', 'still running on host-b1')
  t.notOk(
    (await eventsSince(lab, seq)).some((e) => e.kind === 'vm.stopped'),
    'it was never stopped',
  )

  // 5. Synced again; then site-b is lost entirely (its array and both hosts): with host-a1,
  //    host-a2 and the witness the cluster keeps quorum, and CLX fails the group over to array-a
  ok(t, await lab.cli('rcopy', 'start', GROUP), 'rcopy start')
  await synced(lab, 'array-b')
  seq = await lastSeq(lab)
  ok(t, await lab.cli('kill', 'array-b'), 'kill -9 array-b')
  ok(t, await lab.cli('kill', 'host-b1'), 'kill -9 host-b1')
  ok(t, await lab.cli('kill', 'host-b2'), 'kill -9 host-b2')
  const after = await runningOn(lab, ['host-a1', 'host-a2'])
  t.ok(after.owner === 'host-a1' || after.owner === 'host-a2', `the vm came up in site-a (${after.owner})`)
  const fo = (await eventsSince(lab, seq)).find((e) => e.kind === 'clx.failover')
  t.match(fo?.details, { group: GROUP, array: 'array-a' }, 'a clx.failover event on array-a')
  // a restart is a fresh boot: the guest's load starts at its defaults, so set it again
  ok(t, await lab.cli('vm', 'load', VM, '--disk-iops', '40'), 'vm load --disk-iops 40 after the failover')
  const d3 = await diskWriting(lab, 'array-a')
  t.equal(d3.host, after.owner, `after the failover the guest writes array-a from ${after.owner}`)
  t.ok(
    (d3.last_epoch ?? 0) > (d2.last_epoch ?? 0),
    `with a newer cluster epoch than before the failover (${d2.last_epoch} → ${d3.last_epoch})`,
  )
  const a2 = await groupOn(lab, 'array-a')
  t.ok(a2?.role === 'primary' || a2?.role === 'primary-rev', `array-a holds the writable copy (${a2?.role})`)
})
