/**
 * The guest service and the lab's virtual switch in the default two-site lab, one lab
 * start: `hvlab vm ping` through the real CLI (replies, unknown address); then a VM under
 * load live-migrates host-a1 → host-a2 while a client (the CLI's own ping module, in this
 * process) pings it every 3 ms: no reply is lost, the longest gap is reported, the guest's
 * value never goes backwards, both hosts answered, and memory hashes match (--verify).
 * Then "cut the network mid round": a busy VM's migration is cut during pre-copy by
 * partitioning the destination off; the migration fails, the VM keeps running on the source and
 * every ping is still answered there; `heal` restores the network.
 */
import t from 'tap'
import type { MigrationResultMessage, VmRoleRecord } from '../../shared/protocol/cluster-messages.js'
import { pingVm } from '../../scripts/cli/guest-commands.js'
import type { PingSummary } from '../../scripts/cli/ping-tally.js'
import { startLab, type TestLab } from './lab-fixture.js'

const WAIT_MS = 120_000
const PING_INTERVAL_MS = 3

type Result = MigrationResultMessage & { blackoutMs: number | null; hashes_match?: boolean }
type PingJson = PingSummary & { vm: string }

const ok = (t: { equal(a: unknown, b: unknown, m: string): unknown }, r: { code: number; stderr: string }, what: string) => t.equal(r.code, 0, `${what}: ${r.stderr}`)

const runningOn = (lab: TestLab, vm: string, host: string) => lab.vmRunningOn(vm, [host], WAIT_MS)
const switchKnows = (lab: TestLab, vm: string, host: string) =>
  lab.waitFor(`the switch routes ${vm} to ${host}`, async () => ((await lab.events()).some((e) => e.source === host && (e.kind === 'vm.started' || e.kind === 'vm.location') && e.details.vm === vm) ? true : undefined), WAIT_MS)

/** Pings `vm` in the background until `stop()`; resolves with the tally once the last replies are in. */
const backgroundPing = (lab: TestLab, vm: string) => {
  let stop: () => void = () => {}
  const stopped = new Promise<void>((r) => (stop = r))
  const done = pingVm({ vm, dir: lab.dir, interval_ms: PING_INTERVAL_MS, count: null, timeout_ms: 20_000, stop: stopped })
  return { stop, done }
}
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

