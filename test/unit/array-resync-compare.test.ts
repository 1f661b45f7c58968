/**
 * Full resync by hash comparison and resync concurrency, with two RemoteCopyService
 * instances back to back over an in-memory link (real volume files, real hash pool):
 * - a volume admitted where the secondary already holds a copy differing in k blocks
 *   sends exactly those k blocks;
 * - a synchronous primary restarted after a crash (sync writes in flight unrecorded)
 *   compares everything and sends only what differs (nothing, when all was acked);
 * - with a resync limit of 1 group per array, two groups never resync at once, and both
 *   finish.
 */
import t from 'tap'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { BlockHashPool } from '../../array-emulator/block-hash-pool.js'
import { patternData } from '../../shared/block-pattern.js'
import type { RemoteCopyService } from '../../array-emulator/remote-copy-service.js'
import type { VolumeStore } from '../../array-emulator/volume-store.js'
import type { MessageOf } from '../../shared/protocol/messages.js'
import type { RcPeerMessage } from '../../shared/protocol/storage-messages.js'
import { openTestArray } from './remote-copy-fixture.js'

const BS = 4096

interface Side {
  name: string
  store: VolumeStore
  rc: RemoteCopyService
  /** Bytes of block data this side sent in rc-blocks. */
  sent_bytes: number
  /** Blocks compared and not sent. */
  skipped_blocks: number
  /** Most groups seen resyncing at once on this side, and waiting for their turn. */
  max_running: number
  max_queued: number
  /** Most groups seen Syncing at once (from their status, not the limiter's count). */
  max_syncing: number
}

interface Link {
  up: boolean
  sides: Map<string, Side>
  pool?: BlockHashPool
}

async function side(name: string, dir: string, partner: string, link: Link, resync_groups_max?: number): Promise<Side> {
  // the link's callbacks use `s`; they run only once the array is open
  const s: Side = {
    name,
    store: undefined as unknown as VolumeStore,
    rc: undefined as unknown as RemoteCopyService,
    sent_bytes: 0,
    skipped_blocks: 0,
    max_running: 0,
    max_queued: 0,
    max_syncing: 0,
  }
  Object.assign(
    s,
    await openTestArray(dir, partner, {
      send: async (to, m: RcPeerMessage, a) => {
        if (!link.up) return false
        setImmediate(() => {
          link.sides.get(to)?.rc.peerMessage(name, m, a)
          const { running, queued } = s.rc.resyncConcurrency()
          s.max_running = Math.max(s.max_running, running)
          s.max_queued = Math.max(s.max_queued, queued)
          const syncing = s.rc.status().filter((g) => g.volumes.some((v) => v.state === 'Syncing')).length
          s.max_syncing = Math.max(s.max_syncing, syncing)
        })
        return true
      },
      requestHashes: async (to, m: MessageOf<'rc-hash-request'>) => (link.up ? link.sides.get(to)?.rc.hashRequest(name, m) : undefined),
      ...(link.pool ? { hashBlocks: (data: Uint8Array, bs: number) => link.pool!.hash(data, bs) } : {}),
      onResyncBytes: (n) => (s.sent_bytes += n),
      onResyncBlocksSkipped: (n) => (s.skipped_blocks += n),
      ...(resync_groups_max === undefined ? {} : { resync_groups_max }),
    }),
  )
  link.sides.set(name, s)
  return s
}

const settle = () => new Promise((r) => setTimeout(r, 20))

async function until(what: string, ok: () => boolean): Promise<void> {
  const deadline = Date.now() + 90_000 // generous: worker threads start slowly on a loaded machine
  while (Date.now() < deadline) {
    if (ok()) return
    await settle()
  }
  throw new Error(`timed out waiting for ${what}`)
}

async function pair(
  t: { teardown(fn: () => unknown): void },
  options: { pool?: boolean; resync_groups_max?: number } = {},
): Promise<{ a: Side; b: Side; link: Link; root: string }> {
  const root = mkdtempSync(join(tmpdir(), 'hvlab-cmp-'))
  const link: Link = { up: true, sides: new Map() }
  if (options.pool) link.pool = new BlockHashPool({ threads: 2, idle_timeout_ms: 1000 })
  const a = await side('a', join(root, 'a'), 'b', link, options.resync_groups_max)
  const b = await side('b', join(root, 'b'), 'a', link, options.resync_groups_max)
  t.teardown(async () => {
    for (const s of link.sides.values()) {
      // Closing twice (the test may have closed one already, as a kill -9) is a no-op; a close that fails is a failure.
      await s.rc.close()
      await s.store.close()
    }
    await link.pool?.close()
    rmSync(root, { recursive: true, force: true })
  })
  a.rc.linkUp('b')
  b.rc.linkUp('a')
  return { a, b, link, root }
}

