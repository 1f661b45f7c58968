import t from 'tap'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { LunMasking, normalizeWwn } from '../../array-emulator/lun-masking.js'

async function tempDir(t: { teardown(fn: () => unknown): void }): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'hvlab-lun-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  return dir
}

const WWN_A = 'C0:03:FF:00:00:FF:FF:00'
const WWN_B = 'c003ff0000ffff01'

t.test('WWNs are normalized and validated', async (t) => {
  t.equal(normalizeWwn(WWN_A), 'c0:03:ff:00:00:ff:ff:00')
  t.equal(normalizeWwn(WWN_B), 'c0:03:ff:00:00:ff:ff:01')
  t.throws(() => normalizeWwn('xyz'), { code: 'HVLAB_E_USAGE' })
  t.throws(() => normalizeWwn('c0:03:ff:00:00:ff:ff'), { code: 'HVLAB_E_USAGE' })
})

t.test('only presented hosts may do I/O', async (t) => {
  const m = await LunMasking.open(await tempDir(t))
  await m.present('vm1-os', 'host-a')
  m.checkAccess('vm1-os', 'host-a')
  m.checkAccess('vm1-os', 'host-a', WWN_A) // no initiators named: any initiator of the host
  t.throws(() => m.checkAccess('vm1-os', 'host-b'), {
    code: 'HVLAB_E_REFUSED',
    message: /host host-b may not access volume vm1-os.*not presented/,
  })
  t.throws(() => m.checkAccess('other', 'host-a'), { code: 'HVLAB_E_REFUSED' })
  await m.unpresent('vm1-os', 'host-a')
  t.throws(() => m.checkAccess('vm1-os', 'host-a'), { code: 'HVLAB_E_REFUSED' })
  await t.rejects(m.unpresent('vm1-os', 'host-a'), { code: 'HVLAB_E_NOT_FOUND' })
})

t.test('a VFC presentation allows only its WWN A/B pair', async (t) => {
  const m = await LunMasking.open(await tempDir(t))
  const p = await m.present('data', 'guest1', [WWN_A, WWN_B])
  t.same(p.initiators, ['c0:03:ff:00:00:ff:ff:00', 'c0:03:ff:00:00:ff:ff:01'])
  m.checkAccess('data', 'guest1', 'c0:03:ff:00:00:ff:ff:00')
  m.checkAccess('data', 'guest1', 'C003FF0000FFFF01')
  t.throws(() => m.checkAccess('data', 'guest1'), { code: 'HVLAB_E_REFUSED', message: /only through initiator/ })
  t.throws(() => m.checkAccess('data', 'guest1', 'c003ff0000ffff02'), { code: 'HVLAB_E_REFUSED' })
  t.throws(() => m.checkAccess('data', 'guest1', 'garbage'), { code: 'HVLAB_E_REFUSED' })
})

t.test('bad presentations are refused and change nothing', async (t) => {
  const m = await LunMasking.open(await tempDir(t), { presentations_max: 2 })
  await t.rejects(m.present('v', 'h', [WWN_A, WWN_B, 'c003ff0000ffff02']), { code: 'HVLAB_E_USAGE', message: /at most 2/ })
  await t.rejects(m.present('v', 'h', [WWN_A, WWN_A.toLowerCase()]), { code: 'HVLAB_E_USAGE', message: /repeat/ })
  await t.rejects(m.present('v', 'Bad Host'), { code: 'HVLAB_E_USAGE' })
  await t.rejects(m.present('v', 'h', ['nope']), { code: 'HVLAB_E_USAGE' })
  t.same(m.presentations(), [])
  await m.present('v', 'h1', [WWN_A])
  await t.rejects(m.present('w', 'h2', [WWN_A]), { code: 'HVLAB_E_USAGE', message: /already belongs to host h1/ })
  await m.present('w', 'h2')
  await t.rejects(m.present('x', 'h3'), { code: 'HVLAB_E_REFUSED', message: /limit/ })
  await m.present('w', 'h2', [WWN_B]) // re-presenting replaces, within the limit
  t.equal(m.presentations().length, 2)
})

t.test('presentations survive a restart; forgetVolume drops them', async (t) => {
  const dir = await tempDir(t)
  const a = await LunMasking.open(dir)
  await a.present('v', 'h1', [WWN_A])
  await a.present('v', 'h2')
  await a.present('w', 'h1')
  await a.forgetVolume('w')
  const b = await LunMasking.open(dir)
  t.same(
    b
      .presentations('v')
      .map((p) => p.host)
      .sort(),
    ['h1', 'h2'],
  )
  b.checkAccess('v', 'h1', WWN_A)
  t.throws(() => b.checkAccess('v', 'h1', WWN_B), { code: 'HVLAB_E_REFUSED' })
  t.throws(() => b.checkAccess('w', 'h1'), { code: 'HVLAB_E_REFUSED' })
})
