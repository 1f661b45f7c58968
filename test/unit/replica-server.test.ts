/**
 * Replica's two shells in one process, over an in-memory link that checks every message
 * against its schema: the replica server (agent/replica/replica-server.ts, its replica VMs
 * on a temp dir) and a primary's replication shell (replication-shell.ts) on a manual
 * clock, and the host that gives each replicated VM its shell (replication-host.ts).
 * The allow list refuses, the initial replication sends only what differs, cycles keep
 * the replica's durable disk equal to the primary's, a restarted server is resynced, and
 * bad requests are refused without harming the replica.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { Link } from './replica-link-fixture.js'
import { ManualClock } from '../../shared/clock.js'
import { HvlabError } from '../../shared/errors.js'
import { messageDef, type Message, type MessageOf } from '../../shared/protocol/messages.js'
import type { ReplicationSetting } from '../../shared/protocol/replica-messages.js'
import type { ReplicaEvent } from '../../shared/timeline/replica-events.js'
import type { PrimaryDisk } from '../../agent/replica/primary-resync.js'
import { exportDisk } from '../../agent/replica/replica-export.js'
import { ReplicaServerAuthorization } from '../../agent/replica/replica-server-settings.js'
import { ReplicaServer } from '../../agent/replica/replica-server.js'
import { readReplicaVmRecord } from '../../agent/replica/replica-vm-record.js'
import { ExtendedReplication } from '../../agent/replica/extended-replication.js'
import { ReplicationHost } from '../../agent/replica/replication-host.js'
import { ReplicationShell } from '../../agent/replica/replication-shell.js'
import type { ReplicaDisk } from '../../agent/replica/replica-receiver.js'
import type { ReplicaStore } from '../../agent/replica/replica-store.js'
import type { PeerConnection } from '../../shared/transport/peer-connection.js'

const BS = 512
const BLOCKS = 64
const SETTING: ReplicationSetting = { to: 'dr1', frequency_ms: 30_000, recovery_points: 2, compress: true }

const flush = async (): Promise<void> => {
  for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r))
}

/** Waits (real time: the replica server writes real files) until `ok()`, or fails saying what did not happen. */
async function until(what: string, ok: () => boolean): Promise<void> {
  for (let i = 0; i < 500 && !ok(); i++) await new Promise((r) => setTimeout(r, 10))
  if (!ok()) throw new Error(`${what} did not happen`)
}

function primaryDisk(): PrimaryDisk & { bytes: Uint8Array; write(block: number, v: number): Uint8Array } {
  const bytes = new Uint8Array(BS * BLOCKS)
  return {
    bytes,
    block_size_bytes: BS,
    blocks: BLOCKS,
    read: async (first, n) => bytes.slice(first * BS, (first + n) * BS),
    write(block, v) {
      const data = new Uint8Array(BS).fill(v)
      bytes.set(data, block * BS)
      return data
    },
  }
}

