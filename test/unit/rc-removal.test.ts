/**
 * Removal in Remote Copy: a group's `dismiss` input (dismissrcopyvv) is refused while the
 * group is started and changes nothing then; stopped, it takes the volume out (persisted,
 * rc.volume-dismissed). The service's `remove` (removercopygroup) is refused while the
 * group is started, and once stopped deletes the group's journal: reopened on the same
 * dir, the array has no such group; a removed group takes no more input.
 */
import t from 'tap'
import { mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { RemoteCopyGroup, type RcEffect } from '../../array-emulator/remote-copy-group.js'
import { openTestArray } from './remote-copy-fixture.js'

const NOW = 1_000

/** A primary whose partner has said hello (so it may admit), with volume v1 admitted. */
function primaryWithVolume(): RemoteCopyGroup {
  const g = new RemoteCopyGroup({ group: 'g1', partner: 'array-b', role: 'primary', mode: 'sync', block_size_bytes: 4096 })
  g.step({ kind: 'link-up' }, NOW)
  g.step({ kind: 'peer', message: { t: 'rc-hello', group: 'g1', role: 'secondary', started: false, generation: 0, incarnation: 1 } }, NOW)
  g.step({ kind: 'admit', volume: 'v1', remote_volume: 'v1', block_count: 4 }, NOW)
  return g
}

const emitted = (fx: RcEffect[]) => fx.flatMap((f) => (f.kind === 'emit' ? [f.event] : []))

t.test('dismiss: refused while started (nothing changes); stopped, the volume leaves the group', async (t) => {
  const g = primaryWithVolume()
  g.step({ kind: 'command', verb: 'start' }, NOW)
  t.throws(() => g.step({ kind: 'dismiss', volume: 'v1' }, NOW), {
    code: 'HVLAB_E_STATE',
    message: 'cannot dismiss v1 from group g1: the group is started; stop it first: `hvlab rcopy stop g1`',
  })
  t.match(g.removalRefusal(), { code: 'HVLAB_E_STATE', message: /it is started; stop it first: `hvlab rcopy stop g1`/ })
  t.same(
    g.status().volumes.map((v) => v.volume),
    ['v1'],
    'still in the group',
  )
  g.step({ kind: 'command', verb: 'stop' }, NOW)
  t.throws(() => g.step({ kind: 'dismiss', volume: 'nope' }, NOW), {
    code: 'HVLAB_E_NOT_FOUND',
    message: /volume nope is not in remote copy group g1/,
  })
  const fx = g.step({ kind: 'dismiss', volume: 'v1' }, NOW)
  t.same(emitted(fx), ['rc.volume-dismissed'])
  const persisted = fx.find((f): f is Extract<RcEffect, { kind: 'persist' }> => f.kind === 'persist')
  t.same(persisted?.record.volumes, [], 'the record persisted without it')
  t.same(g.status().volumes, [], 'the group holds no volume')
  t.equal(g.removalRefusal(), null, 'a stopped group may be removed')
})

t.test('remove: refused while started; stopped, the group and its journal are gone, also after a reopen', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'hvlab-rc-removal-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const events: string[] = []
  const link = { send: async () => false, emit: (kind: string) => void events.push(kind) }
  const { store, rc } = await openTestArray(dir, 'array-b', link)
  await rc.create({ group: 'g1', partner: 'array-b', role: 'primary', mode: 'sync' })
  await rc.verb('g1', 'start', false)
  await t.rejects(rc.remove('g1'), { code: 'HVLAB_E_STATE', message: /stop it first: `hvlab rcopy stop g1`/ })
  t.same(rc.groupNames(), ['g1'], 'still there')
  await rc.verb('g1', 'stop', false)
  t.same(await rc.remove('g1'), [], 'removed; it held no volume')
  t.same(rc.groupNames(), [])
  t.ok(events.includes('rc.group-removed'), 'rc.group-removed is on the timeline')
  t.throws(() => rc.status('g1'), { code: 'HVLAB_E_NOT_FOUND' })
  await t.rejects(rc.verb('g1', 'start', false), { code: 'HVLAB_E_NOT_FOUND' }, 'a removed group takes no input')
  await t.rejects(rc.remove('g1'), { code: 'HVLAB_E_NOT_FOUND', message: /does not exist on this array/ })
  t.same(readdirSync(join(dir, 'rc')), [], 'no journal file is left')
  await rc.close()
  await store.close()

  const again = await openTestArray(dir, 'array-b', link)
  t.same(again.rc.groupNames(), [], 'reopened on the same dir: no such group')
  await again.rc.create({ group: 'g1', partner: 'array-b', role: 'primary', mode: 'sync' })
  t.same(again.rc.groupNames(), ['g1'], 'a group of the same name can be made again')
  await again.rc.close()
  await again.store.close()
})
