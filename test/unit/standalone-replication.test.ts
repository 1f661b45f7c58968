/**
 * Replication between standalone hosts (agent/replica/replica-server.ts, replica-vm.ts,
 * reverse-replication.ts): a VM standalone host dr1 created replicates to dr2 (its blank
 * replica takes every block written); its planned failover to dr2 (stop, last changes,
 * start there replicating back, dr1's disk made its replica) is followed by a resync from
 * dr2 that sends nothing; refusals: replicating to itself, a replica that is asked to
 * replicate, replicating to a standalone host while it replicates to the cluster.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { Link } from './replica-link-fixture.js'
import { ManualClock } from '../../shared/clock.js'
import type { ReplicationSetting } from '../../shared/protocol/replica-messages.js'
import type { ReplicaEvent } from '../../shared/timeline/replica-events.js'
import type { PeerConnection } from '../../shared/transport/peer-connection.js'
import { ReplicaServerAuthorization } from '../../agent/replica/replica-server-settings.js'
import { ReplicaServer, type ReplicaRunner } from '../../agent/replica/replica-server.js'
import { readReplicaVmRecord } from '../../agent/replica/replica-vm-record.js'
import { reverseReplicationHost } from '../../agent/replica/reverse-replication.js'
import { encodeDiskWrite } from '../../agent/vm/disk-write-record.js'

const BS = 512
const BLOCKS = 64
const TO_DR2: ReplicationSetting = { to: 'dr2', frequency_ms: 30_000, recovery_points: 0, compress: false }

async function until(what: string, ok: () => boolean, clock: ManualClock): Promise<void> {
  for (let i = 0; i < 500 && !ok(); i++) {
    clock.advance(100)
    await new Promise((r) => setTimeout(r, 5))
  }
  if (!ok()) throw new Error(`${what} did not happen`)
}

/** Two standalone hosts, each a replica server allowing any primary, linked both ways, with a sending side each. */
async function hosts(t: { teardown(fn: () => unknown): void }) {
  const dir = mkdtempSync(join(tmpdir(), 'hvlab-standalone-replication-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const clock = new ManualClock(1_000_000)
  const events: ReplicaEvent[] = []
  const server = async (name: string) => {
    const up = new Set<string>()
    const runner: ReplicaRunner = {
      run: (vm) => void up.add(vm),
      runIsolated: () => undefined,
      stop: (vm) => void up.delete(vm),
      running: (vm) => up.has(vm),
    }
    const auth = await ReplicaServerAuthorization.open(join(dir, name))
    await auth.enable(true, [])
    return { up, server: new ReplicaServer(name, join(dir, name), 1, auth, runner) }
  }
  const dr1 = await server('dr1')
  const dr2 = await server('dr2')
  const toDr2 = new Link('dr1')
  const toDr1 = new Link('dr2')
  dr2.server.servePrimary(toDr2 as unknown as PeerConnection, clock)
  dr1.server.servePrimary(toDr1 as unknown as PeerConnection, clock)
  const sender = (from: typeof dr1, link: Link) =>
    reverseReplicationHost({
      host: from.server.name,
      clock,
      time_scale: 1,
      sending: () => from.server.sending,
      placedOn: () => undefined, // no cluster: no reverse placement
      running: (vm) => from.up.has(vm),
      server: () => link as never,
      emit: (e) => events.push(e),
    })
  return { dir, clock, events, dr1, dr2, fromDr1: sender(dr1, toDr2), fromDr2: sender(dr2, toDr1) }
}

const resyncs = (events: readonly ReplicaEvent[]) => events.filter((e) => e.kind === 'replica.resynced').map((e) => e.details)

t.test(
  'a VM of a standalone host replicates to another; its planned failover there reverses replication with nothing to resend',
  async (t) => {
    const w = await hosts(t)
    await w.dr1.server.createHere({ vm: 'shop1', block_size_bytes: BS, disk_blocks: BLOCKS }, 64, { disk_iops: 3 })
    await t.rejects(w.dr1.server.replicateTo('shop1', { ...TO_DR2, to: 'dr1' }), { code: 'HVLAB_E_USAGE' }, 'not to itself')
    await w.dr1.server.replicateTo('shop1', TO_DR2)
    t.match(await readReplicaVmRecord(join(w.dir, 'dr1', 'vms', 'shop1')), { state: 'created-here', replication: TO_DR2 })
    t.match(w.dr1.server.replicaStatus('shop1'), [{ replication: TO_DR2, load: { disk_iops: 3 } }])
    await t.rejects(
      w.dr1.server.replicateBack('shop1', { frequency_ms: 30_000, compress: false }),
      { code: 'HVLAB_E_STATE', message: /replicates to dr2/ },
      'not to the cluster as well',
    )
    const disk = w.dr1.server.sending[0]!.store.disk
    for (const block of [3, 4, 50]) disk.writeBlock(block, encodeDiskWrite({ vm: 'shop1', seq: block, epoch: 1, block, value: block }, BS))
    w.fromDr1.start()
    await until('the initial replication to dr2', () => resyncs(w.events).length === 1 && !w.fromDr1.status('shop1')[0]!.resyncing, w.clock)
    t.match(
      resyncs(w.events)[0],
      { vm: 'shop1', blocks_compared: BLOCKS, blocks_sent: 3 },
      "every block it wrote, into dr2's blank replica",
    )
    await t.rejects(w.dr2.server.replicateTo('shop1', { ...TO_DR2, to: 'dr1' }), {
      code: 'HVLAB_E_STATE',
      message: /holds a replica of vm shop1/,
    })

    // the planned failover to dr2
    await w.dr1.server.stopForFailBack('shop1')
    await until('the last changes sent', () => w.fromDr1.status('shop1')[0]?.finished === 'sent', w.clock)
    await w.dr2.server.failover('shop1', null, { disk_iops: 3 }, null, { ...TO_DR2, to: 'dr1' })
    await w.dr1.server.failBack('shop1')
    t.ok(w.dr2.up.has('shop1'), 'it runs on dr2')
    t.match(await readReplicaVmRecord(join(w.dir, 'dr1', 'vms', 'shop1')), { state: 'replicating', replication: undefined })
    t.match(await readReplicaVmRecord(join(w.dir, 'dr2', 'vms', 'shop1')), { state: 'failed-over', replication: { to: 'dr1' } })
    w.fromDr1.stop()
    w.fromDr2.start()
    await until('the resync from dr2', () => resyncs(w.events).length === 2 && !w.fromDr2.status('shop1')[0]!.resyncing, w.clock)
    t.match(resyncs(w.events)[1], { vm: 'shop1', blocks_sent: 0 }, "dr1's disk is the replica: nothing differs")
    w.fromDr2.stop()
  },
)

t.test(
  'a VM with two disks replicates as one block space; a disk left out is never sent and stays blank; put back in, a resync sends it',
  async (t) => {
    const w = await hosts(t)
    await w.dr1.server.createHere({ vm: 'shop2', block_size_bytes: BS, disk_blocks: 2 * BLOCKS, disks: 2 }, 64, undefined)
    await t.rejects(w.dr1.server.replicateTo('shop2', { ...TO_DR2, disks: [0, 2] }), { code: 'HVLAB_E_USAGE', message: /no disk 2/ })
    await w.dr1.server.replicateTo('shop2', { ...TO_DR2, disks: [0] })
    const disk = w.dr1.server.sending[0]!.store.disk
    const write = (block: number, seq: number) =>
      disk.writeBlock(block, encodeDiskWrite({ vm: 'shop2', seq, epoch: 1, block: block % BLOCKS, value: seq }, BS))
    write(3, 1) // disk 0, block 3
    write(BLOCKS + 5, 1) // disk 1 (the paging disk), block 5
    w.fromDr1.start()
    await until('the initial replication to dr2', () => resyncs(w.events).length === 1 && !w.fromDr1.status('shop2')[0]!.resyncing, w.clock)
    t.match(
      resyncs(w.events)[0],
      { vm: 'shop2', blocks_compared: BLOCKS, blocks_sent: 1 },
      "disk 0's block only: disk 1 is not even compared",
    )
    const replica = () => w.dr2.server.replicaStatus('shop2')[0]!
    t.match(replica(), { disks: 2, included_disks: [0], disk_bytes: 2 * BLOCKS * BS })
    const image = join(w.dir, 'dr2', 'vms', 'shop2', 'disk.img')
    const onDr2 = async (block: number) =>
      readFileSync(image)
        .subarray(block * BS, (block + 1) * BS)
        .some((b) => b !== 0)
    t.ok(await onDr2(3), "disk 0's block is on the replica")
    t.notOk(await onDr2(BLOCKS + 5), "disk 1's is not: it stays blank")

    // guest writes, as the VM's disk writers report them: disk 1's are not logged
    const record = (block: number, seq: number) => ({ vm: 'shop2', seq, epoch: 1, block, value: seq })
    const place = (n: number) => ({ host: 'dr1', array: 'dr1', volume: 'shop2', disk: n })
    write(7, 2)
    w.fromDr1.completed(record(7, 2), 'acked', null, place(0))
    write(BLOCKS + 7, 2)
    w.fromDr1.completed(record(7, 2), 'acked', null, place(1))
    await until('a cycle applied', () => w.events.some((e) => e.kind === 'replica.cycle-applied'), w.clock)
    t.ok(await onDr2(7), "disk 0's write travelled")
    t.notOk(await onDr2(BLOCKS + 7), "disk 1's did not")

    // every disk from now on: the replica is resynchronised, and only disk 1's two blocks differ
    await w.dr1.server.replicateTo('shop2', TO_DR2)
    w.fromDr1.check()
    await until(
      'the resync for the new disk set',
      () => resyncs(w.events).length === 2 && !w.fromDr1.status('shop2')[0]?.resyncing,
      w.clock,
    )
    t.match(resyncs(w.events)[1], { vm: 'shop2', blocks_sent: 2 }, "disk 1's two blocks")
    t.ok((await onDr2(BLOCKS + 5)) && (await onDr2(BLOCKS + 7)), 'disk 1 is on the replica now')
    t.notOk('included_disks' in replica(), 'every disk replicates')

    // disk 1 left out again: the replica blanks it by itself, nothing travels for it
    await w.dr1.server.replicateTo('shop2', { ...TO_DR2, disks: [0] })
    w.fromDr1.check()
    await until('the resync for disk 0 alone', () => resyncs(w.events).length === 3 && !w.fromDr1.status('shop2')[0]?.resyncing, w.clock)
    t.match(resyncs(w.events)[2], { vm: 'shop2', blocks_compared: BLOCKS, blocks_sent: 0 }, 'disk 0 is level; disk 1 is not compared')
    t.notOk((await onDr2(BLOCKS + 5)) || (await onDr2(BLOCKS + 7)), 'disk 1 is blank on the replica again')
    t.ok(await onDr2(3), 'disk 0 is kept')
    w.fromDr1.stop()

    // both servers restarted: each opens its two-disk replica or VM as it was
    for (const name of ['dr1', 'dr2']) {
      const ran: string[] = []
      const runner: ReplicaRunner = {
        run: (vm) => void ran.push(vm),
        runIsolated: () => undefined,
        stop: () => undefined,
        running: () => false,
      }
      const auth = await ReplicaServerAuthorization.open(join(w.dir, name))
      const again = new ReplicaServer(name, join(w.dir, name), 1, auth, runner)
      await again.openAll()
      t.match(again.replicaStatus('shop2'), [{ disks: 2, included_disks: name === 'dr1' ? undefined : [0] }], `${name} reopened shop2`)
      t.same(ran, name === 'dr1' ? ['shop2'] : [], name === 'dr1' ? 'its own VM starts again' : 'a replica stays a replica')
    }
  },
)