async function group(a: Side, b: Side, name: string, mode: 'sync' | 'periodic' = 'sync'): Promise<void> {
  await b.rc.create({ group: name, partner: 'a', role: 'secondary', mode })
  await a.rc.create({ group: name, partner: 'b', role: 'primary', mode })
  await until(`${name} linked`, () => a.rc.status(name)[0]!.link_up && b.rc.status(name)[0]!.link_up)
  for (let i = 0; i < 3; i++) await settle() // the hellos cross
}

const synced = (s: Side, g: string) => () =>
  s.rc.status(g)[0]!.volumes.every((v) => v.state === 'Synced') && s.rc.status(g)[0]!.bytes_behind === 0

t.test('a volume admitted onto a secondary that already holds a copy: exactly the k differing blocks are sent', async (t) => {
  const { a, b } = await pair(t, { pool: true })
  const BLOCKS = 300 // more than one batch
  const differ = [0, 7, 63, 64, 65, 150, 299]
  for (const s of [a, b]) {
    await s.store.create('v', BLOCKS * BS)
    await s.store.write('v', 0, patternData('same', 0, 256, BS))
    await s.store.write('v', 256, patternData('same', 256, BLOCKS - 256, BS))
  }
  for (const blk of differ) await b.store.write('v', blk, patternData('stale', blk, 1, BS))
  await group(a, b, 'g')
  await a.rc.admit('g', 'v', 'v')
  await a.rc.verb('g', 'start', false)
  await until('Synced', synced(a, 'g'))
  t.equal(a.sent_bytes, differ.length * BS, `exactly ${differ.length} blocks were sent`)
  t.equal(a.rc.status('g')[0]!.bytes_resynced_total, differ.length * BS, 'the group counts only what was sent')
  t.equal(a.skipped_blocks, BLOCKS - differ.length, 'every other block was compared and skipped')
  t.same(await b.store.read('v', 0, 256), await a.store.read('v', 0, 256), 'copies identical (0..255)')
  t.same(await b.store.read('v', 256, BLOCKS - 256), await a.store.read('v', 256, BLOCKS - 256), 'copies identical (256..)')

  // after the full compare, ordinary changes are sent without comparing
  await a.rc.hostWrite('g', 'v', 5, patternData('new', 5, 1, BS))
  t.same(await b.store.read('v', 5, 1), patternData('new', 5, 1, BS), 'a sync write reaches the partner')
  t.equal(a.sent_bytes, differ.length * BS, 'no resync for a replicated write')
})

t.test('an empty secondary gets every non-zero block, and no zero block', async (t) => {
  const { a, b } = await pair(t)
  await a.store.create('v', 64 * BS)
  const written = [1, 2, 3, 40]
  for (const blk of written) await a.store.write('v', blk, patternData('data', blk, 1, BS))
  await group(a, b, 'g')
  await a.rc.admit('g', 'v', 'v')
  await a.rc.verb('g', 'start', false)
  await until('Synced', synced(a, 'g'))
  t.equal(a.sent_bytes, written.length * BS, 'only the blocks that are not zeros on both sides')
  t.same(await b.store.read('v', 0, 64), await a.store.read('v', 0, 64), 'copies identical')
})

/** A pair with sync group g over a 32-block volume v, Synced, and one replicated write (block 4). */
async function syncedPrimaryWithOneWrite(t: { teardown(fn: () => unknown): void }): ReturnType<typeof pair> {
  const p = await pair(t)
  await p.a.store.create('v', 32 * BS)
  await group(p.a, p.b, 'g')
  await p.a.rc.admit('g', 'v', 'v')
  await p.a.rc.verb('g', 'start', false)
  await until('Synced', synced(p.a, 'g'))
  await p.a.rc.hostWrite('g', 'v', 4, patternData('one', 4, 1, BS))
  return p
}

t.test('a sync primary restarted resyncs in full by comparison: only differing blocks move', async (t) => {
  const { a, b, link, root } = await syncedPrimaryWithOneWrite(t)
  const before = a.sent_bytes
  // crash-like restart of a: close and reopen from its dirs, then the link comes back
  await a.rc.close()
  await a.store.close()
  link.up = false
  b.rc.linkDown('a')
  // while a was down, b's copy of block 9 changed behind its back (a lost unacknowledged sync write, say)
  await b.store.write('v', 9, patternData('odd', 9, 1, BS))
  const a2 = await side('a', join(root, 'a'), 'b', link)
  t.equal(a2.rc.status('g')[0]!.bytes_behind, 32 * BS, 'the restarted sync primary must check every block')
  link.up = true
  a2.rc.linkUp('b')
  b.rc.linkUp('a')
  await until('Synced after restart', synced(a2, 'g'))
  t.equal(a2.sent_bytes, BS, 'only the one differing block was sent')
  t.equal(a.sent_bytes, before, '(the old instance sent nothing more)')
  t.same(await b.store.read('v', 0, 32), await a2.store.read('v', 0, 32), 'copies identical')
})

