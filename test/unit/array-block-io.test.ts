/**
 * The array's shell without processes: BlockIo refusals (nothing written, clear errors)
 * and two RemoteCopyService instances wired back to back over an in-memory link: a sync
 * write is acknowledged only once the partner has it; a group survives a restart.
 */
import t from 'tap'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { BlockIo } from '../../array-emulator/block-io.js'
import { patternData } from '../../shared/block-pattern.js'
import { FencingTable } from '../../array-emulator/fencing.js'
import { LunMasking } from '../../array-emulator/lun-masking.js'
import type { RemoteCopyService } from '../../array-emulator/remote-copy-service.js'
import { VolumeStore } from '../../array-emulator/volume-store.js'
import type { RcPeerMessage } from '../../shared/protocol/storage-messages.js'
import { openTestArray } from './remote-copy-fixture.js'

const BS = 4096

interface Side {
  name: string
  dir: string
  store: VolumeStore
  rc: RemoteCopyService
  io: BlockIo
}

async function side(
  name: string,
  dir: string,
  partner: string,
  link: { up: boolean; deliver: (to: string, m: RcPeerMessage, a?: Uint8Array) => void },
): Promise<Side> {
  const { store, rc } = await openTestArray(dir, partner, {
    send: async (to, m, a) => {
      if (!link.up) return false
      link.deliver(to, m, a)
      return true
    },
  })
  const io = new BlockIo(store, await LunMasking.open(dir), await FencingTable.open(dir), rc, undefined)
  return { name, dir, store, rc, io }
}

const settle = () => new Promise((r) => setTimeout(r, 50))

t.test('block I/O refusals write nothing and say why', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'hvlab-io-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const store = await VolumeStore.open(join(dir, 'volumes'))
  const masking = await LunMasking.open(dir)
  const io = new BlockIo(store, masking, await FencingTable.open(dir), undefined, undefined)
  await store.create('v', 16 * BS)
  await masking.present('v', 'h1')
  const w = { volume: 'v', host: 'h1', epoch: 3, block: 2, blocks: 1 }
  await t.rejects(io.write({ ...w, volume: 'nope' }, Buffer.alloc(BS, 1)), { code: 'HVLAB_E_NOT_FOUND', message: /does not exist/ })
  await t.rejects(io.write({ ...w, host: 'h2' }, Buffer.alloc(BS, 1)), { code: 'HVLAB_E_REFUSED', message: /not presented/ })
  await t.rejects(io.write(w, Buffer.alloc(BS - 1, 1)), { code: 'HVLAB_E_REFUSED', message: /4095 bytes of data for 1 blocks/ })
  await t.rejects(io.write({ ...w, block: 16 }, Buffer.alloc(BS, 1)), {
    code: 'HVLAB_E_REFUSED',
    message: /blocks 0\.\.15; nothing was written/,
  })
  t.same(await store.read('v', 0, 16), Buffer.alloc(16 * BS), 'nothing was written by any refused write')
  await io.write(w, Buffer.alloc(BS, 7))
  await t.rejects(io.write({ ...w, epoch: 2 }, Buffer.alloc(BS, 9)), { code: 'HVLAB_E_REFUSED', message: /epoch 2 .* reserved at epoch 3/ })
  t.same(await store.read('v', 2, 1), Buffer.alloc(BS, 7), 'the fenced write did not land')
  t.same((await io.digest({ volume: 'v', block: 0, blocks: 16 })).block_sha256?.length, 16, 'per-block digests')
  await store.close()
})

t.test('remote copy services back to back: sync ack waits for the partner; restart restores the group', async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'hvlab-rc-'))
  t.teardown(() => rmSync(root, { recursive: true, force: true }))
  const sides = new Map<string, Side>()
  let held: (() => void)[] | undefined // when set, messages to b wait here
  const link = {
    up: true,
    deliver: (to: string, m: RcPeerMessage, a?: Uint8Array) => {
      const go = () => sides.get(to)?.rc.peerMessage(to === 'a' ? 'b' : 'a', m, a)
      if (held && to === 'b') held.push(go)
      else setImmediate(go)
    },
  }
  const a = await side('a', join(root, 'a'), 'b', link)
  const b = await side('b', join(root, 'b'), 'a', link)
  sides.set('a', a).set('b', b)
  await b.rc.create({ group: 'g', partner: 'a', role: 'secondary', mode: 'sync' })
  await a.rc.create({ group: 'g', partner: 'b', role: 'primary', mode: 'sync' })
  a.rc.linkUp('b')
  b.rc.linkUp('a')
  await settle()
  await a.store.create('v', 8 * BS)
  await a.rc.admit('g', 'v', 'v')
  await a.rc.verb('g', 'start', false)
  for (let i = 0; i < 100 && a.rc.status('g')[0]!.volumes[0]!.state !== 'Synced'; i++) await settle()
  t.equal(a.rc.status('g')[0]!.volumes[0]!.state, 'Synced', 'initial sync done')
  t.ok(b.store.has('v'), 'the secondary volume was created on admit')

  held = []
  let acked = false
  const write = a.rc.hostWrite('g', 'v', 3, patternData('x', 3, 1, BS)).then(() => (acked = true))
  await settle()
  t.notOk(acked, 'not acknowledged while the partner has not got it')
  const release = held
  held = undefined
  for (const go of release) go()
  await write
  t.same(await b.store.read('v', 3, 1), patternData('x', 3, 1, BS), 'acknowledged: the partner has the block')
  await t.rejects(b.rc.hostWrite('g', 'v', 0, Buffer.alloc(BS)), { code: 'HVLAB_E_REFUSED', message: /read-only here/ })

  await a.rc.close()
  const a2 = await side('a', join(root, 'a'), 'b', link)
  t.equal(a2.rc.status('g')[0]!.role, 'primary', 'the group is restored from its journal')
  t.equal(a2.rc.groupOfVolume('v'), 'g')
  await a2.store.close()
  await a.store.close() // closing a closed store is a no-op; a close that fails is a failure
  await b.rc.close()
  await b.store.close()
})
