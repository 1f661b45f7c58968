/**
 * The array-wide resync limit: at the limit, further groups wait in arrival order and are
 * granted as permits come back; asking twice is asking once; a waiter that gives up leaves
 * the queue. Also the group side: a group that needs permits starts no cycle without one,
 * and gives its permit back when the cycle ends.
 */
import t from 'tap'
import { ResyncLimiter } from '../../array-emulator/resync-limiter.js'
import { RemoteCopyGroup, type RcEffect } from '../../array-emulator/remote-copy-group.js'

t.test('limiter at its limit', async (t) => {
  t.throws(() => new ResyncLimiter(0), { code: 'HVLAB_E_USAGE', message: /from 1 to 256 groups/ })
  const l = new ResyncLimiter(2)
  t.ok(l.request('g1'))
  t.ok(l.request('g2'))
  t.notOk(l.request('g3'), 'the third waits: the limit is 2')
  t.notOk(l.request('g4'))
  t.notOk(l.request('g3'), 'asking again does not queue twice')
  t.same({ running: l.running, queued: l.queued }, { running: 2, queued: 2 })
  t.ok(l.request('g1'), 'a holder asking again still holds')
  t.same(l.release('g1'), ['g3'], 'first come, first served')
  t.same(l.release('g4'), [], 'a waiter giving up leaves the queue, grants nobody')
  t.same({ running: l.running, queued: l.queued }, { running: 2, queued: 0 })
  t.notOk(l.request('g5'))
  t.same(l.release('g2'), ['g5'])
  t.same(l.release('g3'), [])
  t.same(l.release('g5'), [])
  t.same(l.release('never'), [], 'releasing what was never held is harmless')
  t.equal(l.running, 0)
})

t.test('a group that needs permits waits for one, and gives it back', async (t) => {
  const g = new RemoteCopyGroup({ group: 'g', partner: 'b', role: 'primary', mode: 'periodic', block_size_bytes: 512, period_ms: 1000 })
  g.requireResyncPermits()
  const kinds = (es: RcEffect[]) => es.map((e) => e.kind)
  g.step({ kind: 'link-up' }, 0)
  g.step({ kind: 'peer', message: { t: 'rc-hello', group: 'g', role: 'secondary', started: false, generation: 0, incarnation: 1 } }, 0)
  const admitted = g.step({ kind: 'admit', volume: 'v', remote_volume: 'v', block_count: 4 }, 0)
  t.notOk(kinds(admitted).includes('send-blocks'), 'not started: no cycle')
  const started = g.step({ kind: 'command', verb: 'start' }, 0)
  t.ok(kinds(started).includes('request-resync-permit'), 'start asks for a permit')
  t.notOk(kinds(started).includes('send-blocks'), 'and sends nothing before it has one')
  t.notOk(kinds(g.step({ kind: 'command', verb: 'sync' }, 1)).includes('request-resync-permit'), 'one request at a time')
  const granted = g.step({ kind: 'resync-permit' }, 2)
  const sends = granted.filter((e): e is Extract<RcEffect, { kind: 'send-blocks' }> => e.kind === 'send-blocks')
  t.equal(sends.length, 1, 'with the permit the cycle starts')
  t.equal(sends[0]!.compare, true, 'a newly admitted volume is compared, not copied blindly')
  const end = g.step({ kind: 'peer', message: { t: 'rc-blocks-ack', group: 'g', cycle: 1, batch: sends[0]!.batch, blocks: 2 } }, 3)
  t.ok(kinds(end).includes('send'), 'cycle-end sent')
  t.equal(g.status().bytes_resynced_total, 2 * 512, 'resynced bytes are what the partner got (2 of 4 blocks differed)')
  const done = g.step({ kind: 'peer', message: { t: 'rc-cycle-done', group: 'g', cycle: 1 } }, 4)
  t.ok(kinds(done).includes('release-resync-permit'), 'the permit goes back when the cycle is done')
  g.step({ kind: 'host-write', write_id: 1, volume: 'v', block: 0, data: new Uint8Array(512) }, 5)
  t.ok(kinds(g.step({ kind: 'command', verb: 'sync' }, 6)).includes('request-resync-permit'), 'the next cycle asks again')
  g.step({ kind: 'link-down' }, 7)
  t.same(kinds(g.step({ kind: 'resync-permit' }, 8)), ['release-resync-permit'], 'a permit that cannot be used is given back at once')
  const released = g.step(
    { kind: 'peer', message: { t: 'rc-hello', group: 'g', role: 'secondary', started: true, generation: 0, incarnation: 1 } },
    9,
  )
  t.same(
    released.filter((e) => e.kind === 'send-blocks'),
    [],
    '(link is down: nothing sent)',
  )
})
