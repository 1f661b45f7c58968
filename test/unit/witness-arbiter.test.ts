import t from 'tap'
import type { ArbiterEffect } from '../../witness/arbiter.js'
import { Arbiter } from '../../witness/arbiter.js'
import type { ClusterMessage, ViewProposal } from '../../shared/protocol/cluster-messages.js'

const cfg = { name: 'witness-c', nodes: ['host-a1', 'host-b1'], lease_ms: 1000, clock_skew_ms: 50 }
const msg = (w: Arbiter, m: ClusterMessage, now: number): ArbiterEffect[] => w.step({ kind: 'message', message: m }, now)
const sent = (fx: ArbiterEffect[]): ClusterMessage[] => fx.flatMap((f) => (f.kind === 'send' ? [f.message] : []))
const db = (db_epoch: number) => ({ db_epoch, config: {} })
const value = (epoch: number, coordinator: string): ViewProposal => ({
  view: { epoch, members: [coordinator], voters: [coordinator], witness_vote: true, coordinator, forced: false },
  db: db(epoch * 65536),
})

t.test('votes for one partition at a time: a lease holds off the other side', async (t) => {
  const w = new Arbiter(cfg)
  // Epoch 1 is decided with host-a1 as coordinator; a1 confirms its lease at t=0.
  msg(w, { t: 'cluster-commit', from: 'host-a1', view: value(1, 'host-a1').view, db: db(65536) }, 0)
  const ack = sent(msg(w, { t: 'cluster-lease-request', from: 'host-a1', epoch: 1, round: 1, started_ms: 0, db: db(65536) }, 0))
  t.equal(ack[0]?.t, 'cluster-lease-ack')
  // host-b1, cut off from a1, tries to form epoch 2 at t=500: refused until 1000 + skew.
  const r = sent(msg(w, { t: 'cluster-prepare', from: 'host-b1', slot: 2, ballot: { n: 5, node: 'host-b1' } }, 500))
  t.match(r[0], { t: 'cluster-refuse', reason: 'lease', retry_at_ms: 1050 })
  const p = sent(msg(w, { t: 'cluster-prepare', from: 'host-b1', slot: 2, ballot: { n: 5, node: 'host-b1' } }, 1050))
  t.match(p[0], { t: 'cluster-promise', db_epoch: 65536, db: null, accepted: null })
  // Having promised a successor, it no longer confirms host-a1's view.
  t.same(sent(msg(w, { t: 'cluster-lease-request', from: 'host-a1', epoch: 1, round: 2, started_ms: 1100, db: db(65536) }, 1100)), [])
  // A lower ballot is refused.
  t.match(sent(msg(w, { t: 'cluster-prepare', from: 'host-a1', slot: 2, ballot: { n: 4, node: 'host-a1' } }, 1100))[0], {
    reason: 'promised',
  })
})

t.test('records the newest epochs, persists before replying, refuses the past and survives a restart', async (t) => {
  const w = new Arbiter(cfg)
  const fx = msg(w, { t: 'cluster-prepare', from: 'host-a1', slot: 1, ballot: { n: 1, node: 'host-a1' } }, 0)
  t.same(
    fx.map((f) => f.kind),
    ['persist', 'send'],
    'persist comes before the reply',
  )
  const acc = sent(
    msg(w, { t: 'cluster-accept', from: 'host-a1', slot: 1, ballot: { n: 1, node: 'host-a1' }, value: value(1, 'host-a1') }, 0),
  )
  t.equal(acc[0]?.t, 'cluster-accepted')
  msg(w, { t: 'cluster-commit', from: 'host-a1', view: value(1, 'host-a1').view, db: db(65536) }, 0)
  msg(w, { t: 'cluster-lease-request', from: 'host-a1', epoch: 1, round: 1, started_ms: 0, db: db(65540) }, 0)
  t.equal(w.record().committed_epoch, 1)
  t.equal(w.record().db_epoch, 65540, 'the newest database epoch from a confirmed write')

  const restarted = Arbiter.restore(cfg, structuredClone(w.record()))
  // host-b1 still thinks epoch 1 is undecided (it holds the genesis view): partition in time.
  const r = sent(msg(restarted, { t: 'cluster-prepare', from: 'host-b1', slot: 1, ballot: { n: 9, node: 'host-b1' } }, 5000))
  t.match(r[0], { t: 'cluster-refuse', reason: 'decided', committed_epoch: 1, db_epoch: 65540 })
  // An older database is not confirmed, and epochs never go back.
  t.same(
    sent(msg(restarted, { t: 'cluster-lease-request', from: 'host-a1', epoch: 1, round: 2, started_ms: 5000, db: db(65537) }, 5000)),
    [],
  )
  msg(restarted, { t: 'cluster-commit', from: 'host-b1', view: value(1, 'host-b1').view, db: db(65536) }, 5000)
  t.equal(restarted.record().db_epoch, 65540)
  t.same(restarted.step({ kind: 'message', message: { t: 'cluster-leave', from: 'stranger' } }, 0), [], 'strangers are ignored')
})

t.test('a lease request proves its epoch was decided', async (t) => {
  const w = new Arbiter(cfg)
  const out = sent(msg(w, { t: 'cluster-lease-request', from: 'host-b1', epoch: 3, round: 1, started_ms: 10, db: db(3 * 65536) }, 10))
  t.equal(out[0]?.t, 'cluster-lease-ack')
  t.equal(w.record().committed_epoch, 3)
  t.match(
    sent(msg(w, { t: 'cluster-accept', from: 'host-a1', slot: 2, ballot: { n: 1, node: 'host-a1' }, value: value(2, 'host-a1') }, 20))[0],
    { reason: 'decided' },
  )
})
