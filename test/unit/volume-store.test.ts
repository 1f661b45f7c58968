import t from 'tap'
import { mkdtemp, rm, readdir, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { NO_DISK_FAULTS, VolumeStore } from '../../array-emulator/volume-store.js'
import { REGION_BLOCKS, WrittenRegions } from '../../array-emulator/written-regions.js'

const BS = 4096

async function tempDir(t: { teardown(fn: () => unknown): void }): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'hvlab-vol-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  return dir
}

const filled = (blocks: number, byte: number): Buffer => Buffer.alloc(blocks * BS, byte)

t.test('create, write, read back; never-written blocks read as zeros', async (t) => {
  const store = await VolumeStore.open(await tempDir(t))
  t.teardown(() => store.close())
  const info = await store.create('vm1-os', 16 * BS)
  t.same(info, { volume: 'vm1-os', block_count: 16, size_bytes: 16 * BS })
  await store.write('vm1-os', 3, filled(2, 0xab))
  t.same(await store.read('vm1-os', 3, 2), filled(2, 0xab))
  t.same(await store.read('vm1-os', 0, 3), filled(3, 0))
  t.same(await store.read('vm1-os', 15, 1), filled(1, 0))
})

t.test('WrittenRegions: a region counts from its first write; unknown counts all; growing adds unwritten regions', async (t) => {
  const r = WrittenRegions.empty(3 * REGION_BLOCKS)
  t.notOk(r.anyWritten(0, 3 * REGION_BLOCKS), 'a new volume: nothing written')
  r.markWritten(REGION_BLOCKS - 1, 2) // the last block of region 0 and the first of region 1
  t.ok(r.anyWritten(0, 1), 'region 0')
  t.ok(r.anyWritten(REGION_BLOCKS + 5, 1), 'region 1')
  t.notOk(r.anyWritten(2 * REGION_BLOCKS, REGION_BLOCKS), 'region 2 untouched')
  t.ok(r.anyWritten(REGION_BLOCKS + 10, REGION_BLOCKS), 'a range that reaches into a written region')
  r.grow(5 * REGION_BLOCKS)
  t.ok(r.anyWritten(0, 1), 'growing keeps what was written')
  t.notOk(r.anyWritten(3 * REGION_BLOCKS, 2 * REGION_BLOCKS), 'the new regions are unwritten')
  const unknown = WrittenRegions.unknown()
  unknown.markWritten(0, 1)
  unknown.grow(10 * REGION_BLOCKS)
  t.ok(unknown.anyWritten(9 * REGION_BLOCKS, 1), 'a volume opened from disk counts as written throughout')
})

t.test('regions never written through the store read as zeros without the file; a reopened volume reads its file', async (t) => {
  const dir = await tempDir(t)
  const a = await VolumeStore.open(dir)
  await a.create('thin', 2 * REGION_BLOCKS * BS)
  // Bytes that reach the file behind the store's back show only where the store reads the file.
  await writeFile(join(dir, 'thin.vol'), filled(1, 0x5a), { flag: 'r+' })
  t.same(await a.read('thin', 0, 1), filled(1, 0), 'region 0 was never written: zeros, the file untouched')
  await a.write('thin', 1, filled(1, 0xab))
  t.same(await a.read('thin', 0, 2), Buffer.concat([filled(1, 0x5a), filled(1, 0xab)]), 'written: read from the file')
  t.same(await a.read('thin', REGION_BLOCKS, 1), filled(1, 0), 'region 1: zeros')
  await a.close()
  const b = await VolumeStore.open(dir)
  t.teardown(() => b.close())
  await writeFile(join(dir, 'thin.vol'), filled(1, 0x77), { flag: 'r+' })
  t.same(await b.read('thin', 0, 1), filled(1, 0x77), 'after a reopen every region is read from the file')
  await b.grow('thin', 3 * REGION_BLOCKS * BS)
  t.same(await b.read('thin', 2 * REGION_BLOCKS, 1), filled(1, 0))
})

t.test(
  'disk faults: a full disk refuses before writing, a failing fsync refuses the writes that waited on it, a slow one delays them',
  async (t) => {
    const store = await VolumeStore.open(await tempDir(t))
    t.teardown(() => store.close())
    await store.create('v', 8 * BS)
    store.setDiskFaults({ ...NO_DISK_FAULTS, full: true })
    await t.rejects(store.write('v', 0, filled(1, 1)), { code: 'HVLAB_E_REFUSED', detail: 'HVLAB_E_DISK_FULL', message: /disk is full/ })
    await t.rejects(
      store.create('w', 8 * BS),
      { code: 'HVLAB_E_REFUSED', detail: 'HVLAB_E_DISK_FULL' },
      'no volume is created on a full disk',
    )
    await t.rejects(store.grow('v', 16 * BS), { code: 'HVLAB_E_REFUSED', detail: 'HVLAB_E_DISK_FULL' })
    t.same(await store.read('v', 0, 1), filled(1, 0), 'nothing was written')
    t.notOk(store.has('w'))
    store.setDiskFaults({ ...NO_DISK_FAULTS, fsync_fails: true })
    const both = await Promise.allSettled([store.write('v', 0, filled(1, 2)), store.write('v', 1, filled(1, 3))])
    t.same(
      both.map((r) => r.status === 'rejected' && (r.reason as { detail?: string }).detail),
      ['HVLAB_E_DISK_IO', 'HVLAB_E_DISK_IO'],
      'every write that waited on the failed fsync is refused, none acknowledged',
    )
    store.setDiskFaults({ ...NO_DISK_FAULTS, fsync_delay_ms: 150 })
    const started_ms = performance.now()
    await store.write('v', 2, filled(1, 4))
    // A lower bound the fault sets, not a speed of this machine.
    t.ok(performance.now() - started_ms >= 149, 'a slow fsync delays the acknowledgement by at least its delay')
    t.same(store.diskFaults(), { ...NO_DISK_FAULTS, fsync_delay_ms: 150 })
    store.setDiskFaults(NO_DISK_FAULTS)
    await store.write('v', 3, filled(1, 5))
    t.same(await store.read('v', 3, 1), filled(1, 5), 'a healthy disk again')
  },
)

