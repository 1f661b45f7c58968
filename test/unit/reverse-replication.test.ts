/**
 * Reverse replication in one process (agent/replica/reverse-replication.ts,
 * reverse-replica-server.ts): a VM replicated from host-a1 to dr1 fails over planned, its
 * writes on dr1 go back to host-a1 (where the broker placed its reverse replica) into the
 * VM's own disk (a disk image standing in for its volume), only from the server the role
 * names and the cluster's Replica Broker allows; the fail-back makes dr1's replica a replica
 * again, and the primary's resync then finds nothing that differs.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { Link } from './replica-link-fixture.js'
import { ManualClock } from '../../shared/clock.js'
import { messageDef, type Message } from '../../shared/protocol/messages.js'
import { REPLICA_BROKER_ROLE } from '../../shared/protocol/replica-limits.js'
import type { ReplicationSetting } from '../../shared/protocol/replica-messages.js'
import type { ReplicaEvent } from '../../shared/timeline/replica-events.js'
import type { PeerConnection } from '../../shared/transport/peer-connection.js'
import { encodeRole, roleKey } from '../../agent/cluster/role-record.js'
import { createVmRole } from '../../agent/cluster/vm-role.js'
import type { DiskImage } from '../../agent/replica/disk-image.js'
import type { PrimaryDisk } from '../../agent/replica/primary-resync.js'
import { ReplicaServerAuthorization } from '../../agent/replica/replica-server-settings.js'
import { ReplicaServer, type ReplicaRunner } from '../../agent/replica/replica-server.js'
import { readReplicaVmRecord } from '../../agent/replica/replica-vm-record.js'
import { ReplicationShell } from '../../agent/replica/replication-shell.js'
import { reverseReplicationHost } from '../../agent/replica/reverse-replication.js'
import { reverseAuthorization } from '../../agent/replica/reverse-replica-server.js'
import { encodeDiskWrite } from '../../agent/vm/disk-write-record.js'

const BS = 512
const BLOCKS = 64
const SETTING: ReplicationSetting = { to: 'dr1', frequency_ms: 30_000, recovery_points: 0, compress: false }

async function until(what: string, ok: () => boolean, clock?: ManualClock): Promise<void> {
  for (let i = 0; i < 500 && !ok(); i++) {
    clock?.advance(100)
    await new Promise((r) => setTimeout(r, 5))
  }
  if (!ok()) throw new Error(`${what} did not happen`)
}

/** The VM's volume on the cluster's storage: bytes, with every write counted. */
function volume(): DiskImage & { bytes: Uint8Array; written: number[] } {
  const bytes = new Uint8Array(BS * BLOCKS)
  const written: number[] = []
  return {
    bytes,
    written,
    load: async () => bytes,
    async write(blocks) {
      for (const b of blocks) {
        bytes.set(b.data, b.block * BS)
        written.push(b.block)
      }
    },
  }
}

const diskOver = (bytes: Uint8Array): PrimaryDisk => ({
  block_size_bytes: BS,
  blocks: BLOCKS,
  read: async (first, n) => bytes.slice(first * BS, (first + n) * BS),
})

