/**
 * Two RemoteCopyService instances back to back over an in-memory link (real volume and
 * journal files): a synchronous primary closed as a kill -9 leaves it and reopened from
 * its dirs, while its secondary stayed up (and had applied every earlier write), takes
 * its next write synchronously — acknowledged, and on the secondary; and host writes
 * beyond the group's input bound are refused with HVLAB_E_BACKPRESSURE; a synchronous write
 * whose local write fails (a failed fsync) is refused, and the copies converge once the
 * disk is healthy again.
 */
import t from 'tap'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { patternData } from '../../shared/block-pattern.js'
import type { RemoteCopyService, RemoteCopyServiceOptions } from '../../array-emulator/remote-copy-service.js'
import type { VolumeStore } from '../../array-emulator/volume-store.js'
import type { RcPeerMessage } from '../../shared/protocol/storage-messages.js'
import { openTestArray } from './remote-copy-fixture.js'

const BS = 4096
const BLOCKS = 32

interface Side {
  store: VolumeStore
  rc: RemoteCopyService
}

interface Link {
  up: boolean
  sides: Map<string, Side>
}

type Extra = Partial<Omit<RemoteCopyServiceOptions, 'dir' | 'store' | 'partners' | 'send'>>

async function side(name: string, dir: string, partner: string, link: Link, extra: Extra = {}): Promise<Side> {
  const s = await openTestArray(dir, partner, {
    send: async (to, m: RcPeerMessage, a) => {
      if (!link.up) return false
      setImmediate(() => link.sides.get(to)?.rc.peerMessage(name, m, a))
      return true
    },
    ...extra,
  })
  link.sides.set(name, s)
  return s
}

async function until(what: string, ok: () => boolean): Promise<void> {
  const deadline = Date.now() + 60_000
  while (Date.now() < deadline) {
    if (ok()) return
    await new Promise((r) => setTimeout(r, 10))
  }
  throw new Error(`timed out waiting for ${what}`)
}

