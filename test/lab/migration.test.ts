/**
 * Live and quick migration in the default two-site lab, through the real CLI, one lab
 * start: a VM under load live-migrates host-a1 → host-a2 with --verify (hashes match,
 * blackoutMs reported, the role's owner changes without a stop/start, and the source
 * releases its paused copy only after the destination runs it); quick migration reports
 * its downtime; cancel and kill -9 of the destination mid pre-copy leave the VM running
 * on the source; `node pause --drain` live-migrates the VMs away.
 */
import t from 'tap'
import type { MigrationResultMessage, VmRoleRecord } from '../../shared/protocol/cluster-messages.js'
import { startLab, type TestLab } from './lab-fixture.js'

const WAIT_MS = 90_000

type Result = MigrationResultMessage & { blackoutMs: number | null; hashes_match?: boolean }
interface Inspect {
  vm: string
  host: string
  running: boolean
  paused: boolean
  memory_sha256: string | null
  guest_heartbeats: number
}

const runningOn = (lab: TestLab, vm: string, host: string) => lab.vmRunningOn(vm, [host], WAIT_MS)

/** Resolves once the source shows the VM's migration in pre-copy round ≥ 1. */
const inPrecopy = (lab: TestLab, vm: string, round_min: number) =>
  lab.waitFor(`${vm} in pre-copy round ${round_min}`, async () => {
    const ev = await lab.events()
    return ev.some((e) => e.kind === 'migration.precopy' && e.details.vm === vm && Number(e.details.round) >= round_min) ? true : undefined
  }, WAIT_MS)

const ok = (t: { equal(a: unknown, b: unknown, m: string): unknown }, r: { code: number; stderr: string }, what: string) => t.equal(r.code, 0, `${what}: ${r.stderr}`)