t.test('a sync primary stopped cleanly resumes with nothing to check; a crash after that restart is a crash again', async (t) => {
  const { a, b, link, root } = await syncedPrimaryWithOneWrite(t)
  // a clean stop: the links go down first (no host I/O), then the service shuts down
  link.up = false
  a.rc.linkDown('b')
  b.rc.linkDown('a')
  await a.rc.hostWrite('g', 'v', 6, patternData('two', 6, 1, BS)) // acknowledged locally; the partner lacks it
  await a.rc.shutdown()
  await a.store.close()
  await t.rejects(a.rc.hostWrite('g', 'v', 7, patternData('late', 7, 1, BS)), { code: 'HVLAB_E_CLOSED' }, 'no input after the shutdown')
  const a2 = await side('a', join(root, 'a'), 'b', link)
  t.equal(a2.rc.status('g')[0]!.bytes_behind, BS, 'after a clean stop only the block the partner lacks is behind, not every block')
  link.up = true
  a2.rc.linkUp('b')
  b.rc.linkUp('a')
  await until('Synced after the clean restart', synced(a2, 'g'))
  t.same(await b.store.read('v', 0, 32), await a2.store.read('v', 0, 32), 'copies identical')

  // the clean mark counted once: a crash of this instance (close without shutdown) is a crash
  await a2.rc.close()
  await a2.store.close()
  link.up = false
  b.rc.linkDown('a')
  const a3 = await side('a', join(root, 'a'), 'b', link)
  t.equal(a3.rc.status('g')[0]!.bytes_behind, 32 * BS, 'after a crash every block is checked again')
})

t.test('a hash request is checked: wrong partner, unknown volume, block past the end, not a target', async (t) => {
  const { a, b } = await pair(t)
  await a.store.create('v', 8 * BS)
  await group(a, b, 'g')
  await a.rc.admit('g', 'v', 'v')
  const req = (over: Partial<MessageOf<'rc-hash-request'>>): MessageOf<'rc-hash-request'> => ({
    t: 'rc-hash-request',
    group: 'g',
    cycle: 1,
    volume: 'v',
    block_list: [0],
    ...over,
  })
  await until('secondary has the volume', () => b.rc.groupOfVolume('v') === 'g')
  await t.rejects(b.rc.hashRequest('zz', req({})), { code: 'HVLAB_E_REFUSED', message: /its partner is a/ })
  await t.rejects(b.rc.hashRequest('a', req({ volume: 'nope' })), { code: 'HVLAB_E_NOT_FOUND' })
  await t.rejects(b.rc.hashRequest('a', req({ block_list: [8] })), { code: 'HVLAB_E_PROTOCOL', message: /block 8 past the end/ })
  await t.rejects(b.rc.hashRequest('a', req({ group: 'none' })), { code: 'HVLAB_E_NOT_FOUND' })
  await t.rejects(a.rc.hashRequest('b', req({})), { code: 'HVLAB_E_STATE', message: /not a replication target/ })
  t.equal((await b.rc.hashRequest('a', req({ block_list: [0, 1, 2] }))).length, 3 * 32, '32 bytes per block')
})

t.test('resync concurrency across groups: at the limit of 1, two groups take turns and both finish', async (t) => {
  const { a, b } = await pair(t, { resync_groups_max: 1 })
  for (const g of ['g1', 'g2', 'g3']) {
    await a.store.create(`v-${g}`, 600 * BS)
    for (let blk = 0; blk < 600; blk += 3) await a.store.write(`v-${g}`, blk, patternData(g, blk, 1, BS))
    await group(a, b, g)
    await a.rc.admit(g, `v-${g}`, `v-${g}`)
  }
  t.equal(a.rc.resyncConcurrency().groups_max, 1)
  for (const g of ['g1', 'g2', 'g3']) await a.rc.verb(g, 'start', false)
  await until('all Synced', () => ['g1', 'g2', 'g3'].every((g) => synced(a, g)()))
  t.equal(a.max_running, 1, 'never more than one resync permit held at once')
  t.equal(a.max_syncing, 1, 'never more than one group Syncing at once')
  t.ok(a.max_queued >= 1, `groups waited their turn (up to ${a.max_queued} queued)`)
  t.same(a.rc.resyncConcurrency(), { running: 0, queued: 0, groups_max: 1 }, 'every permit given back')
  for (const g of ['g1', 'g2', 'g3']) t.same(await b.store.read(`v-${g}`, 0, 256), await a.store.read(`v-${g}`, 0, 256), `${g} copied`)
})
