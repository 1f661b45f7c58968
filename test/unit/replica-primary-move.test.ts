/**
 * Replica follows a VM through a move (agent/replica/primary-handover.ts): one replica
 * server, the primary shells of the host the VM leaves and of the one it moved to, over
 * in-memory links that check every message against its schema, on a manual clock, writing
 * one disk (the cluster's shared storage). After a clean end the new primary goes on at the
 * next cycle with every write since the VM resumed there and no resync, and the replica's
 * durable disk stays the VM's; a new primary that begins first waits for that end. Without
 * one (the last changes abandoned, a host in between, a start after a crash) it resyncs, and
 * the old primary's late end is refused. The new host logs the VM's first write there even
 * before its periodic check has given the VM a shell.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { Link } from './replica-link-fixture.js'
import { ManualClock } from '../../shared/clock.js'
import type { ReplicationSetting } from '../../shared/protocol/replica-messages.js'
import type { ReplicaEvent } from '../../shared/timeline/replica-events.js'
import type { PrimaryDisk } from '../../agent/replica/primary-resync.js'
import { ReplicaServerAuthorization } from '../../agent/replica/replica-server-settings.js'
import { ReplicaServer } from '../../agent/replica/replica-server.js'
import { ReplicationHost } from '../../agent/replica/replication-host.js'
import { PREVIOUS_PRIMARY_WAIT_MS, ReplicationShell } from '../../agent/replica/replication-shell.js'
import { encodeDiskWrite } from '../../agent/vm/disk-write-record.js'
import type { PeerConnection } from '../../shared/transport/peer-connection.js'

const BS = 512
const BLOCKS = 64
const F = 30_000
const SETTING: ReplicationSetting = { to: 'dr1', frequency_ms: F, recovery_points: 0, compress: false }

const flush = async (): Promise<void> => {
  for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r))
}

/** Waits (real time: the replica server writes real files) until `ok()`, or fails saying what did not happen. */
async function until(what: string, ok: () => boolean): Promise<void> {
  for (let i = 0; i < 500 && !ok(); i++) await new Promise((r) => setTimeout(r, 10))
  if (!ok()) throw new Error(`${what} did not happen`)
}

