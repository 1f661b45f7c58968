/**
 * Hyper-V Replica in the real lab (topologies/two-site-dr.json at timeScale 0.1: a 30 s
 * cycle takes 3 s): a standalone replica server in site-dr refuses a primary it does not
 * allow; allowed, it takes the initial replication (only blocks that differ travel) and a
 * cycle every 3 s while the VM's disk writes 20 blocks a second; a live migration to host-a2
 * and back goes on from each host's last cycle with no resync. Once the writes stop and
 * the last cycle is applied, the replica's durable disk is the primary's volume byte for
 * byte. Then kill -9 the primary host while the VM writes: the VM fails over within the
 * cluster, its new host resyncs the replica (sending only the blocks that differ), and the
 * disks are identical again. A planned failover is refused until the cluster's Replica
 * Broker allows the replica server; then, with writes still unsent, it loses none of them
 * and the VM answers its pings from the replica server; an unplanned one while the primary
 * runs is refused. Its changes go back to the member the broker placed the reverse replica
 * on; that member killed, the broker places it on another and the reverse replication goes
 * on there; an unplanned fail-back while the replica server answers is refused. The replica
 * server is then killed -9 and the VM fails back unplanned, from the reverse replica's latest
 * cycle, replicating nowhere; the server, restarted, starts its older copy, is told the VM
 * runs in the cluster and stops it, and replicating to it again sends only what differs. An
 * unplanned failover to the server and a planned fail-back later give a volume byte for
 * byte the replica's disk. A VM created on
 * the replica server itself (a branch office's host) replicates to the cluster into a new
 * volume and moves into the cluster by a planned failover with nothing lost, replicating back
 * to that host from there. A third VM's initial copy goes by media: exported by its host,
 * nothing travels until it is imported on the replica server, then only the blocks written
 * since the export, and replica-dr1 forwards it to replica-dr2 (extended replication), a
 * hosting provider's server, over mutual TLS: a dialler with a certificate of another CA, or
 * without TLS, is refused there (HVLAB_E_CERT). A VM of replica-dr1's own replicates to
 * replica-dr2 (standalone host to standalone host) and fails over there planned with nothing
 * lost, replication reversed. Last,
 * a second VM's every cluster host dies at once: the
 * unplanned failover (no cluster left to ask) starts it from the replica's last cycle, a
 * crash-consistent prefix of the primary's writes, and the loss is printed. A fourth VM
 * replicating beside it keeps 2 recovery points (the fixture takes one every 3 s, a lab
 * acceleration, and the oldest are merged away), each application-consistent, and stops;
 * the replica server is killed -9 and restarted, opens with the same points (and starts
 * the VM of its own that ran, not the one stopped), and a
 * failover to the latest application-consistent one gives exactly its disk: every write
 * the host's disk write journal (HVLAB_DISK_WRITE_JOURNAL=1) shows acknowledged before
 * that point's log closed, none after, and no two-block transaction of its guest torn. The
 * cluster then returns and starts the second VM again; its replica server, which runs it since
 * the unplanned failover, refuses its replication (HVLAB_E_REPLICA_RUNS_ELSEWHERE), and the
 * cluster stops that older copy.
 */
import { createHash } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { seqsOnDisk, tornTransactions } from '../../agent/vm/disk-transactions.js'
import { encodeDiskWrite } from '../../agent/vm/disk-write-record.js'
import { DISK_WRITE_AREA_BLOCKS_MAX } from '../../agent/vm/vm-disk.js'
import type { ReplicaStatusView } from '../../scripts/cli/replica-status-command.js'
import { parseDiskJournalLine } from '../../shared/disk-journal-format.js'
import type { MessageOf } from '../../shared/protocol/messages.js'
import type { ReplicaSizeView } from '../../scripts/cli/replica-size-command.js'
import type { StandaloneVmView } from '../../scripts/cli/standalone-vms.js'
import { startLab, type LabEvent, type TestLab } from './lab-fixture.js'
import { labLayout } from '../../shared/lab-layout.js'
import { silentLogger } from '../../shared/log.js'
import { issueAuthority, issueCertificate } from '../../shared/pki/certificate-issuer.js'
import { connectPeer } from '../../shared/transport/peer-client.js'

const TOPOLOGY = fileURLToPath(new URL('./fixtures/two-site-dr-fast.json', import.meta.url))
const SERVER = 'replica-dr1'
/** The third server, for extended replication. */
const THIRD = 'replica-dr2'
const DISK_BLOCKS = (16 * 1024 * 1024) / 4096

type Tap = Pick<typeof t, 'rejects' | 'equal' | 'match'>

const status = async (lab: TestLab, vm = 'web1'): Promise<ReplicaStatusView> =>
  (await lab.json<ReplicaStatusView[]>('replica', 'status', vm, '--json'))[0]!

/** The replica's disk as the replica server has it on its storage, and the primary volume's, as SHA-256s. */
async function digests(lab: TestLab, array: string, vm = 'web1'): Promise<{ replica: string; primary: string }> {
  const image = readFileSync(join(lab.dir, 'data', SERVER, 'replica', 'vms', vm, 'disk.img'))
  const r = await lab
    .control()
    .request(array, { t: 'block-digest-request', volume: `${vm}-disk0`, block: 0, blocks: DISK_BLOCKS }, 'block-digest', 30_000)
  return { replica: createHash('sha256').update(image).digest('hex'), primary: r.sha256 }
}

/** Waits until the writes have stopped and two more cycles were applied with nothing left to send. */
async function caughtUp(lab: TestLab, vm = 'web1'): Promise<ReplicaStatusView> {
  const from = (await status(lab, vm)).primary?.cycles_applied ?? 0
  return lab.waitFor(`the replica of ${vm} to catch up once the writes stopped`, async () => {
    const s = await status(lab, vm)
    const p = s.primary
    const level = p !== null && p.cycles_applied >= from + 2 && p.pending_bytes === 0 && p.in_flight === null && !p.resyncing
    return level ? s : undefined
  })
}

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex')
const ZERO_BLOCK = sha(new Uint8Array(4096))

/** The SHA-256 of every block of a disk image. */
const imageHashes = (image: Uint8Array): string[] =>
  Array.from({ length: image.length / 4096 }, (_, b) => sha(image.subarray(b * 4096, (b + 1) * 4096)))

/** The SHA-256 of every block of a volume on an array, 256 at a time. */
async function blockHashes(lab: TestLab, array: string, volume: string): Promise<string[]> {
  const out: string[] = []
  for (let block = 0; block < DISK_BLOCKS; block += 256) {
    const r = await lab.control().request(array, { t: 'block-digest-request', volume, block, blocks: 256 }, 'block-digest', 30_000)
    out.push(...(r.block_sha256 ?? []))
  }
  return out
}

type ReplicaSide = MessageOf<'replica-status-reply'>['replicas'][number]

/** The replica server's own status of `vm` (no cluster needed). */
async function replicaSide(lab: TestLab, vm: string): Promise<ReplicaSide> {
  const r = await lab.control().request(SERVER, { t: 'replica-status-request', vm }, 'replica-status-reply', 10_000)
  if (r.replicas[0] === undefined) throw new Error(`${SERVER} holds no replica of ${vm}`)
  return r.replicas[0]
}

/** When the primary closed the last log the replica server applied for `vm`. */
async function lastClosed(lab: TestLab, vm: string): Promise<number> {
  return (await replicaSide(lab, vm)).applied_closed_at_ms ?? NaN
}

