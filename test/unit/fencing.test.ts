import t from 'tap'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { FencingTable, fenceDecision, RESERVATIONS_FILE } from '../../array-emulator/fencing.js'

async function tempDir(t: { teardown(fn: () => unknown): void }): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'hvlab-fence-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  return dir
}

t.test('the rule: older refused, equal accepted, newer raises', async (t) => {
  t.equal(fenceDecision(undefined, 0), 'raise')
  t.equal(fenceDecision({ epoch: 5, host: 'h1' }, 5), 'accept')
  t.equal(fenceDecision({ epoch: 5, host: 'h1' }, 6), 'raise')
  t.equal(fenceDecision({ epoch: 5, host: 'h1' }, 4), 'refuse')
  t.throws(() => fenceDecision(undefined, -1), { code: 'HVLAB_E_REFUSED' })
})

t.test('a zombie with an older epoch is refused with a clear message; newer raises', async (t) => {
  const table = await FencingTable.open(await tempDir(t))
  await table.admitWrite('vm1-os', 'h1', 3)
  await table.admitWrite('vm1-os', 'h1', 3)
  await table.admitWrite('vm1-os', 'h2', 4)
  t.same(table.current('vm1-os'), { epoch: 4, host: 'h2' })
  await t.rejects(table.admitWrite('vm1-os', 'h1', 3), {
    code: 'HVLAB_E_REFUSED',
    message: /epoch 3 .*reserved at epoch 4 \(host h2\).*fenced.*nothing was written/,
  })
  await table.admitWrite('other', 'h1', 1) // per volume
  t.equal(table.current('other')?.epoch, 1)
})

t.test('reservations survive a restart: a fenced epoch stays fenced', async (t) => {
  const dir = await tempDir(t)
  const a = await FencingTable.open(dir)
  await a.admitWrite('v', 'h1', 7)
  const b = await FencingTable.open(dir)
  t.same(b.current('v'), { epoch: 7, host: 'h1' })
  await t.rejects(b.admitWrite('v', 'h0', 6), { code: 'HVLAB_E_REFUSED' })
  await b.forget('v')
  const c = await FencingTable.open(dir)
  t.equal(c.current('v'), undefined)
})

t.test('the table is bounded and a damaged file is reported', async (t) => {
  const dir = await tempDir(t)
  const a = await FencingTable.open(dir, { volumes_max: 1 })
  await a.admitWrite('v1', 'h', 1)
  await t.rejects(a.admitWrite('v2', 'h', 1), { code: 'HVLAB_E_REFUSED', message: /full/ })
  await writeFile(join(dir, RESERVATIONS_FILE), '{"format":1,"volumes":{"v":{"epoch":-3,"host":"h"}}}')
  await t.rejects(FencingTable.open(dir), { code: 'HVLAB_E_INTERNAL', message: /damaged/ })
})