async function world(t: { teardown(fn: () => unknown): void }, setting: ReplicationSetting = SETTING) {
  const dir = mkdtempSync(join(tmpdir(), 'hvlab-replica-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const clock = new ManualClock(1_000_000)
  const events: ReplicaEvent[] = []
  const ran: { vm: string; memory_mib: number; load: unknown }[] = []
  /** Runs nothing: records what a failover started. */
  const up = new Map<string, ReplicaDisk>()
  const runner = {
    run: (vm: string, memory_mib: number, store: ReplicaStore, load: unknown) => {
      ran.push({ vm, memory_mib, load })
      up.set(vm, store.disk)
    },
    runIsolated: (vm: string, memory_mib: number, copy: ReplicaDisk, load: unknown) => {
      ran.push({ vm, memory_mib, load })
      up.set(vm, copy)
    },
    stop: (vm: string) => void up.delete(vm),
    running: (vm: string) => up.has(vm),
  }
  /** Where dr1 forwards replicas (extended replication): servers by name. */
  const forwardTo = new Map<string, Link>()
  const extended = new ExtendedReplication({
    host: 'dr1',
    clock,
    time_scale: 1,
    server: (name) => forwardTo.get(name),
    emit: (e) => events.push(e),
  })
  const open = async () => new ReplicaServer('dr1', dir, 1, await ReplicaServerAuthorization.open(dir), runner, { extended })
  let server = await open()
  let link = new Link('host-a1')
  server.servePrimary(link as unknown as PeerConnection, clock)
  const disk = primaryDisk()
  const shell = new ReplicationShell({
    vm: 'web1',
    host: 'host-a1',
    setting,
    memory_mib: 64,
    writesInFlight: () => 0,
    clock,
    time_scale: 1,
    server: () => link,
    disk,
    emit: (e) => events.push(e),
  })
  const image = () => new Uint8Array(readFileSync(join(dir, 'vms', 'web1', 'disk.img')))
  return {
    dir,
    ran,
    up,
    forwardTo,
    runner,
    clock,
    events,
    disk,
    shell,
    image,
    server: () => server,
    async restartServer() {
      server = await open()
      link = new Link('host-a1')
      server.servePrimary(link as unknown as PeerConnection, clock)
    },
    async advance(ms: number) {
      for (let done = 0; done < ms; done += 1000) {
        clock.advance(Math.min(1000, ms - done))
        await flush()
      }
    },
  }
}

/** A world whose server takes any primary, the initial replication done and one cycle (block 5 = 5) applied. */
async function replicatingOneCycle(t: { teardown(fn: () => unknown): void }): Promise<Awaited<ReturnType<typeof world>>> {
  const w = await world(t)
  await w.server().auth.enable(true, [])
  w.shell.start()
  await until('the initial replication', () => w.events.some((e) => e.kind === 'replica.resynced') && !w.shell.status().resyncing)
  w.shell.write(5, w.disk.write(5, 5))
  await w.advance(30_000)
  await until('cycle 1 applied', () => w.shell.status().cycles_applied === 1)
  return w
}

t.test('refused until allowed; the initial replication sends only what differs; cycles keep the durable replica equal', async (t) => {
  const w = await world(t)
  w.disk.write(3, 3)
  w.disk.write(9, 9)
  w.shell.start()
  await flush()
  t.match(w.shell.status(), { health: 'Critical', last_error_code: 'HVLAB_E_REPLICA_NOT_ALLOWED' }, 'not a replica server yet')
  await w.server().auth.enable(false, ['host-b1'])
  await w.advance(5000)
  t.match(w.shell.status(), { last_error_code: 'HVLAB_E_REPLICA_NOT_ALLOWED', last_error: /does not take replication from host-a1/ })
  await w.server().auth.enable(false, ['host-a1'])
  await w.advance(5000)
  await until('the initial replication', () => w.events.some((e) => e.kind === 'replica.resynced') && !w.shell.status().resyncing)
  t.match(
    w.events.filter((e) => e.kind === 'replica.resynced').map((e) => e.details),
    [{ vm: 'web1', blocks_compared: BLOCKS, blocks_sent: 2 }],
    'the two written blocks went, not the zeros',
  )
  t.match(w.shell.status(), { health: 'Normal', resyncing: false, last_error: null })
  t.same(w.image(), w.disk.bytes, 'after the initial replication the replica is the primary')

  for (const [block, v] of [
    [1, 11],
    [1, 12],
    [40, 40],
  ] as const)
    w.shell.write(block, w.disk.write(block, v))
  await w.advance(30_000)
  await until('the first cycle applied', () => w.shell.status().cycles_applied === 1)
  t.match(
    w.shell.status(),
    { cycles_applied: 1, last_cycle_bytes: 2 * BS, in_flight: null, pending_bytes: 0 },
    'one cycle, each block once',
  )
  t.same(w.image(), w.disk.bytes, 'the durable replica equals the primary after the cycle')
  t.match(w.server().status('web1'), { replicas: [{ vm: 'web1', from: 'host-a1', applied_cycle: 1, resyncing: false }] })
})

t.test('a restarted replica server refuses the next log as not begun; the primary resyncs and goes on', async (t) => {
  const w = await replicatingOneCycle(t)
  const points = join(w.dir, 'vms', 'web1', 'points')
  t.same(readdirSync(points), ['1.undo'], 'the recovery point of cycle 1 is on storage')
  await w.restartServer()
  w.shell.write(6, w.disk.write(6, 6))
  await w.advance(30_000)
  const resyncs = () => w.events.filter((e) => e.kind === 'replica.resynced').map((e) => e.details)
  await until('a resync after the restart', () => resyncs().length === 2 && !w.shell.status().resyncing)
  t.match(resyncs().at(-1), { blocks_sent: 1 }, 'only the block of the refused cycle differed')
  t.match(w.server().status('web1'), { replicas: [{ recovery_points: [] }] }, 'the resync cleared the recovery points')
  t.same(readdirSync(points), [], 'on storage too')
  w.shell.write(7, w.disk.write(7, 7))
  await w.advance(30_000)
  await until('a cycle after the resync', () => w.shell.status().cycles_applied === 2)
  t.same(w.image(), w.disk.bytes, 'equal again')
  t.match(w.server().status(null), { replica_server: { enabled: true, allow_any: true } }, 'the allow list survived the restart')
})

t.test('bad requests are refused and leave the replica unharmed', async (t) => {
  const w = await world(t)
  await w.server().auth.enable(false, ['host-a1'])
  const intruder = new Link('host-b2')
  w.server().servePrimary(intruder as unknown as PeerConnection, w.clock)
  const begin = {
    t: 'replica-begin-request',
    vm: 'web1',
    block_size_bytes: BS,
    disk_blocks: BLOCKS,
    recovery_points: 0,
    memory_mib: 64,
  } as const
  await t.rejects(intruder.request(begin), { code: 'HVLAB_E_REFUSED', detail: 'HVLAB_E_REPLICA_NOT_ALLOWED' }, 'an unauthorised primary')
  const link = new Link('host-a1')
  w.server().servePrimary(link as unknown as PeerConnection, w.clock)
  await t.rejects(
    link.request({ t: 'replica-hashes-request', vm: 'web1', first_block: 0, blocks: 1 }),
    { code: 'HVLAB_E_STATE' },
    'nothing begun',
  )
  await link.request(begin)
  await t.rejects(link.request({ ...begin, disk_blocks: BLOCKS * 2 }), { code: 'HVLAB_E_STATE', message: /remove the replica first/ })
  await t.rejects(link.request({ t: 'replica-hashes-request', vm: 'web1', first_block: BLOCKS - 1, blocks: 2 }), { code: 'HVLAB_E_USAGE' })
  const body = Buffer.alloc(4 + 4 + BS)
  body.writeUInt32LE(1, 0)
  body.writeUInt32LE(BLOCKS, 4)
  await t.rejects(link.request({ t: 'replica-resync-blocks', vm: 'web1', body_bytes: body.length }, { attachment: body }), {
    code: 'HVLAB_E_PROTOCOL',
  })
  const part = await link.request(
    {
      t: 'replica-log-part',
      vm: 'web1',
      cycle: 1,
      part: 0,
      parts: 1,
      closed_at_ms: w.clock.now() + 3_600_000,
      block_size_bytes: BS,
      writes_logged: 0,
      logged_bytes: 0,
      compression: 'none',
      body_bytes: 4,
    },
    { attachment: Buffer.alloc(4) },
  )
  t.match(part.message, { outcome: 'refused', refusal: 'from-future' }, 'a log from the future')
  t.same(w.image(), new Uint8Array(BS * BLOCKS), 'the replica is unharmed')
})

t.test(
  'the host gives each replicated VM running here a shell, routes its writes, and drops it when it leaves or stops replicating',
  async (t) => {
    const w = await world(t)
    await w.server().auth.enable(true, [])
    const link = new Link('host-a1')
    w.server().servePrimary(link as unknown as PeerConnection, w.clock)
    const running = new Set(['web1', 'db1', 'app1'])
    const settings = new Map<string, ReplicationSetting>([
      ['web1', SETTING],
      ['db1', SETTING],
    ])
    let connected = false
    const host = new ReplicationHost({
      host: 'host-a1',
      clock: w.clock,
      time_scale: 1,
      running: () => [...running],
      settingOf: (vm) => settings.get(vm),
      memoryOf: () => 64,
      diskOf: (vm) => (vm === 'web1' ? w.disk : undefined),
      server: (name) => (connected && name === 'dr1' ? link : undefined),
      emit: () => {},
    })
    host.check()
    t.match(host.status(null), [
      { vm: 'web1', to: 'dr1' },
      { vm: 'db1', health: 'Critical', last_error: 'vm db1 has no disk attached on this host', last_error_code: 'HVLAB_E_STATE' },
    ])
    await flush()
    t.match(host.status('web1'), [{ last_error_code: 'HVLAB_E_CLOSED', last_error: /no connection to replica server dr1/ }])
    connected = true
    await w.advance(5000)
    await until('web1 begun', () => host.status('web1')[0]?.resyncing === false)
    t.match(host.status('web1'), [{ resyncing: false, last_error: null, pending_bytes: 0 }], 'begun once connected')
    const write = { vm: 'web1', seq: 1, epoch: 1, block: 2, value: 7 }
    host.completed(write, 'refused')
    t.match(host.status('web1'), [{ pending_bytes: 0 }], 'a refused write wrote nothing: not logged')
    host.completed(write, 'failed')
    t.match(host.status('web1'), [{ pending_bytes: BS }], 'a write in doubt is logged (it may be on the disk)')
    settings.set('web1', { ...SETTING, frequency_ms: 300_000 })
    host.check()
    t.match(host.status('web1'), [{ frequency_ms: 300_000, pending_bytes: 0 }], 'a changed setting gets a new shell')
    await until('the new shell begun', () => host.status('web1')[0]?.resyncing === false)
    host.completed(write, 'acked')
    const late = { ...write, seq: 2, block: 3 }
    host.issued(late)
    running.delete('web1')
    host.check()
    t.match(host.status('web1'), [{ stopped: true, finished: null, pending_bytes: BS }], 'a VM that stopped here: its last changes go')
    await until(
      'the first of them applied',
      () => host.status('web1')[0]?.pending_bytes === 0 && host.status('web1')[0]?.in_flight === null,
    )
    host.check()
    t.match(
      host.status('web1'),
      [{ stopped: true, finished: null }],
      'not finished while a disk write of the stopped VM is still in flight',
    )
    host.completed(late, 'acked')
    await until('the last changes sent', () => {
      host.check()
      return host.status('web1')[0]?.finished === 'sent'
    })
    t.match(host.status('web1'), [{ stopped: true, finished: 'sent', pending_bytes: 0, in_flight: null }], 'and how that ended stays shown')
    t.match(w.server().status('web1'), { replicas: [{ applied_cycle: 2 }] }, 'both applied on the replica, the late write too')
    running.add('web1')
    settings.delete('web1')
    host.check()
    t.same(host.status('web1'), [], 'running again and no longer replicated: nothing shown')
    host.stop()
  },
)

t.test('failover after a restart: to a recovery point kept on storage, exactly; then replication from the primary ends', async (t) => {
  const w = await replicatingOneCycle(t)
  const atPoint = w.disk.bytes.slice()
  w.shell.write(5, w.disk.write(5, 55))
  w.shell.write(6, w.disk.write(6, 6))
  await w.advance(30_000)
  await until('cycle 2 applied', () => w.shell.status().cycles_applied === 2)
  t.match(
    w.server().status('web1'),
    { replicas: [{ applied_cycle: 2, recovery_points: [{ cycle: 1 }] }] },
    'a recovery point after the first cycle',
  )

  w.shell.stop()
  await w.restartServer() // the replica server restarts while its primary is lost: it opens its replicas from storage
  const restarted = w.server()
  await restarted.openAll()
  const ran = w.ran
  t.match(
    restarted.status('web1'),
    { replicas: [{ vm: 'web1', from: 'host-a1', applied_cycle: 2, state: 'replicating', recovery_points: [{ cycle: 1 }] }] },
    'opened again from storage, its recovery point too',
  )
  await t.rejects(
    restarted.failover('web1', 2, undefined),
    { code: 'HVLAB_E_NOT_FOUND', message: /no recovery point of cycle 2 \(it has 1\)/ },
    'only a cycle a point was taken at',
  )
  await restarted.failover('web1', 1, { disk_iops: 5 })
  t.same(ran, [{ vm: 'web1', memory_mib: 64, load: { disk_iops: 5 } }], 'the replica VM started with its memory and load')
  t.same(w.image(), atPoint, 'from the recovery point kept across the restart, exactly')
  t.match(restarted.status('web1'), { replicas: [{ state: 'failed-over', vm_running: true, applied_cycle: 1, recovery_points: [] }] })
  await t.rejects(restarted.failover('web1', null, undefined), { code: 'HVLAB_E_STATE', message: /has failed over already/ })
  const link = new Link('host-a1')
  restarted.servePrimary(link as unknown as PeerConnection, w.clock)
  const begin = {
    t: 'replica-begin-request',
    vm: 'web1',
    block_size_bytes: BS,
    disk_blocks: BLOCKS,
    recovery_points: 2,
    memory_mib: 64,
  } as const
  await t.rejects(
    link.request(begin),
    { code: 'HVLAB_E_STATE', message: /has failed over to this replica server/ },
    'the old primary cannot begin again',
  )
})

t.test('failover to a recovery point returns the replica to it exactly', async (t) => {
  const w = await replicatingOneCycle(t)
  const atPoint = w.disk.bytes.slice()
  w.shell.write(5, w.disk.write(5, 55))
  w.shell.write(6, w.disk.write(6, 6))
  await w.advance(30_000)
  await until('cycle 2 applied', () => w.shell.status().cycles_applied === 2)
  w.shell.stop()
  await w.server().failover('web1', 1, undefined)
  t.same(w.image(), atPoint, "the replica's durable disk is the primary's as cycle 1 left it")
  t.match(w.server().status('web1'), { replicas: [{ applied_cycle: 1, state: 'failed-over', recovery_points: [] }] })
})

t.test('a test failover runs a copy, isolated, while replication goes on; a failover ends it', async (t) => {
  const w = await replicatingOneCycle(t)
  await w.server().testFailover('web1', { disk_iops: 1 })
  t.match(w.server().status('web1'), { replicas: [{ test_vm_running: true, vm_running: false, state: 'replicating' }] })
  await t.rejects(w.server().testFailover('web1', undefined), { code: 'HVLAB_E_STATE', message: /runs already \(web1-test\)/ })
  const copy = w.up.get('web1-test')!
  copy.writeBlock(9, new Uint8Array(BS).fill(99))
  w.shell.write(6, w.disk.write(6, 6))
  await w.advance(30_000)
  await until('cycle 2 applied', () => w.shell.status().cycles_applied === 2)
  t.same(w.image(), w.disk.bytes, 'replication went on: the replica is the primary, untouched by the test VM')
  t.equal(copy.readBlock(6)[0], 0, "and the test VM's copy stays as it was taken")
  w.server().stopTestFailover('web1')
  t.throws(() => w.server().stopTestFailover('web1'), { code: 'HVLAB_E_STATE' }, 'no test failover runs now')
  await w.server().testFailover('web1', undefined)
  w.shell.stop()
  await w.server().failover('web1', null, undefined)
  t.same([...w.up.keys()], ['web1'], 'a failover stops the test VM and runs the real one')
})

t.test('a replica that failed over refuses its old primary with a stable code: the copy there is the older one', async (t) => {
  const w = await replicatingOneCycle(t)
  w.shell.stop()
  await w.server().failover('web1', null, undefined)
  const link = new Link('host-a1')
  w.server().servePrimary(link as unknown as PeerConnection, w.clock)
  const begin = {
    t: 'replica-begin-request',
    vm: 'web1',
    block_size_bytes: BS,
    disk_blocks: w.disk.blocks,
    recovery_points: 0,
    memory_mib: 64,
  } as const
  await t.rejects(link.request(begin), { detail: 'HVLAB_E_REPLICA_RUNS_ELSEWHERE', message: /has failed over to this replica server/ })
  await w.server().createHere({ vm: 'shop1', block_size_bytes: BS, disk_blocks: 16 }, 64, undefined)
  const own = { ...begin, vm: 'shop1', disk_blocks: 16 }
  await t.rejects(
    link.request(own),
    { code: 'HVLAB_E_STATE', message: /was created on this server/ },
    "a server's own VM of that name: no such word",
  )
  const refusal = await link.request(own).catch((e: unknown) => e)
  t.notOk(HvlabError.has(refusal, 'HVLAB_E_REPLICA_RUNS_ELSEWHERE'), 'its primary is not told to stop')

  // the old primary's shell, begun again (its cluster returned): told, it says so once per refusal
  const told: string[] = []
  const shell = new ReplicationShell({
    vm: 'web1',
    host: 'host-a1',
    setting: SETTING,
    memory_mib: 64,
    writesInFlight: () => 0,
    clock: w.clock,
    time_scale: 1,
    server: () => link,
    disk: w.disk,
    runsElsewhere: () => void told.push('web1'),
    emit: () => undefined,
  })
  t.teardown(() => shell.stop())
  shell.start()
  await until('the refusal reported', () => told.length > 0)
  t.same(told, ['web1'], 'the shell tells its host the copy there is the older one')
})

t.test('a replica larger than the lab allows is refused before anything is allocated', async (t) => {
  const w = await world(t)
  await w.server().auth.enable(true, [])
  const link = new Link('host-a1')
  w.server().servePrimary(link as unknown as PeerConnection, w.clock)
  const huge = {
    t: 'replica-begin-request',
    vm: 'big',
    block_size_bytes: 65536,
    disk_blocks: 1 << 20,
    recovery_points: 0,
    memory_mib: 64,
  } as const
  await t.rejects(link.request(huge), { code: 'HVLAB_E_USAGE', message: /over the 4294967296 bytes a replica may hold/ })
  const beyond = { ...huge, vm: 'two', block_size_bytes: BS, disk_blocks: 64, disks: 2, included_disks: [0, 2] }
  await t.rejects(
    link.request(beyond),
    { code: 'HVLAB_E_USAGE', message: /vm two has 2 disk\(s\), 0–1; its primary named disk 2 among those it replicates/ },
    'a disk the VM does not have among those replicated',
  )
  t.same(w.server().replicaStatus(null), [], 'nothing was opened for either')
})

t.test(
  'initial replication by export: nothing travels until the replica server imports the file; then only what changed since',
  async (t) => {
    const media = mkdtempSync(join(tmpdir(), 'hvlab-media-'))
    t.teardown(() => rmSync(media, { recursive: true, force: true }))
    const w = await world(t, { ...SETTING, initial: 'export', export_dir: media })
    await w.server().auth.enable(true, [])
    w.disk.write(3, 3)
    w.disk.write(9, 9)
    w.shell.start()
    await until('the export', () => w.shell.status().export_file !== null)
    const file = join(media, 'web1.hvlab-replica-export')
    t.match(w.shell.status(), { waiting_for: 'initial-copy', export_file: file, resyncing: true })
    t.match(
      w.events.filter((e) => e.kind === 'replica.exported').map((e) => e.details),
      [{ vm: 'web1', file, blocks: 2 }],
      'the blocks holding data, exported',
    )
    w.shell.write(4, w.disk.write(4, 4)) // a write after the export
    await w.advance(10_000)
    t.notOk(
      w.events.some((e) => e.kind === 'replica.resynced'),
      'no copy over the network while the replica has none',
    )
    t.match(w.server().status('web1'), { replicas: [{ applied_cycle: 0 }] })

    const bad = join(media, 'bad.hvlab-replica-export')
    const bytes = readFileSync(file)
    writeFileSync(bad, bytes.subarray(0, bytes.length - 40))
    await t.rejects(
      w.server().importCopy('web1', bad),
      { code: 'HVLAB_E_USAGE', message: /checksum does not match/ },
      'a truncated export is refused',
    )
    const altered = Buffer.from(bytes)
    altered[altered.length - 100]! ^= 1
    writeFileSync(bad, altered)
    await t.rejects(w.server().importCopy('web1', bad), { code: 'HVLAB_E_USAGE' }, 'an altered one too')
    await t.rejects(w.server().importCopy('db1', file), { code: 'HVLAB_E_STATE' }, 'a VM not replicating here takes no import')
    t.notOk(
      w.image().some((b) => b !== 0),
      'nothing written by the refused imports',
    )

    t.match(await w.server().importCopy('web1', file), { blocks_imported: 2 })
    await w.advance(5000)
    await until('the resync after the import', () => w.events.some((e) => e.kind === 'replica.resynced') && !w.shell.status().resyncing)
    t.match(
      w.events.filter((e) => e.kind === 'replica.resynced').map((e) => e.details),
      [{ blocks_compared: BLOCKS, blocks_sent: 1 }],
      'only the block written after the export travelled',
    )
    t.match(w.shell.status(), { waiting_for: null, health: 'Normal' })
    t.same(w.image(), w.disk.bytes, 'the replica is the primary')
  },
)

const exportHeader = (vm: string) => ({ vm, from: 'host-a1', memory_mib: 64, exported_at_ms: 1, block_size_bytes: BS, disk_blocks: BLOCKS })

t.test('initial replication from a seed copy: the shell waits for it; a scheduled one waits for its time', async (t) => {
  const media = mkdtempSync(join(tmpdir(), 'hvlab-media-'))
  t.teardown(() => rmSync(media, { recursive: true, force: true }))
  const seeded = await world(t, { ...SETTING, initial: 'seed' })
  await seeded.server().auth.enable(true, [])
  for (let b = 0; b < 10; b++) seeded.disk.write(b, b + 1)
  const backup = join(media, 'web1.hvlab-replica-export')
  await exportDisk(backup, seeded.disk, exportHeader('web1'))
  seeded.disk.write(2, 77) // the VM went on after its backup
  seeded.shell.start()
  await until('the seeded shell waits', () => seeded.shell.status().waiting_for === 'initial-copy')
  await seeded.advance(10_000)
  t.match(seeded.shell.status(), { waiting_for: 'initial-copy', export_file: null }, 'a seed is not exported by the primary')
  const other = join(media, 'web9.hvlab-replica-export')
  await exportDisk(other, seeded.disk, exportHeader('web9'))
  await t.rejects(seeded.server().importCopy('web1', other), { code: 'HVLAB_E_USAGE', message: /the export is of vm web9, not web1/ })
  t.match(await seeded.server().importCopy('web1', backup), { blocks_imported: 10 })
  await seeded.advance(5000)
  await until(
    'the resync after the seed',
    () => seeded.events.some((e) => e.kind === 'replica.resynced') && !seeded.shell.status().resyncing,
  )
  t.match(
    seeded.events.find((e) => e.kind === 'replica.resynced')?.details,
    { blocks_sent: 1 },
    'only the block changed since the seed went',
  )
  t.same(seeded.image(), seeded.disk.bytes)

  const scheduled = await world(t, { ...SETTING, start_at_ms: 1_000_000 + 60_000 })
  await scheduled.server().auth.enable(true, [])
  scheduled.shell.start()
  await scheduled.advance(59_000)
  t.match(scheduled.shell.status(), { waiting_for: 'start-time' })
  t.equal(scheduled.server().vmCount, 0, 'the replica server heard nothing before the scheduled time')
  await scheduled.advance(2000)
  await until(
    'the scheduled initial replication',
    () => scheduled.events.some((e) => e.kind === 'replica.resynced') && !scheduled.shell.status().resyncing,
  )
  t.match(scheduled.shell.status(), { waiting_for: null, health: 'Normal' })
})

t.test('extended replication: the replica server forwards whole applied cycles to a third server, and stops at a failover', async (t) => {
  const w = await replicatingOneCycle(t)
  const dir2 = mkdtempSync(join(tmpdir(), 'hvlab-replica-dr2-'))
  t.teardown(() => rmSync(dir2, { recursive: true, force: true }))
  const dr2 = new ReplicaServer('dr2', dir2, 1, await ReplicaServerAuthorization.open(dir2), w.runner)
  const link2 = new Link('dr1')
  dr2.servePrimary(link2 as unknown as PeerConnection, w.clock)
  w.forwardTo.set('dr2', link2)
  const third = () => new Uint8Array(readFileSync(join(dir2, 'vms', 'web1', 'disk.img')))
  const forwarding = () => w.server().status('web1') as MessageOf<'replica-status-reply'>

  await t.rejects(w.server().extend('web1', { to: 'dr1', frequency_ms: 300_000 }), { code: 'HVLAB_E_USAGE' }, 'not to itself')
  await t.rejects(w.server().extend('db1', { to: 'dr2', frequency_ms: 300_000 }), { code: 'HVLAB_E_NOT_FOUND' }, 'only a replica it holds')
  await w.server().extend('web1', { to: 'dr2', frequency_ms: 300_000 })
  await flush()
  t.match(
    forwarding().primaries,
    [{ vm: 'web1', to: 'dr2', last_error_code: 'HVLAB_E_REPLICA_NOT_ALLOWED' }],
    'dr2 refuses until it allows dr1',
  )
  await dr2.auth.enable(false, ['dr1'])
  await w.advance(5000)
  await until('the extended replica resynced', () => forwarding().primaries[0]?.resyncing === false)
  t.same(third(), w.image(), 'the first resync makes the third server hold the replica')

  w.shell.write(7, w.disk.write(7, 7))
  w.shell.write(8, w.disk.write(8, 8))
  await w.advance(30_000)
  await until('cycle 2 applied on dr1', () => w.shell.status().cycles_applied === 2)
  t.notSame(third(), w.image(), 'the third server is behind until its own cycle')
  await w.advance(300_000)
  await until('a forwarded cycle applied (answered once durable)', () => forwarding().primaries[0]?.cycles_applied === 1)
  t.same(third(), w.image(), 'after a forwarded cycle the third server equals the replica')
  t.same(third(), w.disk.bytes, 'and the primary')
  t.match(dr2.status('web1'), { replicas: [{ vm: 'web1', from: 'dr1', state: 'replicating' }] })

  await w.server().failover('web1', null, undefined)
  t.same(forwarding().primaries, [], 'a failover on the replica server ends its forwarding')
  await t.rejects(w.server().extend('web1', { to: 'dr2', frequency_ms: 300_000 }), { code: 'HVLAB_E_STATE' })
})

t.test(
  'replication set again with another count of recovery points: the replica keeps that many from then on, the oldest merged away durably',
  async (t) => {
    const w = await replicatingOneCycle(t)
    w.shell.write(6, w.disk.write(6, 6))
    await w.advance(30_000)
    await until('cycle 2 applied', () => w.shell.status().cycles_applied === 2)
    t.match(w.server().status('web1'), { replicas: [{ recovery_points: [{ cycle: 1 }] }] }, 'a point kept (2 allowed)')
    w.shell.stop()
    const link = new Link('host-a1')
    w.server().servePrimary(link as unknown as PeerConnection, w.clock)
    const begin = (recovery_points: number) =>
      link.request({ t: 'replica-begin-request', vm: 'web1', block_size_bytes: BS, disk_blocks: BLOCKS, recovery_points, memory_mib: 64 })
    await begin(0)
    t.match(w.server().status('web1'), { replicas: [{ recovery_points: [] }] }, 'none kept now')
    t.match(await readReplicaVmRecord(join(w.dir, 'vms', 'web1')), { recovery_points: 0 })
    await w.restartServer()
    await w.server().openAll()
    t.match(w.server().status('web1'), { replicas: [{ recovery_points: [] }] }, 'merged away on storage too: a restart finds none')
    const link2 = new Link('host-a1')
    w.server().servePrimary(link2 as unknown as PeerConnection, w.clock)
    await link2.request({
      t: 'replica-begin-request',
      vm: 'web1',
      block_size_bytes: BS,
      disk_blocks: BLOCKS,
      recovery_points: 3,
      memory_mib: 64,
    })
    t.match(await readReplicaVmRecord(join(w.dir, 'vms', 'web1')), { recovery_points: 3 }, 'more: kept from then on')
  },
)