t.test('vm ping follows a live migration without losing a reply; a cut mid pre-copy leaves the VM answering on its source', async (t) => {
  const { lab } = await startLab(t)
  ok(t, await lab.cli('vm', 'create', 'web1', '--memory-mib', '64', '--preferred', 'host-a1'), 'create web1')
  ok(t, await lab.cli('vm', 'create', 'big1', '--memory-mib', '256', '--preferred', 'host-a1'), 'create big1')
  for (const vm of ['web1', 'big1']) ok(t, await lab.cli('vm', 'start', vm), `start ${vm}`)
  await runningOn(lab, 'web1', 'host-a1')
  await runningOn(lab, 'big1', 'host-a1')
  await switchKnows(lab, 'web1', 'host-a1')
  await switchKnows(lab, 'big1', 'host-a1')

  // 1. the CLI: replies, and an address nobody announced
  const p1 = await lab.cli('vm', 'ping', 'web1', '--count', '20', '--interval-ms', '5', '--json')
  ok(t, p1, 'vm ping web1')
  const s1 = JSON.parse(p1.stdout) as PingJson
  t.match(s1, { sent: 20, received: 20, lost: 0, outOfOrder: 0, duplicates: 0, hosts: ['host-a1'], valueContinuous: true }, 'every ping answered by host-a1')
  t.equal(s1.lastValue! - s1.firstValue!, 19, 'the guest value rose by one per reply')
  const p2 = await lab.cli('vm', 'ping', 'nosuch', '--count', '2', '--interval-ms', '5', '--json')
  t.equal(p2.code, 1, 'pinging an unknown address fails')
  const s2 = JSON.parse(p2.stdout) as PingJson
  t.match(s2, { sent: 2, received: 0, lost: 2, unreachable: 2 })
  t.match(s2.reasons[0], /no such address/, 'at once, with a reason')

  // 2. live migration under load while pinging every few ms
  ok(t, await lab.cli('vm', 'load', 'web1', '--dirty-mib-s', '20'), 'load web1')
  const ping = backgroundPing(lab, 'web1')
  await sleep(1000)
  const live = await lab.cli('vm', 'migrate', 'web1', '--to', 'host-a2', '--verify', '--json')
  ok(t, live, 'vm migrate --verify')
  const r = JSON.parse(live.stdout) as Result
  t.equal(r.outcome, 'completed', 'the live migration completed')
  t.equal(r.hashes_match, true, 'memory hashes match at the switch-over')
  await runningOn(lab, 'web1', 'host-a2')
  await sleep(1000)
  ping.stop()
  const s = await ping.done
  t.comment(`ping during migration: sent ${s.sent}, received ${s.received}, lost ${s.lost}, out of order ${s.outOfOrder}, longest gap ${s.maxGapMs} ms (blackoutMs ${r.blackoutMs}), longest round trip ${s.maxRttMs} ms`)
  t.ok(s.sent > 100, `pinged throughout (${s.sent} pings)`)
  t.equal(s.lost, 0, `no reply lost (${s.reasons.join('; ')})`)
  t.equal(s.received, s.sent, 'every ping answered')
  t.equal(s.duplicates, 0, 'no duplicates')
  t.same(s.hosts, ['host-a1', 'host-a2'], 'answered by the source, then by the destination')
  t.equal(s.valueContinuous, true, 'the guest value never went backwards: memory moved intact')
  t.type(s.maxGapMs, 'number', 'the longest gap is reported')

  // 3. cut the network between source and destination mid pre-copy
  ok(t, await lab.cli('vm', 'load', 'big1', '--dirty-mib-s', '400', '--hot', '0.5'), 'load big1 hard')
  const seq0 = Math.max(0, ...(await lab.events()).map((e) => e.seq))
  const ping2 = backgroundPing(lab, 'big1')
  const migrating = lab.cli('vm', 'migrate', 'big1', '--to', 'host-a2', '--max-rounds', '1000', '--budget-ms', '1', '--json')
  await lab.waitFor('big1 in pre-copy', async () => ((await lab.events()).some((e) => e.seq > seq0 && e.kind === 'migration.precopy' && e.details.vm === 'big1') ? true : undefined), WAIT_MS)
  // Cut the destination off (from the source, the other hosts and the witness): the migration
  // fails and the cluster keeps host-a1, so big1 stays where it is. (Cutting only host-a1 from
  // host-a2 would also make the cluster drop one of the two, which may be the source.)
  await lab.control().post('/v1/partition', { a: ['host-a2'], b: ['host-a1', 'host-b1', 'host-b2', 'witness'] })
  const cut = await migrating
  const c = JSON.parse(cut.stdout) as Result
  t.not(c.outcome, 'completed', `the migration did not complete: ${c.outcome}: ${c.reason}`)
  t.equal(cut.code, 1, 'vm migrate exits 1')
  await runningOn(lab, 'big1', 'host-a1')
  const inspect = await lab.json<{ host: string; running: boolean; paused: boolean }>('vm', 'inspect', 'big1')
  t.match(inspect, { host: 'host-a1', running: true, paused: false }, 'the guest runs on the source, not paused')
  await sleep(1000)
  ping2.stop()
  const s3 = await ping2.done
  t.comment(`ping during the cut migration: sent ${s3.sent}, received ${s3.received}, lost ${s3.lost}, longest gap ${s3.maxGapMs} ms`)
  t.equal(s3.lost, 0, `no reply lost (${s3.reasons.join('; ')})`)
  t.same(s3.hosts, ['host-a1'], 'only the source answered')
  t.equal(s3.valueContinuous, true, 'the guest value never went backwards')
  ok(t, await lab.cli('heal'), 'heal')
})