async function world(t: { teardown(fn: () => unknown): void }) {
  const dir = mkdtempSync(join(tmpdir(), 'hvlab-replica-move-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const clock = new ManualClock(1_000_000)
  const events: (ReplicaEvent & { host: string })[] = []
  const runner = { run: () => undefined, runIsolated: () => undefined, stop: () => undefined, running: () => false }
  const server = new ReplicaServer('dr1', dir, 1, await ReplicaServerAuthorization.open(dir), runner)
  await server.auth.enable(true, [])
  const links = new Map<string, Link>()
  const bytes = new Uint8Array(BS * BLOCKS)
  const disk: PrimaryDisk = { block_size_bytes: BS, blocks: BLOCKS, read: async (first, n) => bytes.slice(first * BS, (first + n) * BS) }
  /** The primary shell of the VM on `host`, after its `moves`-th move (0: started there). */
  const shell = (host: string, moves: number) => {
    const link = new Link(host)
    server.servePrimary(link as unknown as PeerConnection, clock)
    links.set(host, link)
    return new ReplicationShell({
      vm: 'web1',
      host,
      setting: SETTING,
      memory_mib: 64,
      writesInFlight: () => 0,
      moves,
      clock,
      time_scale: 1,
      server: () => links.get(host),
      disk,
      emit: (e) => events.push({ ...e, host }),
    })
  }
  /** The VM writes `v` into `block` on the disk, and the shell running it logs it. */
  const write = (on: ReplicationShell, block: number, v: number) => {
    const data = new Uint8Array(BS).fill(v)
    bytes.set(data, block * BS)
    on.write(block, data)
  }
  /** A host's primary side as it runs it: web1 runs there while `runs.here`, after its `runs.moves`-th move. */
  const host = (name: string, runs = { here: true, moves: 1 }) => {
    const link = new Link(name)
    server.servePrimary(link as unknown as PeerConnection, clock)
    return new ReplicationHost({
      host: name,
      clock,
      time_scale: 1,
      running: () => (runs.here ? ['web1'] : []),
      settingOf: () => SETTING,
      memoryOf: () => 64,
      diskOf: () => disk,
      movesOf: () => runs.moves,
      server: () => link,
      emit: (e) => events.push({ ...e, host: name }),
    })
  }
  return {
    clock,
    events,
    server,
    shell,
    host,
    write,
    image: () => new Uint8Array(readFileSync(join(dir, 'vms', 'web1', 'disk.img'))),
    bytes,
    of: (host: string, kind: ReplicaEvent['kind']) => events.filter((e) => e.host === host && e.kind === kind).map((e) => e.details),
    async advance(ms: number) {
      for (let done = 0; done < ms; done += 250) {
        clock.advance(Math.min(250, ms - done))
        await flush()
      }
    },
  }
}

/** web1 replicating from host-a1 (moved there `moves` times), its initial replication done and a cycle applied. */
async function replicating(t: { teardown(fn: () => unknown): void }, moves = 0) {
  const w = await world(t)
  const a1 = w.shell('host-a1', moves)
  a1.start()
  await until('the initial replication', () => w.of('host-a1', 'replica.resynced').length === 1 && !a1.status().resyncing)
  w.write(a1, 1, 1)
  await w.advance(F)
  await until('a cycle from host-a1', () => a1.status().cycles_applied === 1)
  return { ...w, a1 }
}

/** web1 leaves host-a1 (live migration): its last write, then its shell sends what is left and ends (as the host's check does). */
async function leaves(w: Awaited<ReturnType<typeof replicating>>) {
  w.write(w.a1, 2, 2)
  w.a1.finish()
  await until("host-a1's last changes applied", () => w.a1.finished === 'sent')
  w.a1.end()
  await flush()
}

t.test('a live migration after a clean end: the new primary goes on at the next cycle, no resync, nothing missed', async (t) => {
  const w = await replicating(t)
  await leaves(w)
  const last = w.server.status('web1').replicas[0]!.applied_cycle
  const a2 = w.shell('host-a2', 1)
  w.write(a2, 3, 3) // the VM resumed on host-a2 and wrote before its shell began
  a2.start()
  await until('host-a2 to go on from host-a1', () => a2.status().continued_from !== null)
  w.write(a2, 4, 4)
  await w.advance(F)
  await until('a cycle from host-a2', () => a2.status().cycles_applied === 1)
  t.same(w.of('host-a2', 'replica.resync-needed'), [], 'no resync on host-a2')
  t.same(w.of('host-a2', 'replica.resynced'), [])
  t.same(w.of('host-a2', 'replica.primary-moved'), [{ vm: 'web1', from: 'host-a1', to: 'host-a2', cycle: last }])
  t.match(a2.status(), { continued_from: { host: 'host-a1', cycle: last }, resyncing: false, health: 'Normal' })
  t.match(
    w.server.status('web1').replicas[0],
    { from: 'host-a2', applied_cycle: last + 1 },
    "host-a2's first cycle is the one after host-a1's last",
  )
  t.same(w.image(), w.bytes, "the replica's durable disk is the VM's, every write since it resumed on host-a2 included")

  // and back to host-a1, which begins before host-a2 has ended: it waits for host-a2's end, not host-a1's own of before
  const back = w.shell('host-a1', 2)
  w.write(back, 5, 5)
  back.start()
  await w.advance(1_000)
  t.match(back.status(), { continued_from: null }, 'it waits for host-a2')
  w.write(a2, 6, 6)
  a2.finish()
  await until("host-a2's last changes applied", () => a2.finished === 'sent')
  await w.advance(500)
  await until('host-a1 to go on from host-a2', () => back.status().continued_from !== null)
  t.match(back.status(), { continued_from: { host: 'host-a2', cycle: last + 2 } }, "host-a2's last cycle was its flush")
  await w.advance(F)
  await until('a cycle from host-a1 again', () => back.status().cycles_applied === 1)
  t.same(w.of('host-a1', 'replica.primary-moved'), [{ vm: 'web1', from: 'host-a2', to: 'host-a1', cycle: last + 2 }])
  t.equal(w.of('host-a1', 'replica.resync-needed').length, 1, 'only the initial replication ever resynced')
  t.same(w.image(), w.bytes, 'equal again')
})

t.test('a primary that ended sends no more cycles, though its timer was set and the host has not yet dropped it', async (t) => {
  const w = await replicating(t)
  await leaves(w)
  const last = w.server.status('web1').replicas[0]!.applied_cycle
  await w.advance(F) // host-a1's cycle timer was due: an empty cycle after its end would undo the end
  t.equal(w.server.status('web1').replicas[0]!.applied_cycle, last, 'no cycle from host-a1 after its end')
  const a2 = w.shell('host-a2', 1)
  a2.start()
  await until('host-a2 to go on from host-a1', () => a2.status().continued_from !== null)
  t.same(w.of('host-a2', 'replica.resync-needed'), [], 'no resync on host-a2')
})

t.test('a new primary that begins before the old one ended waits for its end, then goes on', async (t) => {
  const w = await replicating(t, 2)
  const a2 = w.shell('host-a2', 3)
  w.write(a2, 3, 3)
  a2.start()
  await w.advance(1_000)
  t.match(a2.status(), { cycles_applied: 0, continued_from: null }, 'it waits: host-a1 has not ended')
  t.match(w.server.status('web1').replicas[0], { from: 'host-a1' }, 'and leaves the replica to it meanwhile')
  await leaves(w)
  await w.advance(500)
  await until('host-a2 to go on from host-a1', () => a2.status().continued_from?.host === 'host-a1')
  await w.advance(F)
  await until('a cycle from host-a2', () => a2.status().cycles_applied === 1)
  t.same(w.of('host-a2', 'replica.resync-needed'), [])
  t.same(w.image(), w.bytes)
})

t.test('no clean end (the last changes abandoned): the new primary resyncs once its wait is over; a late end is refused', async (t) => {
  const w = await replicating(t)
  w.write(w.a1, 2, 2) // never sent: host-a1 is cut off
  const a2 = w.shell('host-a2', 1)
  w.write(a2, 3, 3)
  a2.start()
  await w.advance(PREVIOUS_PRIMARY_WAIT_MS - 1_000)
  t.same(w.of('host-a2', 'replica.resync-needed'), [], 'it waits while it may')
  await w.advance(2_000)
  await until('a resync by host-a2', () => w.of('host-a2', 'replica.resynced').length === 1)
  t.match(w.of('host-a2', 'replica.resync-needed'), [{ why: 'initial' }])
  t.same(w.of('host-a2', 'replica.primary-moved'), [])
  t.match(a2.status(), { continued_from: null })
  w.a1.finish()
  await flush()
  t.equal(w.a1.finished, 'abandoned', "host-a1's last changes are refused: host-a2 replicates the VM now")
  t.same(w.image(), w.bytes, 'the resync made the replica the VM disk')
})

t.test('a clean end of another move, or a VM started afresh, is a resync', async (t) => {
  for (const [moves, why] of [
    [2, 'a host ran the VM in between (its moves skip one)'],
    [0, 'a failover after a crash starts the VM afresh'],
  ] as const) {
    const w = await replicating(t)
    await leaves(w)
    const a2 = w.shell('host-a2', moves)
    w.write(a2, 3, 3)
    a2.start()
    await until(`a resync by host-a2: ${why}`, () => w.of('host-a2', 'replica.resynced').length === 1)
    t.same(w.of('host-a2', 'replica.primary-moved'), [], why)
    await w.advance(F)
    await until('a cycle from host-a2', () => a2.status().cycles_applied === 1)
    t.same(w.image(), w.bytes, `${why}: the replica is the VM's disk`)
  }
})

t.test("the new host logs the VM's writes from the first, before its periodic check", async (t) => {
  const w = await replicating(t)
  await leaves(w)
  const a2 = w.host('host-a2')
  const bytes = encodeDiskWrite({ vm: 'web1', seq: 9, epoch: 1, block: 7, value: 77 }, BS)
  w.bytes.set(bytes, 7 * BS) // the VM resumed on host-a2 and wrote block 7 at once
  a2.completed({ vm: 'web1', seq: 9, epoch: 1, block: 7, value: 77 }, 'acked')
  a2.start()
  t.teardown(() => a2.stop())
  await until('host-a2 to go on from host-a1', () => a2.status('web1')[0]?.continued_from !== null)
  await w.advance(F)
  await until('a cycle from host-a2', () => a2.status('web1')[0]?.cycles_applied === 1)
  t.same(w.of('host-a2', 'replica.resync-needed'), [], 'no resync')
  t.same(w.image(), w.bytes, "its first write there is on the replica: the host's first write made the shell")
})

t.test('a VM back on a host whose shell of its last run there still sends what that left: its writes go to a new shell', async (t) => {
  const w = await world(t)
  const runs = { here: true, moves: 0 }
  const a1 = w.host('host-a1', runs)
  const write = (seq: number, block: number) => ({ vm: 'web1', seq, epoch: 1, block, value: seq })
  a1.issued(write(1, 3)) // a write that will not complete soon: the shell of this run cannot finish
  a1.completed(write(2, 4), 'acked')
  a1.start()
  t.teardown(() => a1.stop())
  await until('web1 begun on host-a1', () => a1.status('web1')[0]?.resyncing === false)
  runs.here = false // it leaves
  a1.check()
  t.match(a1.status('web1'), [{ stopped: true, finished: null }], 'its last run here still has a write in flight')
  Object.assign(runs, { here: true, moves: 2 }) // and comes back by migration before that ended
  a1.completed(write(3, 5), 'acked')
  t.match(a1.status('web1'), [{ stopped: false, pending_bytes: BS }], "the new run's write is in a new shell's log, not the old one's")
})