/** Resolves `p`, or rejects once `what` has waited past a generous deadline (a failure, not a measured time). */
function orFailAfter<T>(p: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const deadline = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: no answer (it hangs)`)), 20_000)))
  return Promise.race([p, deadline]).finally(() => clearTimeout(timer))
}

const synced = (s: Side) => () => {
  const g = s.rc.status('g')[0]!
  return g.partner_role !== undefined && g.bytes_behind === 0 && g.volumes.every((v) => v.state === 'Synced')
}

/** A pair with sync group g (a → b) over volume v, Synced. */
async function syncedPair(
  t: { teardown(fn: () => unknown): void },
  extra: Extra = {},
): Promise<{ a: Side; b: Side; link: Link; root: string }> {
  const root = mkdtempSync(join(tmpdir(), 'hvlab-rcr-'))
  const link: Link = { up: true, sides: new Map() }
  const a = await side('a', join(root, 'a'), 'b', link, extra)
  const b = await side('b', join(root, 'b'), 'a', link, extra)
  t.teardown(async () => {
    for (const s of link.sides.values()) {
      // Closing twice (the test may have closed one already, as a kill -9) is a no-op; a close that fails is a failure.
      await s.rc.close()
      await s.store.close()
    }
    rmSync(root, { recursive: true, force: true })
  })
  a.rc.linkUp('b')
  b.rc.linkUp('a')
  await a.store.create('v', BLOCKS * BS)
  await b.rc.create({ group: 'g', partner: 'a', role: 'secondary', mode: 'sync' })
  await a.rc.create({ group: 'g', partner: 'b', role: 'primary', mode: 'sync' })
  await until('g linked', () => a.rc.status('g')[0]!.partner_role === 'secondary')
  await a.rc.admit('g', 'v', 'v')
  await a.rc.verb('g', 'start', false)
  await until('Synced', synced(a))
  return { a, b, link, root }
}

t.test(
  'a sync primary reopened after a crash, its secondary up all along: the next write is acknowledged and reaches the secondary',
  async (t) => {
    const { a, b, link, root } = await syncedPair(t)
    for (let i = 0; i < 60; i++) await a.rc.hostWrite('g', 'v', i % BLOCKS, patternData(`w${i}`, i % BLOCKS, 1, BS))
    // kill -9 of a: nothing more from it; b sees the link drop. a restarts from its dirs.
    await a.rc.close()
    await a.store.close()
    link.up = false
    b.rc.linkDown('a')
    const a2 = await side('a', join(root, 'a'), 'b', link)
    link.up = true
    a2.rc.linkUp('b')
    b.rc.linkUp('a')
    await until('Synced after the restart', synced(a2))
    await orFailAfter(a2.rc.hostWrite('g', 'v', 7, patternData('after', 7, 1, BS)), 'the first write after the restart')
    t.pass('the first write after the restart is acknowledged')
    t.same(await b.store.read('v', 7, 1), patternData('after', 7, 1, BS), 'the secondary has it')
    t.same(await b.store.read('v', 0, BLOCKS), await a2.store.read('v', 0, BLOCKS), 'copies identical')
    t.equal(a2.rc.status('g')[0]!.link_failures_total, 0, 'no write was refused on the way')
  },
)

t.test(
  'host writes beyond rc_group_inputs_queued_max are refused with HVLAB_E_BACKPRESSURE; the accepted ones are acknowledged',
  async (t) => {
    const { a, b } = await syncedPair(t, { inputs_queued_max: 4 })
    const writes = Array.from({ length: 5 }, (_, i) => a.rc.hostWrite('g', 'v', i, patternData('burst', i, 1, BS)))
    await t.rejects(writes[4]!, { code: 'HVLAB_E_BACKPRESSURE', message: /inputs from hosts and the operator waiting/ })
    await orFailAfter(Promise.all(writes.slice(0, 4)), 'the accepted writes')
    t.pass('the four accepted writes are acknowledged')
    t.same(await b.store.read('v', 0, 4), patternData('burst', 0, 4, BS), 'and replicated')
    t.same(await a.store.read('v', 4, 1), Buffer.alloc(BS), 'the refused write was not written on the primary')
    t.same(await b.store.read('v', 4, 1), Buffer.alloc(BS), 'nor on the secondary')
    await orFailAfter(a.rc.hostWrite('g', 'v', 4, patternData('later', 4, 1, BS)), 'a write below the bound')
    t.pass('below the bound again, a write is accepted')
  },
)

t.test(
  "a synchronous write whose primary's local write fails is refused, not acknowledged, and the copies converge once the disk is healthy",
  async (t) => {
    const { a, b } = await syncedPair(t)
    await a.rc.hostWrite('g', 'v', 3, patternData('before', 3, 1, BS))
    a.store.setDiskFaults({ fsync_delay_ms: 0, fsync_fails: true, full: false })
    await t.rejects(
      a.rc.hostWrite('g', 'v', 5, patternData('failing', 5, 1, BS)),
      { code: 'HVLAB_E_REFUSED', detail: 'HVLAB_E_DISK_IO' },
      'refused, never acknowledged',
    )
    a.store.setDiskFaults({ fsync_delay_ms: 0, fsync_fails: false, full: false })
    await orFailAfter(a.rc.hostWrite('g', 'v', 6, patternData('after', 6, 1, BS)), 'a write on the healthy disk')
    await until('Synced again', synced(a))
    t.same(await b.store.read('v', 0, BLOCKS), await a.store.read('v', 0, BLOCKS), 'copies identical, block 5 included')
    t.same(await b.store.read('v', 3, 1), patternData('before', 3, 1, BS), 'the acknowledged write before the fault is on both')
    t.same(await b.store.read('v', 6, 1), patternData('after', 6, 1, BS), 'and the one after it')
  },
)