async function world(t: { teardown(fn: () => unknown): void }) {
  const dir = mkdtempSync(join(tmpdir(), 'hvlab-reverse-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const clock = new ManualClock(1_000_000)
  const events: ReplicaEvent[] = []
  const up = new Set<string>()
  const runner: ReplicaRunner = {
    run: (vm) => void up.add(vm),
    runIsolated: (vm) => void up.add(vm),
    stop: (vm) => void up.delete(vm),
    running: (vm) => up.has(vm),
  }
  const auth = await ReplicaServerAuthorization.open(join(dir, 'dr1'))
  await auth.enable(true, [])
  const dr1 = new ReplicaServer('dr1', join(dir, 'dr1'), 1, auth, runner)
  // host-a1's committed database: web1's role, with its replication as the CLI sets it
  const config: Record<string, string> = {}
  const setRole = (replication: ReplicationSetting) => {
    config['role/web1'] = encodeRole({ ...createVmRole({ name: 'web1', memory_mib: 64 }), replication })
  }
  setRole(SETTING)
  // the cluster's Replica Broker role: its allow list (null: the cluster has none)
  const setBroker = (allow: string[] | null) => {
    if (allow === null) delete config[roleKey(REPLICA_BROKER_ROLE)]
    else
      config[roleKey(REPLICA_BROKER_ROLE)] = encodeRole({
        ...createVmRole({ name: REPLICA_BROKER_ROLE, memory_mib: 32 }),
        replica_broker: { allow_any: false, allow },
      })
  }
  setBroker(['dr1', 'dr2']) // dr2: allowed by the broker, yet not the server web1 failed over to
  const vol = volume()
  const a1 = new ReplicaServer(
    'host-a1',
    join(dir, 'a1'),
    1,
    reverseAuthorization(() => ({ config })),
    runner,
    { image: async () => vol },
  )
  const links = { toDr1: new Link('host-a1'), toA1: new Link('dr1'), strangerToA1: new Link('dr2') }
  dr1.servePrimary(links.toDr1 as unknown as PeerConnection, clock)
  a1.servePrimary(links.toA1 as unknown as PeerConnection, clock)
  a1.servePrimary(links.strangerToA1 as unknown as PeerConnection, clock)
  const shell = (from: string, to: Link, setting: ReplicationSetting, bytes: Uint8Array) =>
    new ReplicationShell({
      vm: 'web1',
      host: from,
      setting,
      memory_mib: 64,
      writesInFlight: () => 0,
      clock,
      time_scale: 1,
      server: () => to,
      disk: diskOver(bytes),
      emit: (e) => events.push(e),
    })
  const reverse = reverseReplicationHost({
    host: 'dr1',
    clock,
    time_scale: 1,
    sending: () => dr1.sending,
    placedOn: () => 'host-a1', // where the broker placed web1's reverse replica (reverse-placement.ts)
    running: (vm) => runner.running(vm),
    server: (name) => (name === 'host-a1' ? links.toA1 : undefined) as never,
    emit: (e) => events.push(e),
  })
  return { dir, clock, events, up, dr1, a1, vol, links, shell, reverse, setRole, setBroker }
}

const resyncs = (events: readonly ReplicaEvent[], source?: string) =>
  events.filter((e) => e.kind === 'replica.resynced').map((e) => ({ ...e.details, source }))

t.test(
  'a planned failover reverses replication into the VM own disk; the fail-back replicates forward with nothing to resend',
  async (t) => {
    const w = await world(t)
    // forward: host-a1 replicates web1 (its volume's bytes) to dr1
    w.vol.bytes.fill(7, 3 * BS, 4 * BS)
    const forward = w.shell('host-a1', w.links.toDr1, SETTING, w.vol.bytes)
    forward.start()
    await until('the initial replication', () => w.events.some((e) => e.kind === 'replica.resynced') && !forward.status().resyncing)
    forward.stop()

    // the planned failover: dr1 runs web1 and replicates it back to host-a1
    const reverse = { frequency_ms: 30_000 as const, compress: false }
    const refusedBefore = w.shell('dr1', w.links.toA1, { ...SETTING, to: 'host-a1' }, new Uint8Array(BS * BLOCKS))
    refusedBefore.start()
    await until('a refusal', () => refusedBefore.status().last_error_code !== null)
    t.match(
      refusedBefore.status(),
      { last_error_code: 'HVLAB_E_REPLICA_NOT_ALLOWED' },
      'refused while the role does not say it is reversed',
    )
    refusedBefore.stop()
    w.setRole({ ...SETTING, reversed_to: 'host-a1' })
    await w.dr1.failover('web1', null, undefined, reverse)
    t.ok(w.up.has('web1'), 'web1 runs on dr1')
    t.same(
      w.dr1.reversed.map((r) => r.vm),
      ['web1'],
    )
    t.match(await readReplicaVmRecord(join(w.dir, 'dr1', 'vms', 'web1')), { state: 'failed-over', reverse }, 'kept in its record')

    const stranger = w.shell('dr2', w.links.strangerToA1, { ...SETTING, to: 'host-a1' }, new Uint8Array(BS * BLOCKS))
    stranger.start()
    await until('a refusal', () => stranger.status().last_error_code !== null)
    t.match(stranger.status(), {
      last_error_code: 'HVLAB_E_REPLICA_NOT_ALLOWED',
      last_error: /only from the replica server it failed over to/,
    })
    stranger.stop()
    w.setBroker(['dr2'])
    const notAllowed = w.shell('dr1', w.links.toA1, { ...SETTING, to: 'host-a1' }, new Uint8Array(BS * BLOCKS))
    notAllowed.start()
    await until('a refusal', () => notAllowed.status().last_error_code !== null)
    t.match(
      notAllowed.status(),
      { last_error_code: 'HVLAB_E_REPLICA_NOT_ALLOWED', last_error: /Replica Broker does not take replication from dr1/ },
      "refused while the broker's allow list leaves dr1 out",
    )
    notAllowed.stop()
    w.setBroker(null)
    const noBroker = w.shell('dr1', w.links.toA1, { ...SETTING, to: 'host-a1' }, new Uint8Array(BS * BLOCKS))
    noBroker.start()
    await until('a refusal', () => noBroker.status().last_error_code !== null)
    t.match(
      noBroker.status(),
      { last_error_code: 'HVLAB_E_REPLICA_NOT_ALLOWED', last_error: /replica server enable cluster/ },
      'refused while the cluster has no broker',
    )
    noBroker.stop()
    w.setBroker(['dr1', 'dr2'])

    // web1 writes on dr1 (as its disk port does: the replica's disk, then the sink hears the write)
    w.reverse.start()
    await until('the reverse resync', () => resyncs(w.events).length === 2 && !w.reverse.status('web1')[0]!.resyncing, w.clock)
    t.match(resyncs(w.events)[1], { blocks_compared: BLOCKS, blocks_sent: 0 }, "the reverse replica is the VM's own disk: nothing to send")
    const store = w.dr1.reversed[0]!.store
    for (const [seq, block] of [
      [1, 10],
      [2, 11],
      [3, 10],
    ] as const) {
      const record = { vm: 'web1', seq, epoch: 1, block, value: seq }
      store.disk.writeBlock(block, encodeDiskWrite(record, BS))
      w.reverse.issued(record)
      w.reverse.completed(record, 'acked')
    }
    await until('a reverse cycle applied', () => (w.reverse.status('web1')[0]?.cycles_applied ?? 0) >= 1, w.clock)
    t.same(w.vol.written.sort(), [10, 11], 'each block written on dr1 went back once, into the volume')
    t.same(w.vol.bytes, allOf(store), "the volume is dr1's disk")
    t.match(w.a1.replicaStatus('web1'), [{ vm: 'web1', from: 'dr1', state: 'replicating', applied_cycle: 1 }])

    // the fail-back: the VM stops on dr1, its last write goes back, dr1's replica is a replica again
    const last = { vm: 'web1', seq: 4, epoch: 1, block: 12, value: 4 }
    store.disk.writeBlock(12, encodeDiskWrite(last, BS))
    w.reverse.completed(last, 'acked')
    await t.rejects(w.dr1.failBack('web1'), { code: 'HVLAB_E_STATE' }, 'not while the VM runs there')
    await w.dr1.stopForFailBack('web1')
    t.notOk(w.up.has('web1'))
    await until('the last changes sent', () => w.reverse.status('web1')[0]?.finished === 'sent', w.clock)
    t.same(w.vol.bytes, allOf(store), 'the last write went back before the fail-back goes on')
    await w.dr1.failBack('web1')
    t.same(w.dr1.reversed, [])
    t.match(await readReplicaVmRecord(join(w.dir, 'dr1', 'vms', 'web1')), { state: 'replicating', reverse: undefined })
    await w.a1.drop('web1')
    t.same(w.a1.replicaStatus(null), [], 'host-a1 holds no reverse replica any more')

    w.setRole(SETTING)
    const again = w.shell('host-a1', w.links.toDr1, SETTING, w.vol.bytes)
    again.start()
    await until('the forward resync', () => resyncs(w.events).length === 3 && !again.status().resyncing, w.clock)
    t.match(resyncs(w.events)[2], { blocks_compared: BLOCKS, blocks_sent: 0 }, 'forward again: nothing differs')
    again.stop()
    w.reverse.stop()
  },
)

t.test('a fail-back is refused for a VM that did not fail over reversed', async (t) => {
  const w = await world(t)
  const forward = w.shell('host-a1', w.links.toDr1, SETTING, w.vol.bytes)
  forward.start()
  await until('the initial replication', () => w.events.some((e) => e.kind === 'replica.resynced') && !forward.status().resyncing)
  forward.stop()
  await t.rejects(w.dr1.stopForFailBack('web1'), { code: 'HVLAB_E_STATE' }, 'replicating: nothing to fail back')
  await w.dr1.failover('web1', null, undefined) // unplanned: not reversed
  await t.rejects(w.dr1.stopForFailBack('web1'), { code: 'HVLAB_E_STATE' }, 'an unplanned failover is not reversed')
  await t.rejects(
    w.dr1.importCopy('web1', join(w.dir, 'no-export')),
    { code: 'HVLAB_E_STATE', message: /takes no initial copy/ },
    'a replica that failed over takes no initial copy',
  )
  t.same(w.dr1.reversed, [])
})

function allOf(store: { disk: { readBlock(b: number): Uint8Array } }): Uint8Array {
  const out = new Uint8Array(BS * BLOCKS)
  for (let b = 0; b < BLOCKS; b++) out.set(store.disk.readBlock(b), b * BS)
  return out
}

t.test(
  'after an unplanned failover the VM replicates to the cluster once reconfigured: a compare resync sends only what differs from its volume',
  async (t) => {
    const w = await world(t)
    const forward = w.shell('host-a1', w.links.toDr1, SETTING, w.vol.bytes)
    forward.start()
    await until('the initial replication', () => w.events.some((e) => e.kind === 'replica.resynced') && !forward.status().resyncing)
    forward.stop()
    const reverse = { frequency_ms: 30_000 as const, compress: false }
    await t.rejects(w.dr1.replicateBack('web1', reverse), { code: 'HVLAB_E_STATE' }, 'refused while it replicates here')

    await w.dr1.failover('web1', null, undefined) // unplanned: not reversed
    t.same(w.dr1.reversed, [], 'an unplanned failover is not reversed')
    w.up.delete('web1')
    await t.rejects(
      w.dr1.replicateBack('web1', reverse),
      { code: 'HVLAB_E_STATE', message: /does not run on dr1/ },
      'refused while the VM does not run here',
    )
    w.up.add('web1')
    w.setRole({ ...SETTING, reversed_to: 'host-a1' }) // the broker placed it (replica-to-cluster.ts)
    await w.dr1.replicateBack('web1', reverse)
    await t.rejects(w.dr1.replicateBack('web1', reverse), { code: 'HVLAB_E_STATE', message: /already/ }, 'once')
    t.same(
      w.dr1.reversed.map((r) => r.vm),
      ['web1'],
    )
    t.match(await readReplicaVmRecord(join(w.dir, 'dr1', 'vms', 'web1')), { state: 'failed-over', reverse }, 'kept in its record')
    // web1 wrote on dr1 since the failover, before replication to the cluster began: its volume does not have these
    const store = w.dr1.reversed[0]!.store
    for (const block of [20, 21])
      store.disk.writeBlock(block, encodeDiskWrite({ vm: 'web1', seq: block, epoch: 1, block, value: block }, BS))
    w.reverse.start()
    await until('the resync to the cluster', () => resyncs(w.events).length === 2 && !w.reverse.status('web1')[0]!.resyncing, w.clock)
    t.match(resyncs(w.events)[1], { blocks_compared: BLOCKS, blocks_sent: 2 }, 'only the two blocks written since the failover')
    t.same(w.vol.bytes, allOf(store), "the volume is dr1's disk")
    w.reverse.stop()
  },
)

t.test(
  'a VM created on a standalone host runs there, takes no replication, replicates to the cluster into a blank volume, and its planned failover there makes its disk a replica',
  async (t) => {
    const w = await world(t)
    const geometry = { vm: 'web1', block_size_bytes: BS, disk_blocks: BLOCKS }
    await w.dr1.createHere(geometry, 64, undefined)
    t.ok(w.up.has('web1'), 'it runs on dr1 at once')
    t.match(w.dr1.replicaStatus('web1'), [{ vm: 'web1', from: 'dr1', state: 'created-here', memory_mib: 64, vm_running: true }])
    t.match(await readReplicaVmRecord(join(w.dir, 'dr1', 'vms', 'web1')), { state: 'created-here', recovery_points: 0 }, 'kept')
    await t.rejects(w.dr1.createHere(geometry, 64, undefined), { code: 'HVLAB_E_STATE', message: /has a vm named web1 already/ })
    await t.rejects(w.dr1.failover('web1', null, undefined), { code: 'HVLAB_E_STATE', message: /created on this server/ })
    await t.rejects(w.dr1.testFailover('web1', undefined), { code: 'HVLAB_E_STATE', message: /no replica to test/ })
    await t.rejects(w.dr1.stopForFailBack('web1'), { code: 'HVLAB_E_STATE' }, 'it does not replicate to the cluster yet')
    const intruder = w.shell('host-a1', w.links.toDr1, SETTING, w.vol.bytes)
    intruder.start()
    await until('a refusal', () => intruder.status().last_error_code !== null)
    t.match(intruder.status(), { last_error: /created on this server/ }, 'a primary replicating a VM of the same name is refused')
    intruder.stop()

    // it replicates to the cluster, having written on dr1: its blank volume there takes every block written
    const reverse = { frequency_ms: 30_000 as const, compress: false }
    w.setRole({ ...SETTING, reversed_to: 'host-a1' }) // the role the cluster made for it, placed by the broker (replica-to-cluster.ts)
    await w.dr1.replicateBack('web1', reverse)
    t.same(
      w.dr1.reversed.map((r) => r.vm),
      ['web1'],
    )
    const store = w.dr1.reversed[0]!.store
    for (const block of [5, 6, 40])
      store.disk.writeBlock(block, encodeDiskWrite({ vm: 'web1', seq: block, epoch: 1, block, value: block }, BS))
    w.reverse.start()
    await until(
      'the initial replication to the cluster',
      () => resyncs(w.events).length === 1 && !w.reverse.status('web1')[0]!.resyncing,
      w.clock,
    )
    t.match(resyncs(w.events)[0], { blocks_compared: BLOCKS, blocks_sent: 3 }, 'the three blocks it wrote, nothing else')
    t.same(w.vol.bytes, allOf(store), "the volume is dr1's disk")

    // its planned failover into the cluster: it stops on dr1, and dr1's disk becomes its replica
    await w.dr1.stopForFailBack('web1')
    await until('the last changes sent', () => w.reverse.status('web1')[0]?.finished === 'sent', w.clock)
    await w.dr1.failBack('web1')
    t.match(await readReplicaVmRecord(join(w.dir, 'dr1', 'vms', 'web1')), { state: 'replicating', reverse: undefined })
    w.setRole(SETTING)
    const forward = w.shell('host-a1', w.links.toDr1, SETTING, w.vol.bytes)
    forward.start()
    await until('the forward resync', () => resyncs(w.events).length === 2 && !forward.status().resyncing, w.clock)
    t.match(resyncs(w.events)[1], { blocks_compared: BLOCKS, blocks_sent: 0 }, 'from the cluster to dr1: nothing differs')
    forward.stop()
    w.reverse.stop()
  },
)

t.test(
  'a VM that runs on a standalone host stops, starts with the load it last had, starts again with a restarted server unless stopped, and is removed with its disk',
  async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'hvlab-standalone-vm-'))
    t.teardown(() => rmSync(dir, { recursive: true, force: true }))
    const starts: { vm: string; load: unknown; by: unknown }[] = []
    const up = new Set<string>()
    const runner: ReplicaRunner = {
      run: (vm, _memory, _store, load, by) => {
        starts.push({ vm, load, by })
        up.add(vm)
      },
      runIsolated: () => undefined,
      stop: (vm) => void up.delete(vm),
      running: (vm) => up.has(vm),
    }
    const open = async () => {
      const auth = await ReplicaServerAuthorization.open(join(dir, 'dr1'))
      const server = new ReplicaServer('dr1', join(dir, 'dr1'), 1, auth, runner)
      await server.openAll()
      return server
    }
    const dr1 = await open()
    const geometry = (vm: string) => ({ vm, block_size_bytes: BS, disk_blocks: BLOCKS })
    await dr1.createHere(geometry('shop1'), 64, { disk_iops: 5 })
    await dr1.createHere(geometry('shop2'), 64, undefined)
    await dr1.loadChanged('shop1', { disk_iops: 9, dirty_mib_per_s: 1 })
    await t.rejects(dr1.removeHere('shop2'), { code: 'HVLAB_E_STATE', message: /vm stop shop2/ }, 'not while it runs')
    await dr1.stopHere('shop2')
    t.notOk(up.has('shop2'))
    t.match(await readReplicaVmRecord(join(dir, 'dr1', 'vms', 'shop2')), { state: 'created-here', stopped: true })

    // the server restarts (its VMs stopped with it): shop1 starts again with the load it last had, shop2 stays off
    up.clear()
    starts.length = 0
    const again = await open()
    t.same(starts, [{ vm: 'shop1', load: { disk_iops: 9, dirty_mib_per_s: 1 }, by: 'automatic-start' }])
    await again.startHere('shop2')
    t.match(starts[1], { vm: 'shop2', by: 'start' })
    t.notOk((await readReplicaVmRecord(join(dir, 'dr1', 'vms', 'shop2')))?.stopped, 'started: it starts with the server again')
    await again.stopHere('shop2')
    await again.removeHere('shop2')
    t.same(
      again.replicaStatus(null).map((r) => r.vm),
      ['shop1'],
      'shop2 and its disk are gone',
    )
    t.equal(await readReplicaVmRecord(join(dir, 'dr1', 'vms', 'shop2')), undefined)

    // replicating to the cluster, it is stopped by its planned failover there, not by `vm stop`
    await again.replicateBack('shop1', { frequency_ms: 30_000, compress: false })
    await t.rejects(again.stopHere('shop1'), { code: 'HVLAB_E_STATE', message: /replica failover shop1 --planned/ })
    await t.rejects(again.startHere('nosuch'), { code: 'HVLAB_E_NOT_FOUND' })
  },
)