/** The block each of `vm`'s completed writes put on its disk (SHA-256) and when it completed, from `host`'s disk write journal. */
function writeHistory(lab: TestLab, host: string, vm: string): Map<number, { sha256: string; done_ms: number }> {
  const lines = readFileSync(join(lab.dir, 'data', host, 'disk-writes.jsonl'), 'utf8').split('\n')
  const issued = new Map<number, { seq: number; epoch: number; block: number; value: number }>()
  const out = new Map<number, { sha256: string; done_ms: number }>()
  for (const l of lines.map(parseDiskJournalLine)) {
    if (l === null || l.vm !== vm) continue
    if (l.t === 'issued') issued.set(l.seq, l)
    const w = issued.get(l.seq)
    if (l.t !== 'issued' && l.t !== 'refused' && w !== undefined)
      out.set(w.block, { sha256: sha(encodeDiskWrite({ vm, ...w }, 4096)), done_ms: l.at_ms })
  }
  return out
}

/** How web1's churn measurement on host-a1 stands (undefined: none yet). */
async function sizeState(lab: TestLab): Promise<string | undefined> {
  const ask = { t: 'replica-size-status-request', vm: 'web1' } as const
  return (
    await lab
      .control()
      .request('host-a1', ask, 'replica-size-reply', 10_000)
      .catch(() => undefined)
  )?.state
}

/** The writes web1's disk writer has completed (acknowledged, or failed: in doubt), and has in flight. */
async function diskWrites(lab: TestLab): Promise<{ completed: number; in_flight: number }> {
  const d = (await lab.vmInspect('web1')).disk!
  return { completed: d.writes_acked + d.write_errors, in_flight: d.in_flight } // a refused write wrote nothing: not churn
}

/**
 * replica-dr2 is a hosting provider's (the fixture's `organisation`), so replica-dr1 reached it
 * over mutual TLS above: a dialler claiming to be host-a1 with a certificate of another CA, or
 * over a plain link with the lab's secret, is refused HVLAB_E_CERT, and replica-dr2 counts it
 * and serves on.
 */
async function refusesWrongCertificates(t: Tap, lab: TestLab): Promise<void> {
  const replica = (await lab.status()).processes.find((p) => p.name === THIRD)!
  const layout = labLayout(lab.dir)
  const validity = { notBefore: new Date(Date.now() - 60_000), notAfter: new Date(Date.now() + 86_400_000) }
  const stranger = await issueCertificate(
    await issueAuthority('hvlab lab ca', 'lab', validity),
    { name: 'host-a1', organisation: 'lab' },
    validity,
  )
  const dial = { endpoint: { host: '127.0.0.1', port: replica.peerPort! }, name: 'host-a1', role: 'host' as const, log: silentLogger() }
  const peer = { name: THIRD, organisation: 'hoster' }
  await t.rejects(
    connectPeer({ ...dial, secret: '', tls: { identity: { ca: readFileSync(layout.caCert, 'utf8'), ...stranger }, peer } }),
    { detail: 'HVLAB_E_CERT', message: /refused by peer: the certificate of host-a1 was not issued by this lab's CA/ },
    'a certificate of another CA',
  )
  await t.rejects(
    connectPeer({ ...dial, secret: readFileSync(layout.secret, 'utf8').trim() }),
    { detail: 'HVLAB_E_CERT', message: /host-a1 belongs to the organisation lab, replica-dr2 to hoster/ },
    "the lab's secret on a plain link",
  )
  const metrics = await (await fetch(`http://127.0.0.1:${replica.metricsPort}/metrics`)).text()
  const refused = /hvlab_transport_connections_refused_total\{[^}]*reason="HVLAB_E_CERT"[^}]*\} (\d+)/.exec(metrics)
  t.equal(Number(refused?.[1]), 2, `${THIRD} counted both refusals`)
  t.match(await status(lab, 'web3'), { extended: { primary: { health: 'Normal', last_error: null } } }, 'and replicates on')
}

const resynced = (e: LabEvent) => e.kind === 'replica.resynced' && e.details.vm === 'web1'