t.test('live migration, quick migration, cancel, kill -9 of the destination, drain', async (t) => {
  const { lab } = await startLab(t)
  ok(t, await lab.cli('vm', 'create', 'web1', '--memory-mib', '64', '--preferred', 'host-a1'), 'create web1')
  ok(t, await lab.cli('vm', 'create', 'big1', '--memory-mib', '256', '--preferred', 'host-a1'), 'create big1')
  for (const vm of ['web1', 'big1']) ok(t, await lab.cli('vm', 'start', vm), `start ${vm}`)
  await runningOn(lab, 'web1', 'host-a1')
  await runningOn(lab, 'big1', 'host-a1')

  // 1. live migration under load, verified
  ok(t, await lab.cli('vm', 'load', 'web1', '--dirty-mib-s', '20', '--hot', '0.05'), 'load web1')
  const seq0 = Math.max(0, ...(await lab.events()).map((e) => e.seq))
  const live = await lab.cli('vm', 'migrate', 'web1', '--to', 'host-a2', '--verify', '--json')
  ok(t, live, 'vm migrate --verify')
  const r = JSON.parse(live.stdout) as Result
  t.equal(r.outcome, 'completed', 'the live migration completed')
  t.equal(r.hashes_match, true, 'memory hashes match at the switch-over')
  t.ok(r.source_sha256 !== null && r.source_sha256 === r.destination_sha256, 'source and destination sha256 are equal')
  t.type(r.blackoutMs, 'number', 'blackoutMs is reported')
  t.ok(r.rounds.length >= 1 && r.rounds[0]!.dirty_pages === 64 * 256, 'round 0 sent all memory')
  t.ok(r.bytes_raw > 0 && r.pages.scanned > 0, 'bytes and pages are reported')
  const owner = await runningOn(lab, 'web1', 'host-a2')
  t.match(owner.reason, /migrated from host-a1/, 'the role owner changed by migration')
  const ev = (await lab.events()).filter((e) => e.seq > seq0 && e.details.vm === 'web1')
  const at = (kind: string) => ev.find((e) => e.kind === kind)?.seq ?? -1
  t.ok(at('migration.blackout') > 0 && at('migration.blackout') < at('vm.arrived'), 'the source paused before the destination ran')
  t.ok(at('vm.arrived') > 0 && at('vm.arrived') < at('vm.departed'), 'the source released its copy only after the destination ran it')
  t.notOk(ev.some((e) => e.kind === 'vm.stopped' || e.kind === 'vm.started' || e.kind === 'role.stray'), 'no stop/start, no second copy found')
  t.ok(ev.some((e) => e.kind === 'vm.location' && e.details.host === 'host-a2'), 'the destination announced the new location')

  // 2. quick migration back: down for the whole copy, reported
  const quick = await lab.cli('vm', 'move', 'web1', '--to', 'host-a1', '--quick', '--json')
  ok(t, quick, 'vm move --quick')
  const q = JSON.parse(quick.stdout) as Result
  t.equal(q.outcome, 'completed')
  t.ok(typeof q.downtime_ms === 'number' && q.downtime_ms > 0, `quick migration reports its downtime (${q.downtime_ms} ms)`)
  await runningOn(lab, 'web1', 'host-a1')

  // 3. cancel mid pre-copy: stays on the source
  ok(t, await lab.cli('vm', 'load', 'big1', '--dirty-mib-s', '400', '--hot', '0.5'), 'load big1 hard')
  const cancelled = lab.cli('vm', 'migrate', 'big1', '--to', 'host-a2', '--max-rounds', '200', '--budget-ms', '1', '--json')
  await inPrecopy(lab, 'big1', 1)
  ok(t, await lab.cli('vm', 'migrate-cancel', 'big1'), 'migrate-cancel')
  const c = await cancelled
  t.equal((JSON.parse(c.stdout) as Result).outcome, 'cancelled', 'the migration was cancelled')
  await runningOn(lab, 'big1', 'host-a1')

  // 4. kill -9 the destination mid pre-copy: the VM keeps running on the source, memory intact
  const seq1 = Math.max(0, ...(await lab.events()).map((e) => e.seq))
  const killed = lab.cli('vm', 'migrate', 'big1', '--to', 'host-a2', '--max-rounds', '200', '--budget-ms', '1', '--json')
  await lab.waitFor('big1 in pre-copy again', async () => ((await lab.events()).some((e) => e.seq > seq1 && e.kind === 'migration.precopy' && e.details.vm === 'big1' && Number(e.details.round) >= 1) ? true : undefined), WAIT_MS)
  ok(t, await lab.cli('kill', 'host-a2'), 'kill -9 host-a2')
  const k = JSON.parse((await killed).stdout) as Result
  t.equal(k.outcome, 'failed', `the migration failed: ${k.reason}`)
  await runningOn(lab, 'big1', 'host-a1')
  ok(t, await lab.cli('vm', 'load', 'big1', '--dirty-mib-s', '0'), 'stop the load')
  const i1 = await lab.vmInspect('big1')
  t.equal(i1.host, 'host-a1')
  t.ok(i1.running && !i1.paused, 'the guest runs on the source, not paused')
  const i2 = await lab.waitFor('a guest heartbeat later', async () => {
    const i = await lab.vmInspect('big1')
    return i.guest_heartbeats > i1.guest_heartbeats ? i : undefined
  }, WAIT_MS)
  t.equal(i2.memory_sha256, i1.memory_sha256, 'its memory is intact (unchanged without load)')

  // 5. node pause --drain live-migrates the VMs away
  ok(t, await lab.cli('restart', 'host-a2'), 'restart host-a2')
  // as an operator would: drain only once the restarted host is back in the cluster
  await lab.waitFor('host-a2 back in the cluster with quorum', async () => {
    const hosts = (await lab.status()).cluster?.hosts ?? {}
    return ['host-a1', 'host-a2', 'host-b1', 'host-b2'].every((h) => hosts[h]?.holds_lease && hosts[h]?.members.length === 4) ? true : undefined
  }, WAIT_MS)
  const seq2 = Math.max(0, ...(await lab.events()).map((e) => e.seq))
  ok(t, await lab.cli('node', 'pause', 'host-a1', '--drain'), 'pause --drain host-a1')
  await lab.waitFor('every vm off host-a1', async () => {
    const list = await lab.vmList()
    return list.source === 'coordinator' && list.roles.every((x) => x.state === 'running' && x.owner !== null && x.owner !== 'host-a1') ? true : undefined
  }, WAIT_MS)
  const drained = (await lab.events()).filter((e) => e.seq > seq2)
  for (const vm of ['web1', 'big1']) {
    t.ok(drained.some((e) => e.kind === 'role.migrated' && e.details.role === vm), `${vm} was live-migrated off host-a1`)
    t.notOk(drained.some((e) => e.kind === 'vm.stopped' && e.details.vm === vm), `${vm} was not stopped`)
  }
})