t.test('reopen after close (a restart) keeps volumes, sizes and data', async (t) => {
  const dir = await tempDir(t)
  const a = await VolumeStore.open(dir)
  await a.create('d1', 8 * BS)
  await a.create('d2', 4 * BS)
  await a.write('d1', 7, filled(1, 7))
  await a.grow('d2', 12 * BS)
  await a.write('d2', 11, filled(1, 2))
  await a.create('gone', 4 * BS)
  await a.remove('gone')
  await a.close()
  const b = await VolumeStore.open(dir)
  t.teardown(() => b.close())
  t.same(
    b
      .list()
      .map((v) => [v.volume, v.block_count])
      .sort(),
    [
      ['d1', 8],
      ['d2', 12],
    ],
  )
  t.same(await b.read('d1', 7, 1), filled(1, 7))
  t.same(await b.read('d2', 11, 1), filled(1, 2))
  t.notOk(b.has('gone'))
  t.notOk((await readdir(dir)).includes('gone.vol'))
})

t.test('a volume file the metadata does not name (interrupted create) is removed on open', async (t) => {
  const dir = await tempDir(t)
  const a = await VolumeStore.open(dir)
  await a.create('keep', 4 * BS)
  await a.close()
  await writeFile(join(dir, 'orphan.vol'), Buffer.alloc(BS))
  const b = await VolumeStore.open(dir)
  t.teardown(() => b.close())
  t.same(
    b.list().map((v) => v.volume),
    ['keep'],
  )
  t.notOk((await readdir(dir)).includes('orphan.vol'))
})

t.test('bad writes are refused and write nothing; the store keeps working', async (t) => {
  const store = await VolumeStore.open(await tempDir(t))
  t.teardown(() => store.close())
  await store.create('v', 4 * BS)
  const refused = async (p: Promise<unknown>, code: string, re: RegExp) => {
    await t.rejects(p, { code, message: re })
  }
  await refused(store.write('v', 3, filled(2, 1)), 'HVLAB_E_REFUSED', /blocks 3\.\.4.*has blocks 0\.\.3.*nothing was written/)
  await refused(store.write('v', 0, Buffer.alloc(BS + 1, 1)), 'HVLAB_E_REFUSED', /not a whole number/)
  await refused(store.write('v', 0, Buffer.alloc(0)), 'HVLAB_E_REFUSED', /not a whole number/)
  await refused(store.write('v', -1, filled(1, 1)), 'HVLAB_E_REFUSED', /non-negative/)
  await refused(store.write('nope', 0, filled(1, 1)), 'HVLAB_E_NOT_FOUND', /does not exist/)
  await refused(store.read('v', 4, 1), 'HVLAB_E_REFUSED', /has blocks 0\.\.3/)
  await refused(store.read('v', 0, 257), 'HVLAB_E_REFUSED', /at most 256 blocks/)
  t.same(await store.read('v', 0, 4), filled(4, 0), 'nothing was written by the refused writes')
  await store.write('v', 3, filled(1, 9))
  t.same(await store.read('v', 3, 1), filled(1, 9), 'still serving')
})

t.test('admin input is validated', async (t) => {
  const store = await VolumeStore.open(await tempDir(t), { volumes_max: 2, volume_bytes_max: 8 * BS })
  t.teardown(() => store.close())
  await t.rejects(store.create('Bad Name', BS), { code: 'HVLAB_E_USAGE' })
  await t.rejects(store.create('odd', BS + 1), { code: 'HVLAB_E_USAGE' })
  await t.rejects(store.create('huge', 16 * BS), { code: 'HVLAB_E_REFUSED' })
  await store.create('a', BS)
  await t.rejects(store.create('a', BS), { code: 'HVLAB_E_STATE' })
  await store.create('b', BS)
  await t.rejects(store.create('c', BS), { code: 'HVLAB_E_REFUSED' }, 'volumes_max is a limit')
  await t.rejects(store.grow('a', 0), { code: 'HVLAB_E_USAGE' })
  await store.grow('b', 2 * BS)
  await t.rejects(store.grow('b', BS), { code: 'HVLAB_E_REFUSED' }, 'cannot shrink')
})

t.test('concurrent writes to one volume are all durable and applied in call order', async (t) => {
  const dir = await tempDir(t)
  const a = await VolumeStore.open(dir)
  await a.create('v', 64 * BS)
  const writes: Promise<void>[] = []
  for (let i = 0; i < 64; i++) writes.push(a.write('v', i, filled(1, i)))
  for (let i = 0; i < 20; i++) writes.push(a.write('v', 5, filled(1, 100 + i)))
  await Promise.all(writes)
  await a.close()
  const b = await VolumeStore.open(dir)
  t.teardown(() => b.close())
  for (let i = 0; i < 64; i++) {
    t.equal((await b.read('v', i, 1))[0], i === 5 ? 119 : i, `block ${i}`)
  }
})

t.test('a store opened with another block size is refused', async (t) => {
  const dir = await tempDir(t)
  const a = await VolumeStore.open(dir)
  await a.create('v', BS)
  await a.close()
  await t.rejects(VolumeStore.open(dir, { block_size_bytes: 512 }), { code: 'HVLAB_E_USAGE' })
})