t.test(
  'replica: refused until allowed, initial replication, cycles, a host failover resyncs only differences, planned and unplanned failover',
  async (t) => {
    const { lab } = await startLab(t, { topology: TOPOLOGY, env: { HVLAB_DISK_WRITE_JOURNAL: '1' } })
    t.equal((await lab.cli('vm', 'create', 'web1', '--memory-mib', '512', '--preferred', 'host-a1,host-a2')).code, 0)
    t.equal((await lab.cli('vm', 'start', 'web1')).code, 0)

    // replica size (web1 is not replicated): its guest writes 40 blocks a second for a while, all within the measurement
    t.equal((await lab.cli('replica', 'size', 'web1', '--minutes', '0')).code, 2, 'a duration that is not positive is a usage error')
    t.equal((await lab.cli('replica', 'size', 'web1', '--minutes', '20000')).code, 2, 'and one longer than a week')
    const unknown = await lab.cli('replica', 'size', 'nosuch', '--minutes', '1')
    t.equal(unknown.code, 1)
    t.match(unknown.stderr, /no vm named nosuch/)
    const idle = await diskWrites(lab)
    const sizing = lab.cli('replica', 'size', 'web1', '--minutes', '2', '--json') // 12 s at timeScale 0.1
    await lab.waitFor('the measurement to begin', async () => ((await sizeState(lab)) === 'measuring' ? true : undefined))
    const again_size = await lab.cli('replica', 'size', 'web1', '--minutes', '1')
    t.equal(again_size.code, 1, 'one measurement of a VM at a time')
    t.match(again_size.stderr, /vm web1 is being measured on host-a1 already/)
    t.equal((await lab.cli('vm', 'load', 'web1', '--disk-iops', '40')).code, 0)
    await new Promise((resolve) => setTimeout(resolve, 1500))
    t.equal((await lab.cli('vm', 'load', 'web1', '--disk-iops', '0')).code, 0)
    const wrote = await lab.waitFor('no write in flight', async () => {
      const d = await diskWrites(lab)
      return d.in_flight === 0 ? d : undefined
    })
    t.equal(
      await sizeState(lab),
      'measuring',
      'the writes began and ended within the measurement (else this machine is too slow for the check)',
    )
    const measured = await sizing
    t.equal(measured.code, 0, `replica size: ${measured.stderr}`)
    const size = JSON.parse(measured.stdout) as ReplicaSizeView
    const writes = wrote.completed - idle.completed
    t.ok(writes > 0, `the guest wrote ${writes} blocks`)
    t.match(size, {
      vm: 'web1',
      host: 'host-a1',
      time_scale: 0.1,
      duration_ms: 120_000,
      measured_ms: 12_000,
      block_size_bytes: 4096,
      writes,
    })
    t.match(size.frequencies, [
      { frequency_ms: 30_000, cycle_ms: 3_000, cycles: 4, full_cycles: 4 },
      { frequency_ms: 300_000, cycle_ms: 30_000, cycles: 1, full_cycles: 0, peak_cycle_bytes: writes * 4096 },
      { frequency_ms: 900_000, cycle_ms: 90_000, cycles: 1, full_cycles: 0, peak_cycle_bytes: writes * 4096 },
    ])
    for (const f of size.frequencies)
      t.equal(
        f.total_bytes,
        writes * 4096,
        `${f.frequency_ms / 1000} s: each write a block of its own (a ring of 4096), so every write travels once`,
      )
    const peak30 = size.frequencies[0]!.peak_cycle_bytes
    t.ok(peak30 > 0 && peak30 <= writes * 4096, 'the busiest 3 s cycle holds some or all of them')

    t.equal((await lab.cli('vm', 'load', 'web1', '--disk-iops', '20')).code, 0)

    // bad input: clear errors, nothing changed
    const freq = await lab.cli('replica', 'enable', 'web1', '--to', SERVER, '--frequency', '10s')
    t.equal(freq.code, 2, 'a frequency Replica does not offer is a usage error')
    t.match(freq.stderr, /30s, 5m or 15m/)
    const notServer = await lab.cli('replica', 'server', 'enable', 'host-a1', '--allow', 'any')
    t.not(notServer.code, 0, 'a cluster host is not a standalone replica server')
    t.match(notServer.stderr, /standalone/)

    // an unauthorised primary is refused on both sides
    t.equal((await lab.cli('replica', 'server', 'enable', SERVER, '--allow', 'host-b1')).code, 0)
    const refused = await lab.cli('replica', 'enable', 'web1', '--to', SERVER, '--frequency', '30s', '--timeout-s', '30')
    t.equal(refused.code, 1, 'replication from a primary the server does not allow is refused')
    t.match(refused.stderr, /does not take replication from host-a1 \(it allows host-b1\)/)
    t.match((await status(lab)).primary, { health: 'Critical', last_error_code: 'HVLAB_E_REPLICA_NOT_ALLOWED' }, 'the primary shows why')

    // allowed: the initial replication, then a cycle every 3 s
    t.equal((await lab.cli('replica', 'server', 'enable', SERVER, '--allow', 'any')).code, 0)
    const before = (await lab.events()).at(-1)!.seq
    const enabled = await lab.cli(
      'replica',
      'enable',
      'web1',
      '--to',
      SERVER,
      '--frequency',
      '30s',
      '--max-mbit',
      '100',
      '--timeout-s',
      '60',
    )
    t.equal(enabled.code, 0, `replica enable: ${enabled.stderr}`)
    t.match(enabled.stdout, /vm web1 replicates to replica-dr1 every 30 s at most 100 Mbit\/s; the initial replication is done/)
    const initial = (await lab.eventsAfter(before, (evs) => evs.some(resynced))).find(resynced)!
    t.equal(initial.details.blocks_compared, DISK_BLOCKS, 'the initial replication compared every block')
    t.ok((initial.details.blocks_sent as number) < DISK_BLOCKS, 'and sent only those that differ from the empty replica')
    const cycling = await lab.waitFor('two cycles applied on the replica', async () => {
      const s = await status(lab)
      return (s.replica?.applied_cycle ?? 0) >= 2 ? s : undefined
    })
    t.match(cycling, {
      primary_host: 'host-a1',
      to: SERVER,
      max_mbit: 100,
      primary: { health: 'Normal', last_error: null },
      replica: { from: 'host-a1', resyncing: false },
    })

    // a test failover: web1-test runs on a copy, isolated; replication goes on and clients still reach the primary
    const test = await lab.cli('replica', 'test-failover', 'web1')
    t.equal(test.code, 0, `test failover: ${test.stderr}`)
    const during = await lab.waitFor('a cycle applied during the test failover', async () => {
      const s = await status(lab)
      return s.replica !== null && s.replica.test_vm_running && s.replica.applied_cycle > (cycling.replica?.applied_cycle ?? 0)
        ? s
        : undefined
    })
    t.match(during, { primary: { health: 'Normal' }, replica: { state: 'replicating', vm_running: false } }, 'replication goes on')
    const pinged = await lab.cli('vm', 'ping', 'web1', '--count', '3', '--interval-ms', '50', '--json')
    t.match(JSON.parse(pinged.stdout), { received: 3, hosts: ['host-a1'] }, 'clients still reach the primary, never the isolated copy')
    t.equal((await lab.cli('replica', 'test-failover', 'web1', '--stop')).code, 0)
    t.match((await status(lab)).replica, { test_vm_running: false })

    // a live migration and back: replication follows web1 (the role keeps it); each new host goes on from the last cycle of the one before, no resync
    const beforeMoves = (await lab.events()).at(-1)!.seq
    let from = 'host-a1'
    for (const to of ['host-a2', 'host-a1']) {
      const beforeMove = (await lab.events()).at(-1)!.seq
      const moved = await lab.cli('vm', 'migrate', 'web1', '--to', to, '--timeout-s', '60')
      t.equal(moved.code, 0, moved.code === 0 ? `live migration to ${to}` : moved.stderr)
      const there = (e: LabEvent) => e.kind === 'replica.primary-moved' && e.details.vm === 'web1' && e.source === to
      const m = (await lab.eventsAfter(beforeMove, (evs) => evs.some(there), 60_000)).find(there)
      t.match(m?.details, { from, to }, `replication followed web1 to ${to}, going on from ${from}'s cycle ${String(m?.details.cycle)}`)
      from = to
    }
    const movedBack = await lab.waitFor('a cycle applied from host-a1 again', async () => {
      const s = await status(lab)
      return s.primary_host === 'host-a1' && (s.primary?.cycles_applied ?? 0) >= 1 && s.primary?.resyncing === false ? s : undefined
    })
    t.match(movedBack.primary, { health: 'Normal', last_error: null, continued_from: { host: 'host-a2' } }, 'and goes on there')

    // the writes stop: once the last cycle is applied the replica is the primary's disk
    t.equal((await lab.cli('vm', 'load', 'web1', '--disk-iops', '0')).code, 0)
    const level = await caughtUp(lab)
    t.ok((level.replica?.applied_cycle ?? 0) > (cycling.replica?.applied_cycle ?? 0), 'more cycles applied since')
    const d1 = await digests(lab, 'array-a')
    t.equal(d1.replica, d1.primary, "the replica's durable disk is the primary volume, byte for byte")
    const compared = (await lab.eventsAfter(beforeMoves, () => true)).filter(
      (e) => e.details.vm === 'web1' && (e.kind === 'replica.resync-needed' || e.kind === 'replica.resynced'),
    )
    t.same(
      compared.map((e) => [e.source, e.kind, e.details.why ?? e.details.blocks_sent]),
      [],
      'the moves resynced nothing: no block compared or sent, yet nothing missing',
    )

    // kill -9 the primary host while the VM writes: it fails over in the cluster, and its new host resyncs the replica
    t.equal((await lab.cli('vm', 'load', 'web1', '--disk-iops', '20')).code, 0)
    const beforeKill = (await lab.events()).at(-1)!.seq
    const cut = lab.cli('replica', 'size', 'web1', '--minutes', '10')
    await lab.waitFor('a measurement under way', async () => ((await sizeState(lab)) === 'measuring' ? true : undefined))
    t.equal((await lab.cli('kill', 'host-a1')).code, 0)
    const interrupted = await cut
    t.equal(interrupted.code, 1, 'a measurement whose host dies ends, and says so')
    t.match(interrupted.stderr, /host-a1 went down during the churn measurement of vm web1/)
    await lab.vmRunningOn('web1', ['host-a2'])
    const again = (await lab.eventsAfter(beforeKill, (evs) => evs.some(resynced), 60_000)).find(resynced)!
    t.equal(again.source, 'host-a2', 'the new primary resynced the replica')
    t.ok(
      (again.details.blocks_sent as number) < DISK_BLOCKS / 4,
      `only the blocks written since the last cycle travelled (${String(again.details.blocks_sent)})`,
    )
    t.equal((await lab.cli('vm', 'load', 'web1', '--disk-iops', '0')).code, 0)
    const after = await caughtUp(lab)
    t.match(after, { primary_host: 'host-a2', replica: { from: 'host-a2' } })
    const d2 = await digests(lab, 'array-a')
    t.equal(d2.replica, d2.primary, 'identical again after the failover')
    t.not(d2.primary, d1.primary, 'and the disk did change in between')

    // an unplanned failover while the primary still runs the VM is refused (it would run twice)
    const twice = await lab.cli('replica', 'failover', 'web1')
    t.equal(twice.code, 1, 'refused while the primary runs the VM')
    t.match(twice.stderr, /vm web1 still runs on its primary \(host-a2\): starting the replica now would run it twice/)

    // a planned failover reverses replication to the cluster: it must be a replica server first (its Replica Broker), else refused before anything stops
    const noBroker = await lab.cli('replica', 'failover', 'web1', '--planned')
    t.equal(noBroker.code, 1, 'refused without the Replica Broker')
    t.match(noBroker.stderr, /hvlab replica server enable cluster --allow replica-dr1; nothing was shut down/)
    const otherServer = await lab.cli('replica', 'server', 'enable', 'cluster', '--allow', THIRD)
    t.equal(otherServer.code, 0, `replica server enable cluster: ${otherServer.stderr}`)
    t.match(otherServer.stdout, /the cluster is a replica server: its Replica Broker runs on host-\w+ \(role replica-broker\)/)
    const notAllowed = await lab.cli('replica', 'failover', 'web1', '--planned')
    t.equal(notAllowed.code, 1, "refused while the broker's allow list leaves the replica server out")
    t.match(notAllowed.stderr, /does not take replication from replica-dr1 .*--allow replica-dr2,replica-dr1/)
    t.match(await lab.role('web1'), { state: 'running', owner: 'host-a2' }, 'nothing was shut down')
    const broker = await lab.cli('replica', 'server', 'enable', 'cluster', '--allow', SERVER)
    t.equal(broker.code, 0, `replica server enable cluster again: ${broker.stderr}`)
    t.match(broker.stdout, /Replica Broker's settings changed; it runs on host-\w+ .*it takes replication from replica-dr1/)

    // a planned failover: the VM shuts down, its last changes go, and it runs on the replica server with nothing lost
    t.equal((await lab.cli('vm', 'load', 'web1', '--disk-iops', '20')).code, 0)
    await lab.waitFor('writes not yet sent', async () => (((await status(lab)).primary?.pending_bytes ?? 0) > 0 ? true : undefined))
    t.equal((await lab.cli('vm', 'load', 'web1', '--disk-iops', '0')).code, 0) // the replica VM then starts idle: its disk stays as it came
    const planned = await lab.cli('replica', 'failover', 'web1', '--planned', '--timeout-s', '60')
    t.equal(planned.code, 0, `planned failover: ${planned.stderr}`)
    t.comment(planned.stdout.trim())
    t.match(
      planned.stdout,
      /vm web1 failed over: it runs on replica-dr1 from every change of its primary \(planned: nothing lost; down \d+\.\d s\)/,
    )
    t.match(await lab.role('web1'), { state: 'stopped' }, 'the primary VM is shut down in the cluster')
    t.match((await status(lab)).replica, { state: 'failed-over', vm_running: true }, 'the replica VM runs on the replica server')
    const d3 = await digests(lab, 'array-a')
    t.equal(d3.replica, d3.primary, 'nothing lost: the replica VM starts on every write its primary made')
    t.not(d3.primary, d2.primary, 'including those of the last seconds')
    const ping = await lab.cli('vm', 'ping', 'web1', '--count', '5', '--interval-ms', '50', '--json')
    t.equal(ping.code, 0, `vm ping: ${ping.stderr}`)
    t.match(
      JSON.parse(ping.stdout),
      { received: 5, lost: 0, hosts: [SERVER] },
      'clients reach it at its stable address, on the replica server',
    )
    const again2 = await lab.cli('replica', 'failover', 'web1')
    t.equal(again2.code, 1, 'the cluster does not start it unplanned while the replica server runs it and answers')
    t.match(again2.stderr, /vm web1 runs on its replica server replica-dr1, which answers: .*--planned\` fails it back with nothing lost/)

    // replication is reversed: what web1 writes on the replica server goes back to host-a2, into its own volume on the cluster's storage
    const started = await lab.cli('vm', 'start', 'web1')
    t.equal(started.code, 1, 'the cluster does not start a VM that runs on its replica server')
    t.match(started.stderr, /runs on its replica server replica-dr1 after a planned failover, replicating back to host-a2/)
    const beforeBack = (await lab.events()).at(-1)!.seq
    t.equal((await lab.cli('vm', 'load', 'web1', '--disk-iops', '20')).code, 0, 'vm load reaches the VM on its replica server')
    const reversed = await lab.waitFor('two reverse cycles applied while web1 writes on the replica server', async () => {
      const r = (await status(lab)).reverse
      return (r?.replica?.applied_cycle ?? 0) >= 2 && (r?.primary?.last_cycle_bytes ?? 0) > 0 ? r : undefined
    })
    t.match(reversed, { to: 'host-a2', primary: { to: 'host-a2', health: 'Normal' }, replica: { from: SERVER, state: 'replicating' } })
    t.equal((await status(lab)).extended, null, 'what replica-dr1 sends back is not shown as a forwarding (extended replication)')
    const back = (await lab.eventsAfter(beforeBack, (evs) => evs.some(resynced))).find(resynced)!
    t.equal(back.source, SERVER, 'the replica server resynced the reverse replica first')
    t.ok(
      (back.details.blocks_sent as number) < DISK_BLOCKS / 8,
      `against web1's own volume: only blocks written since the failover travelled (${String(back.details.blocks_sent)})`,
    )

    // the member holding the reverse replica dies: the broker places it again on host-a1 (restarted: web1's other preferred owner, in its site) and the reverse goes on there
    t.equal((await lab.cli('restart', 'host-a1')).code, 0)
    await lab.waitFor('host-a1 back in the cluster', async () => {
      const s = (await lab.clusterStatus()).hosts['host-a1']
      return s?.holds_lease === true && s.members.includes('host-a2') ? true : undefined
    })
    const beforeLoss = (await lab.events()).at(-1)!.seq
    t.equal((await lab.cli('kill', 'host-a2')).code, 0)
    const placedAgain = await lab.waitFor('the reverse replica placed on host-a1 and two cycles applied there', async () => {
      const r = (await status(lab)).reverse
      return r?.to === 'host-a1' && r.primary?.to === 'host-a1' && !r.primary.resyncing && r.primary.cycles_applied >= 2 ? r : undefined
    })
    t.match(placedAgain, { replica: { from: SERVER, state: 'replicating' } })
    const again3 = (await lab.eventsAfter(beforeLoss, (evs) => evs.some(resynced))).find(resynced)!
    t.ok(
      again3.source === SERVER && (again3.details.blocks_sent as number) < DISK_BLOCKS / 8,
      `the reverse replication began again on host-a1 with a compare resync against web1's volume (${String(again3.details.blocks_sent)} blocks sent)`,
    )
    // the replica server is lost while web1 runs there: the cluster starts web1 from its reverse replica on host-a1 (unplanned, its latest cycle)
    t.equal((await lab.cli('vm', 'load', 'web1', '--disk-iops', '0')).code, 0) // the VM then starts idle in the cluster: its disk stays as it came
    t.equal((await lab.cli('kill', SERVER)).code, 0)
    const failback = await lab.cli('replica', 'failover', 'web1', '--timeout-s', '60')
    t.equal(failback.code, 0, `unplanned fail-back: ${failback.stderr}`)
    t.comment(failback.stdout.trim())
    t.match(
      failback.stdout,
      /vm web1 failed back to the cluster \(unplanned\): it runs on host-a1 from its latest cycle, whose log closed \d+\.\d s before the failover[^]*hvlab replica enable web1 --to replica-dr1/,
    )
    t.match(await lab.role('web1'), { state: 'running', owner: 'host-a1' })
    t.equal((await lab.role('web1'))?.replication, undefined, 'its replication ended (the policy is broken)')
    // replica-dr1 returns: it starts web1 (its automatic start action), is told web1 runs in the cluster, and stops its older copy
    const beforeReturn = (await lab.events()).at(-1)!.seq
    t.equal((await lab.cli('restart', SERVER)).code, 0)
    const retired = (e: LabEvent) => e.kind === 'vm.stopped' && e.source === SERVER && e.details.reason === 'runs in the cluster'
    await lab.eventsAfter(beforeReturn, (evs) => evs.some(retired))
    const olderCopy = await lab.waitFor("replica-dr1's older copy a replica again", async () => {
      const r = (await lab.control().request(SERVER, { t: 'replica-status-request', vm: null }, 'replica-status-reply', 10_000)).replicas
      return r.find((x) => x.vm === 'web1' && x.state === 'replicating' && !x.vm_running)
    })
    t.match(olderCopy, { state: 'replicating', vm_running: false })
    const beforeForward = (await lab.events()).at(-1)!.seq
    const protectedAgain = await lab.cli('replica', 'enable', 'web1', '--to', SERVER, '--frequency', '30s', '--timeout-s', '60')
    t.equal(protectedAgain.code, 0, `replicated to replica-dr1 again: ${protectedAgain.stderr}`)
    const forward = (await lab.eventsAfter(beforeForward, (evs) => evs.some(resynced))).find(resynced)!
    t.ok(
      forward.source !== SERVER && (forward.details.blocks_sent as number) < DISK_BLOCKS / 8,
      `its older copy on replica-dr1 is the seed: only blocks that differ travelled (${String(forward.details.blocks_sent)})`,
    )
    await caughtUp(lab)
    const dBack = await digests(lab, 'array-a')
    t.equal(dBack.replica, dBack.primary, "replica-dr1's copy is web1's disk again")
    t.not(dBack.primary, d3.primary, 'with what web1 wrote on replica-dr1 before it was lost')
    t.match(await status(lab), { primary_host: forward.source, reverse: null, replica: { state: 'replicating', from: forward.source } })

    // unplanned and back: not reversed (seed 002: "the policy is broken"); replicated to the cluster again (standalone host to cluster), it fails back with nothing lost
    const stillRuns = await lab.cli('replica', 'enable', 'web1', '--to', 'cluster')
    t.equal(stillRuns.code, 1, 'a VM the cluster runs does not replicate to the cluster')
    t.match(stillRuns.stderr, /vm web1 is running on host-a\d in the cluster; .*hvlab vm stop web1/)
    const noPoints = await lab.cli('replica', 'enable', 'web1', '--to', 'cluster', '--recovery-points', '2')
    t.match(noPoints.stderr, /--to cluster takes --frequency and --compress only/)
    t.equal((await lab.cli('vm', 'load', 'web1', '--disk-iops', '20')).code, 0) // the replica VM starts with its role's load: it writes there
    t.equal((await lab.cli('vm', 'stop', 'web1')).code, 0)
    const unplannedWeb1 = await lab.cli('replica', 'failover', 'web1')
    t.equal(unplannedWeb1.code, 0, `unplanned failover of the stopped web1: ${unplannedWeb1.stderr}`)
    t.match(await status(lab), { reverse: null, replica: { state: 'failed-over', vm_running: true } }, 'not reversed')
    const beforeToCluster = (await lab.events()).at(-1)!.seq
    const toCluster = await lab.cli('replica', 'enable', 'web1', '--to', 'cluster', '--frequency', '30s', '--timeout-s', '60')
    t.equal(toCluster.code, 0, `replica enable web1 --to cluster: ${toCluster.stderr}`)
    t.match(toCluster.stdout, /vm web1 replicates from replica-dr1 to the cluster every 30 s, into its own volume on host-[ab]\d/)
    const toClusterResync = (await lab.eventsAfter(beforeToCluster, (evs) => evs.some(resynced))).find(resynced)!
    t.ok(
      toClusterResync.source === SERVER && (toClusterResync.details.blocks_sent as number) < DISK_BLOCKS / 8,
      `the cluster's replica is web1's own volume: only blocks that differ travelled (${String(toClusterResync.details.blocks_sent)})`,
    )
    const startedTwice = await lab.cli('vm', 'start', 'web1')
    t.equal(startedTwice.code, 1, 'meanwhile the cluster does not start it')
    t.match(startedTwice.stderr, /runs on its replica server replica-dr1/)
    await lab.waitFor('a cycle of web1 written on the replica server applied in the cluster', async () => {
      const r = (await status(lab)).reverse
      return (r?.replica?.applied_cycle ?? 0) >= 1 && (r?.primary?.last_cycle_bytes ?? 0) > 0 ? r : undefined
    })
    t.equal((await lab.cli('vm', 'load', 'web1', '--disk-iops', '0')).code, 0)
    const backAgain = await lab.cli('replica', 'failover', 'web1', '--planned', '--timeout-s', '60')
    t.equal(backAgain.code, 0, `fail-back after the unplanned failover: ${backAgain.stderr}`)
    const dAgain = await digests(lab, 'array-a')
    t.equal(dAgain.replica, dAgain.primary, 'nothing lost: the cluster starts web1 on every write it made on the replica server since')
    t.not(dAgain.primary, dBack.primary, 'including those')
    t.equal((await lab.cli('vm', 'stop', 'web1')).code, 0) // the rest of the test runs without it

    // a VM of the replica server's own (a branch office's host): created there, replicated to the cluster into a blank volume, moved into the cluster by a planned failover with nothing lost
    const branch = await lab.cli('vm', 'create', 'branch1', '--on', SERVER, '--memory-mib', '128', '--disks', '2')
    t.equal(branch.code, 0, `vm create --on: ${branch.stderr}`)
    const clash = await lab.cli('vm', 'create', 'branch1')
    t.equal(clash.code, 1, 'the cluster makes no second vm of that name')
    t.match(clash.stderr, /replica-dr1 has a vm named branch1 of its own/)
    const listed = await lab.json<{ standalone: StandaloneVmView[] }>('vm', 'list', '--json')
    t.same(
      listed.standalone,
      [{ vm: 'branch1', host: SERVER, state: 'created-here', running: true, memory_mib: 128 }],
      '`vm list` shows it',
    )
    t.equal((await lab.cli('vm', 'load', 'branch1', '--disk-iops', '20')).code, 0)
    const branchImage = join(lab.dir, 'data', SERVER, 'replica', 'vms', 'branch1', 'disk.img')
    await lab.waitFor('branch1 to write on its disk on replica-dr1', async () =>
      readFileSync(branchImage).some((b) => b !== 0) ? true : undefined,
    )
    const beforeBranch = (await lab.events()).at(-1)!.seq
    const branchIn = await lab.cli('replica', 'enable', 'branch1', '--to', 'cluster', '--frequency', '30s', '--timeout-s', '60')
    t.equal(branchIn.code, 0, `replica enable branch1 --to cluster: ${branchIn.stderr}`)
    t.match(branchIn.stdout, /vm branch1 replicates from replica-dr1 to the cluster every 30 s, .*sent every block it had written/)
    const branchResynced = (e: LabEvent) => e.kind === 'replica.resynced' && e.details.vm === 'branch1'
    const branchCopy = (await lab.eventsAfter(beforeBranch, (evs) => evs.some(branchResynced))).find(branchResynced)!
    t.ok(
      branchCopy.source === SERVER && (branchCopy.details.blocks_sent as number) > 0,
      `replica-dr1 sent the blocks branch1 wrote into its new volume (${String(branchCopy.details.blocks_sent)})`,
    )
    t.equal((await lab.cli('vm', 'start', 'branch1')).code, 1, 'the cluster does not start it while it runs on replica-dr1')
    await lab.waitFor('a cycle of branch1 applied in the cluster', async () => {
      const r = (await status(lab, 'branch1')).reverse
      return (r?.replica?.applied_cycle ?? 0) >= 1 && (r?.primary?.last_cycle_bytes ?? 0) > 0 ? r : undefined
    })
    t.equal((await lab.cli('vm', 'load', 'branch1', '--disk-iops', '0')).code, 0)
    const beforeMove = (await lab.events()).at(-1)!.seq
    const branchMoved = await lab.cli('replica', 'failover', 'branch1', '--planned', '--timeout-s', '60')
    t.equal(branchMoved.code, 0, `planned failover of branch1 into the cluster: ${branchMoved.stderr}`)
    t.comment(branchMoved.stdout.trim())
    t.match(
      branchMoved.stdout,
      /vm branch1 failed over to the cluster: it runs on host-[ab]\d from every change it made on replica-dr1 \(planned: nothing lost; down \d+\.\d s\); it replicates to replica-dr1 from there/,
    )
    const branchImage2 = readFileSync(branchImage)
    const inCluster = [...(await blockHashes(lab, 'array-a', 'branch1-disk0')), ...(await blockHashes(lab, 'array-a', 'branch1-disk1'))]
    t.same(imageHashes(branchImage2), inCluster, 'nothing lost: the cluster runs branch1 on every write both its disks had on replica-dr1')
    t.ok(
      inCluster.slice(0, DISK_BLOCKS).some((h) => h !== ZERO_BLOCK) && inCluster.slice(DISK_BLOCKS).some((h) => h !== ZERO_BLOCK),
      'and it had written on both',
    )
    const branchForward = (e: LabEvent) => branchResynced(e) && e.source !== SERVER
    const branchBack = (await lab.eventsAfter(beforeMove, (evs) => evs.some(branchForward))).find(branchForward)!
    t.equal(branchBack.details.blocks_sent, 0, "from the cluster to replica-dr1: its disk there is branch1's replica, nothing differs")
    t.equal((await lab.cli('vm', 'stop', 'branch1')).code, 0)

    // initial replication by media: web3's disk is exported to a folder, imported on the replica server, and only what changed since travels
    const media = mkdtempSync(join(tmpdir(), 'hvlab-media-'))
    t.teardown(() => rmSync(media, { recursive: true, force: true }))
    // (web3 has two disks: volumes web3-disk0 and web3-disk1 in its one remote-copy group, replicated as one)
    t.equal((await lab.cli('vm', 'create', 'web3', '--memory-mib', '256', '--preferred', 'host-a1', '--disks', '2')).code, 0)
    t.equal((await lab.cli('vm', 'start', 'web3')).code, 0)
    t.equal((await lab.cli('vm', 'load', 'web3', '--disk-iops', '20')).code, 0)
    const noDir = await lab.cli('replica', 'enable', 'web3', '--to', SERVER, '--initial', 'export')
    t.equal(noDir.code, 2, 'an export needs its folder')
    t.match(noDir.stderr, /--initial export needs it/)
    const beforeExport = (await lab.events()).at(-1)!.seq
    const exported = await lab.cli(
      'replica',
      'enable',
      'web3',
      '--to',
      SERVER,
      '--frequency',
      '30s',
      '--initial',
      'export',
      '--export-dir',
      media,
    )
    t.equal(exported.code, 0, `replica enable --initial export: ${exported.stderr}`)
    const file = join(media, 'web3.hvlab-replica-export')
    t.match(
      exported.stdout,
      `its disk is exported to ${file}; import it there with \`hvlab replica import web3 --on ${SERVER} --from ${file}\``,
    )
    const exportEvent = (await lab.eventsAfter(beforeExport, (evs) => evs.some((e) => e.kind === 'replica.exported'))).find(
      (e) => e.kind === 'replica.exported',
    )!
    await new Promise((resolve) => setTimeout(resolve, 3000)) // a cycle's time: nothing may travel meanwhile
    t.match(await status(lab, 'web3'), { primary: { waiting_for: 'initial-copy', export_file: file }, replica: { applied_cycle: 0 } })
    t.notOk(
      (await lab.events()).some((e) => e.seq > beforeExport && e.kind === 'replica.resynced' && e.details.vm === 'web3'),
      'no initial copy over the network',
    )
    // (an import over a failed-over replica is refused too: test/unit/reverse-replication.test.ts)
    const otherVm = await lab.cli('replica', 'import', 'web1', '--on', SERVER, '--from', file)
    t.equal(otherVm.code, 2, "another VM's export is refused (a usage error)")
    t.match(otherVm.stderr, /the export is of vm web3, not web1; import web1's own export/)
    const imported = await lab.cli('replica', 'import', 'web3', '--on', SERVER, '--from', file, '--timeout-s', '60')
    t.equal(imported.code, 0, `replica import: ${imported.stderr}`)
    t.match(imported.stdout, new RegExp(`${SERVER} imported ${String(exportEvent.details.blocks)} blocks of vm web3`))
    t.equal((await lab.cli('vm', 'load', 'web3', '--disk-iops', '0')).code, 0)
    const media_resync = (await lab.events()).find((e) => e.seq > beforeExport && e.kind === 'replica.resynced' && e.details.vm === 'web3')!
    await caughtUp(lab, 'web3')
    const web3Image = readFileSync(join(lab.dir, 'data', SERVER, 'replica', 'vms', 'web3', 'disk.img'))
    const web3 = [...(await blockHashes(lab, 'array-a', 'web3-disk0')), ...(await blockHashes(lab, 'array-a', 'web3-disk1'))]
    t.same(imageHashes(web3Image), web3, "the replica is web3's two disks, one after the other, byte for byte")
    t.ok(
      web3.slice(DISK_BLOCKS).some((h) => h !== ZERO_BLOCK),
      'its data disk was written too',
    )
    const writtenBlocks = web3.filter((h) => h !== ZERO_BLOCK).length
    const sent = media_resync.details.blocks_sent as number
    t.ok(
      sent <= writtenBlocks - (exportEvent.details.blocks as number) + 16,
      `over the network went only blocks written after the export (and the 8 each disk may have in flight): ${sent} of ${writtenBlocks}`,
    )
    t.ok(sent < writtenBlocks, 'the export carried the rest')

    // extended replication: replica-dr1 forwards web3's replica to replica-dr2
    t.equal((await lab.cli('replica', 'server', 'enable', THIRD, '--allow', SERVER)).code, 0)
    const ext = await lab.cli('replica', 'extend', 'web3', '--to', THIRD, '--frequency', '5m')
    t.equal(ext.code, 0, `replica extend: ${ext.stderr}`)
    t.match(ext.stdout, /replica-dr1 forwards vm web3's replica to replica-dr2 every 5 min/)
    const extended = await lab.waitFor('the extended replica resynced', async () => {
      const s = await status(lab, 'web3')
      return s.extended !== null && !s.extended.primary.resyncing && s.extended.replica !== null ? s : undefined
    })
    t.match(extended.extended, { to: THIRD, primary: { health: 'Normal', last_error: null }, replica: { from: SERVER } })
    const third = readFileSync(join(lab.dir, 'data', THIRD, 'replica', 'vms', 'web3', 'disk.img'))
    t.equal(sha(third), sha(web3Image), "the third server holds web3's disks, byte for byte")
    t.match((await lab.cli('replica', 'status', 'web3')).stdout, /web3 \(extended\)\s+replica-dr1\s+replica-dr2\s+-\s+Normal/)
    await refusesWrongCertificates(t, lab)

    // web3's two disks go with it to the other site: CLX switches their one group over, and both write there
    const across = await lab.cli('vm', 'migrate', 'web3', '--to', 'host-b1', '--timeout-s', '60')
    t.equal(across.code, 0, `live migration of web3 to site-b: ${across.stderr}`)
    t.match(
      await lab.json('vm', 'inspect', 'web3', '--json'),
      { host: 'host-b1', disk: { array: 'array-b', volume: 'web3-disk0' }, data_disks: [{ array: 'array-b', volume: 'web3-disk1' }] },
      'both disks are written on array-b now',
    )
    t.equal((await lab.cli('vm', 'stop', 'web3')).code, 0) // the rest of the test runs without it

    // standalone host to standalone host (a small business's host replicating to a hosting provider's): shop3, replica-dr1's own, to replica-dr2 over mutual TLS
    // (shop3 has a data disk, its paging disk, that is not replicated: --disks 0)
    t.equal((await lab.cli('vm', 'create', 'shop3', '--on', SERVER, '--disks', '2')).code, 0)
    t.equal((await lab.cli('vm', 'load', 'shop3', '--disk-iops', '20')).code, 0)
    const noSuchDisk = await lab.cli('replica', 'enable', 'shop3', '--to', THIRD, '--disks', '0,2')
    t.equal(noSuchDisk.code, 2, 'a disk the VM does not have is a usage error')
    t.match(noSuchDisk.stderr, /vm shop3 has 2 disk\(s\), 0–1; it has no disk 2 to replicate/)
    const shopEnabled = await lab.cli(
      'replica',
      'enable',
      'shop3',
      '--to',
      THIRD,
      '--frequency',
      '30s',
      '--disks',
      '0',
      '--timeout-s',
      '60',
    )
    t.equal(shopEnabled.code, 0, `replica enable shop3 --to ${THIRD}: ${shopEnabled.stderr}`)
    t.match(shopEnabled.stdout, /vm shop3 replicates from replica-dr1 to replica-dr2 every 30 s; the initial replication is done/)
    t.match(await status(lab, 'shop3'), { primary_host: SERVER, to: THIRD, replica: { state: 'replicating', from: SERVER } })
    t.equal((await lab.cli('vm', 'load', 'shop3', '--disk-iops', '0')).code, 0) // it then runs idle on replica-dr2: its disk stays as it came
    const shopDisk = (server: string, disk: number) =>
      readFileSync(join(lab.dir, 'data', server, 'replica', 'vms', 'shop3', 'disk.img')).subarray(
        disk * DISK_BLOCKS * 4096,
        (disk + 1) * DISK_BLOCKS * 4096,
      )
    const blank = sha(new Uint8Array(DISK_BLOCKS * 4096))
    t.not(sha(shopDisk(SERVER, 1)), blank, 'its paging disk was written on replica-dr1')
    const beforeShop = (await lab.events()).at(-1)!.seq
    const shopMoved = await lab.cli('replica', 'failover', 'shop3', '--planned', '--timeout-s', '60')
    t.equal(shopMoved.code, 0, `planned failover of shop3 to ${THIRD}: ${shopMoved.stderr}`)
    t.comment(shopMoved.stdout.trim())
    t.match(
      shopMoved.stdout,
      /vm shop3 failed over: it runs on replica-dr2 from every change it made on replica-dr1 \(planned: nothing lost; down \d+\.\d s\)/,
    )
    t.equal(
      sha(shopDisk(THIRD, 0)),
      sha(shopDisk(SERVER, 0)),
      'nothing lost: replica-dr2 runs shop3 on every write its disk 0 had on replica-dr1',
    )
    t.not(sha(shopDisk(THIRD, 0)), blank, 'and it had written')
    t.equal(sha(shopDisk(THIRD, 1)), blank, 'its paging disk was never replicated: shop3 runs on replica-dr2 with it blank')
    const shopThere = await lab.json<{ host: string; data_disks?: { volume: string }[] }>('vm', 'inspect', 'shop3', '--json')
    t.match(shopThere, { host: THIRD, data_disks: [{ volume: 'shop3-disk1' }] }, 'with both its disks')
    const shopBack = (e: LabEvent) => e.kind === 'replica.resynced' && e.details.vm === 'shop3' && e.source === THIRD
    const reversedShop = (await lab.eventsAfter(beforeShop, (evs) => evs.some(shopBack))).find(shopBack)!
    t.equal(reversedShop.details.blocks_sent, 0, "reversed: replica-dr1's disk is shop3's replica, nothing differs")
    t.equal(sha(shopDisk(SERVER, 1)), blank, 'and replica-dr1, its replica now, blanked the paging disk itself (nothing travelled for it)')
    t.match(await status(lab, 'shop3'), { primary_host: THIRD, to: SERVER, replica: { state: 'replicating', from: THIRD } })
    t.equal((await lab.cli('vm', 'stop', 'shop3')).code, 0)

    // unplanned: web2 writes on host-a1 while every cluster host left dies at once; the replica starts from its last cycle
    // (web4 writes beside it, keeping 2 recovery points, for a failover to the older one below)
    for (const vm of ['web2', 'web4']) t.equal((await lab.cli('vm', 'create', vm, '--memory-mib', '512', '--preferred', 'host-a1')).code, 0)
    const stopped = await lab.cli('replica', 'size', 'web2', '--minutes', '1')
    t.equal(stopped.code, 1)
    t.match(stopped.stderr, /vm web2 is stopped: its churn is measured while it runs/)
    for (const vm of ['web2', 'web4']) {
      t.equal((await lab.cli('vm', 'start', vm)).code, 0)
      t.equal((await lab.cli('vm', 'load', vm, '--disk-iops', '20')).code, 0)
    }
    const web2Enabled = await lab.cli('replica', 'enable', 'web2', '--to', SERVER, '--frequency', '30s', '--extend-to', THIRD)
    t.equal(web2Enabled.code, 0, `replica enable web2 --extend-to: ${web2Enabled.stderr}`)
    t.match(web2Enabled.stdout, /replica-dr1 forwards vm web2's replica to replica-dr2 every 5 min/, 'extended replication set with it')
    const app = ['--recovery-points', '2', '--app-consistent-every-h', '1'] // a point an hour (3 s here), every one application-consistent (unless its guest is slow to quiesce)
    t.equal((await lab.cli('replica', 'enable', 'web4', '--to', SERVER, '--frequency', '30s', ...app)).code, 0)
    await lab.waitFor('web4 with two recovery points, an older one merged away', async () => {
      const points = (await replicaSide(lab, 'web4')).recovery_points
      return points.length === 2 && points[0]!.cycle > 1 ? true : undefined
    })
    // web4 stops: its last changes go in a crash-consistent cycle, after its last application-consistent point
    // (with writes logged since the last cycle closed: a stop that came just after a cycle left every write in the point, 1 run in 3)
    await lab.waitFor('web4 writes not yet in a cycle', async () => {
      const r = await lab.control().request('host-a1', { t: 'replica-status-request', vm: 'web4' }, 'replica-status-reply', 10_000)
      return (r.primaries[0]?.pending_bytes ?? 0) > 0 ? true : undefined
    })
    t.equal((await lab.cli('vm', 'stop', 'web4')).code, 0)
    await lab.waitFor("web4's last changes applied", async () => {
      const r = await lab.control().request('host-a1', { t: 'replica-status-request', vm: 'web4' }, 'replica-status-reply', 10_000)
      return r.primaries[0]?.finished === 'sent' ? true : undefined
    })
    const web2At = (await replicaSide(lab, 'web2')).applied_cycle
    await lab.waitFor('the next cycle of web2 applied', async () =>
      (await replicaSide(lab, 'web2')).applied_cycle > web2At ? true : undefined,
    )
    await new Promise((resolve) => setTimeout(resolve, 1500)) // half a cycle on: the primary dies mid-cycle
    const lost_at_ms = Date.now() // its kill follows within a CLI start-up (about 0.4 s)
    for (const host of ['host-a1', 'host-b1', 'host-b2']) t.equal((await lab.cli('kill', host)).code, 0)
    const lost_closed_ms = await lastClosed(lab, 'web2')
    const unplanned = await lab.cli('replica', 'failover', 'web2')
    t.equal(unplanned.code, 0, `unplanned failover with no cluster left: ${unplanned.stderr}`)
    t.comment(unplanned.stdout.trim())
    t.match(
      unplanned.stdout,
      /vm web2 failed over: it runs on replica-dr1 from its latest cycle, whose log closed \d+\.\d s before the failover: what was written after it is lost \(the RPO\); started in \d+\.\d s/,
    )
    t.match(
      await lab.json<ReplicaStatusView[]>('replica', 'status', 'web2', '--json'),
      [{ vm: 'web2', primary_host: null, to: SERVER, primary: null, replica: { state: 'failed-over', vm_running: true } }],
      'with no cluster left, replica status shows what the replica server says',
    )
    const image = readFileSync(join(lab.dir, 'data', SERVER, 'replica', 'vms', 'web2', 'disk.img'))
    const primary = await blockHashes(lab, 'array-a', 'web2-disk0')
    const written = (hashes: readonly string[]) => hashes.reduce((last, h, b) => (h === ZERO_BLOCK ? last : b), -1)
    const replicaHashes = imageHashes(image)
    const S = written(replicaHashes)
    const P = written(primary)
    t.ok(P < DISK_BLOCKS - 1, 'the guest wrote each block at most once (block = seq), so the newest block is the newest write')
    t.ok(S >= 0 && S <= P, `the replica holds writes 0…${S} of the primary's 0…${P}`)
    t.same(
      replicaHashes.slice(0, S + 1),
      primary.slice(0, S + 1),
      'crash-consistent: every write up to its newest, exactly as the primary has it',
    )
    t.ok(
      replicaHashes.slice(S + 1).every((h) => h === ZERO_BLOCK),
      'and none after it',
    )
    t.comment(
      `unplanned failover: ${P - S} of ${P + 1} writes lost (20 writes/s, 3 s cycles), the last applied log closed about ${Math.round(lost_at_ms - lost_closed_ms)} ms before the primary was killed`,
    )

    // web4's recovery points survive a kill -9 of the replica server; a failover to the older one gives exactly its disk
    // beside them, VMs of the replica server's own, made with no cluster to ask: one writing, one stopped
    t.equal((await lab.cli('vm', 'create', 'shop1', '--on', SERVER)).code, 0)
    t.equal((await lab.cli('vm', 'load', 'shop1', '--disk-iops', '5')).code, 0)
    t.equal((await lab.cli('vm', 'create', 'shop2', '--on', SERVER)).code, 0)
    const stopShop2 = await lab.cli('vm', 'stop', 'shop2')
    t.equal(stopShop2.code, 0, `vm stop of a standalone host's vm with the cluster down: ${stopShop2.stderr}`)
    t.match(stopShop2.stdout, /vm shop2 is stopped on replica-dr1; it stays off/)
    const listedDown = await lab.json<{ source: string; standalone: StandaloneVmView[] }>('vm', 'list', '--json')
    t.equal(listedDown.source, 'none', 'vm list with no cluster host answering')
    t.same(
      listedDown.standalone
        .filter((v) => v.vm === 'shop1' || v.vm === 'shop2' || v.vm === 'web2')
        .map((v) => `${v.vm} ${v.state} ${v.running ? 'running' : 'stopped'}`)
        .sort(),
      ['shop1 created-here running', 'shop2 created-here stopped', 'web2 failed-over running'],
      'still lists what the standalone hosts run',
    )
    const kept = await replicaSide(lab, 'web4')
    const beforeRestart = (await lab.events()).at(-1)!.seq
    t.equal((await lab.cli('kill', SERVER)).code, 0)
    t.equal((await lab.cli('restart', SERVER)).code, 0)
    const reopened = await lab.waitFor('the replica server back', () => replicaSide(lab, 'web4'))
    const startedAgain = (e: LabEvent) => e.kind === 'vm.started' && e.source === SERVER
    const restarted = await lab.eventsAfter(beforeRestart, (evs) => evs.filter(startedAgain).length >= 2)
    t.same(
      restarted
        .filter(startedAgain)
        .map((e) => `${String(e.details.vm)} by ${String(e.details.by)}`)
        .sort(),
      ['shop1 by automatic-start', 'web2 by automatic-start'],
      'the restarted server starts the VMs that ran from its disks (automatic start action: web2 failed over, shop1 its own), not the stopped shop2',
    )
    const shop1 = await lab.json<{ host: string; running: boolean; disk_iops: number | null }>('vm', 'inspect', 'shop1', '--json')
    t.match(shop1, { host: SERVER, running: true, disk_iops: 5 }, 'started again with the load it last had')
    t.equal((await lab.cli('vm', 'start', 'shop2')).code, 0)
    const removeRunning = await lab.cli('vm', 'remove', 'shop2')
    t.equal(removeRunning.code, 1, 'a running vm is not removed')
    t.match(removeRunning.stderr, /vm stop shop2/)
    t.equal((await lab.cli('vm', 'stop', 'shop2')).code, 0)
    const removed = await lab.cli('vm', 'remove', 'shop2')
    t.equal(removed.code, 0, `vm remove shop2: ${removed.stderr}`)
    t.match(removed.stdout, /removed vm shop2 from replica-dr1, and its disk/)
    await t.rejects(replicaSide(lab, 'shop2'), { code: 'HVLAB_E_NOT_FOUND' }, 'gone from replica-dr1')
    t.same(reopened.recovery_points, kept.recovery_points, 'the same recovery points after a kill -9 and restart of the replica server')
    t.equal(reopened.applied_cycle, kept.applied_cycle)
    const point = kept.recovery_points.filter((p) => p.kind === 'application').at(-1)!
    t.ok(point !== undefined, `an application-consistent point among ${JSON.stringify(kept.recovery_points)}`)
    t.ok(point.cycle < kept.applied_cycle, `the point of cycle ${point.cycle} is earlier than the latest (${kept.applied_cycle})`)
    const toPoint = await lab.cli('replica', 'failover', 'web4', '--latest-app-consistent')
    t.equal(toPoint.code, 0, `failover to the latest application-consistent point: ${toPoint.stderr}`)
    t.match(toPoint.stdout, `from the application-consistent recovery point of cycle ${point.cycle}`)
    t.match(await replicaSide(lab, 'web4'), { state: 'failed-over', applied_cycle: point.cycle, recovery_points: [] })
    const image4 = readFileSync(join(lab.dir, 'data', SERVER, 'replica', 'vms', 'web4', 'disk.img'))
    const history = writeHistory(lab, 'host-a1', 'web4')
    const wrong: string[] = []
    let before_point = 0
    for (let b = 0; b < DISK_BLOCKS; b++) {
      const w = history.get(b)
      const has = sha(image4.subarray(b * 4096, (b + 1) * 4096))
      if (w !== undefined && w.done_ms < point.at_ms) before_point++
      const ok =
        w === undefined || w.done_ms > point.at_ms
          ? has === ZERO_BLOCK
          : has === w.sha256 || (w.done_ms === point.at_ms && has === ZERO_BLOCK) // completed in the very ms its log closed: either
      if (!ok) wrong.push(`block ${b} (written ${w === undefined ? 'never' : `${w.done_ms - point.at_ms} ms after the point`})`)
    }
    t.same(wrong, [], 'exactly the point: every write completed before its log closed, as the guest wrote it, and none after')
    t.ok(before_point > 0 && before_point < history.size, `the point holds ${before_point} of the ${history.size} writes web4 made`)
    // its guest writes two-block transactions (data, then commit record): the quiesced cycle holds none half written
    const area_blocks = Math.min(DISK_BLOCKS, DISK_WRITE_AREA_BLOCKS_MAX)
    const seqs = seqsOnDisk(image4, 4096, 'web4', area_blocks)
    t.ok(seqs.size > 1, `the point holds ${seqs.size} blocks of web4's transactions`)
    t.same(tornTransactions(seqs, area_blocks), [], 'application-consistent: no transaction torn')

    // the cluster returns: it starts web2 again (it ran when its hosts died), whose replica server runs it since the unplanned failover; told so, the cluster stops its older copy
    const beforeClusterBack = (await lab.events()).at(-1)!.seq
    for (const host of ['host-a1', 'host-b1', 'host-b2']) t.equal((await lab.cli('restart', host)).code, 0) // the last view's voters (host-a2 died before them)
    const older = await lab.waitFor(
      "the cluster's older web2 started, then stopped",
      async () => {
        const evs = (await lab.events()).filter((e) => e.seq > beforeClusterBack && e.details.vm === 'web2')
        const r = await lab.role('web2').catch(() => undefined)
        return evs.some((e) => e.kind === 'vm.started' && e.source.startsWith('host-')) && r?.state === 'stopped' ? r : undefined
      },
      90_000,
    )
    t.match(
      older,
      { replication: { to: SERVER } },
      'its replication setting stays, naming the server (`replica enable --to cluster` takes it back)',
    )
    t.match(await replicaSide(lab, 'web2'), { state: 'failed-over', vm_running: true }, 'web2 runs on on replica-dr1, the one copy')
  },
)
