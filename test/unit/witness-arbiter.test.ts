import t from 'tap'
import type { ArbiterEffect } from '../../witness/arbiter.js'
import { Arbiter } from '../../witness/arbiter.js'
import type { ClusterMessage, ViewProposal } from '../../shared/protocol/cluster-messages.js'

const cfg = { name: 'witness-c', nodes: ['host-a1', 'host-b1'], lease_ms: 1000, clock_skew_ms: 50, renew_interval_ms: 250 }
const msg = (w: Arbiter, m: ClusterMessage, now: number): ArbiterEffect[] => w.step({ kind: 'message', message: m }, now)
const sent = (fx: ArbiterEffect[]): ClusterMessage[] => fx.flatMap((f) => (f.kind === 'send' ? [f.message] : []))
const db = (db_epoch: number) => ({ db_epoch, config: {} })
const value = (epoch: number, coordinator: string): ViewProposal => ({
  view: {
    epoch,
    members: [coordinator],
    voters: [coordinator],
    witness_vote: true,
    coordinator,
    forced: false,
    leases_end_ms: 0,
    removed_lease_end_ms: 0,
  },
  db: db(epoch * 65536),
})

t.test('votes for one partition at a time: a live coordinator holds off the other side', async (t) => {
  const w = new Arbiter(cfg, -10_000)
  // Epoch 1 is decided with host-a1 as coordinator; a1 confirms its lease at t=0.
  msg(w, { t: 'cluster-commit', from: 'host-a1', view: value(1, 'host-a1').view, db: db(65536) }, 0)
  const ack = sent(msg(w, { t: 'cluster-lease-request', from: 'host-a1', epoch: 1, round: 1, started_ms: 0, db_epoch: 65536, db: null }, 0))
  t.equal(ack[0]?.t, 'cluster-lease-ack')
  // host-b1, cut off from a1, tries to form epoch 2 at t=200: a1 renewed 200 ms ago, so it
  // counts as alive for 1.5 renewal intervals (375 ms): refused until then.
  const r = sent(msg(w, { t: 'cluster-prepare', from: 'host-b1', slot: 2, ballot: { n: 5, node: 'host-b1' } }, 200))
  t.match(r[0], { t: 'cluster-refuse', reason: 'lease', retry_at_ms: 375 })
  // At 375 a1 has missed a renewal: the witness promises, while a1's lease (until 1000)
  // still runs, and reports that lease's end so the next view can wait it out.
  const p = sent(msg(w, { t: 'cluster-prepare', from: 'host-b1', slot: 2, ballot: { n: 5, node: 'host-b1' } }, 375))
  t.match(p[0], { t: 'cluster-promise', db_epoch: 65536, db: null, accepted: null, leases_until_ms: 1000 })
  // Having promised a successor, it no longer confirms host-a1's view.
  t.same(
    sent(msg(w, { t: 'cluster-lease-request', from: 'host-a1', epoch: 1, round: 2, started_ms: 1100, db_epoch: 65536, db: null }, 1100)),
    [],
  )
  // A lower ballot is refused.
  t.match(sent(msg(w, { t: 'cluster-prepare', from: 'host-a1', slot: 2, ballot: { n: 4, node: 'host-a1' } }, 1100))[0], {
    reason: 'promised',
  })
})

t.test('the coordinator itself may change its view at once, during its lease', async (t) => {
  const w = new Arbiter(cfg, -10_000)
  msg(w, { t: 'cluster-commit', from: 'host-a1', view: value(1, 'host-a1').view, db: db(65536) }, 0)
  const fx = msg(w, { t: 'cluster-lease-request', from: 'host-a1', epoch: 1, round: 1, started_ms: 0, db_epoch: 65536, db: null }, 0)
  t.same(
    fx.map((f) =>
      f.kind === 'send'
        ? `send ${f.liveness === true ? 'at once' : 'after'} db_epoch=${String((f.message as { db_epoch: unknown }).db_epoch)}`
        : f.kind,
    ),
    ['send at once db_epoch=null', 'persist', 'send after db_epoch=65536'],
    "the first confirmation in a view: the lease vote at once, then the write (the view's epoch), then the ack of what is on disk",
  )
  const renewal = msg(
    w,
    { t: 'cluster-lease-request', from: 'host-a1', epoch: 1, round: 2, started_ms: 250, db_epoch: 65536, db: null },
    250,
  )
  t.same(
    renewal.map((f) => (f.kind === 'send' && f.liveness === true ? 'send at once' : f.kind)),
    ['send at once'],
    'a renewal alone is not written, and its ack leaves at once',
  )
  const p = sent(msg(w, { t: 'cluster-prepare', from: 'host-a1', slot: 2, ballot: { n: 2, node: 'host-a1' } }, 300))
  t.match(p[0], { t: 'cluster-promise', leases_until_ms: 1250 })
})

t.test('a restarted witness reports a lease bound that covers any lease it confirmed before', async (t) => {
  const w = new Arbiter(cfg, 0)
  msg(w, { t: 'cluster-commit', from: 'host-a1', view: value(1, 'host-a1').view, db: db(65536) }, 0)
  msg(w, { t: 'cluster-lease-request', from: 'host-a1', epoch: 1, round: 1, started_ms: 0, db_epoch: 65536, db: null }, 0)
  msg(w, { t: 'cluster-lease-request', from: 'host-a1', epoch: 1, round: 2, started_ms: 900, db_epoch: 65536, db: null }, 900)
  // It crashes at 950 having written only the first confirmation; it restarts at 1000.
  const restarted = new Arbiter(cfg, 1000, structuredClone(w.record()))
  const p = sent(msg(restarted, { t: 'cluster-prepare', from: 'host-b1', slot: 2, ballot: { n: 5, node: 'host-b1' } }, 1000))
  t.match(p[0], { t: 'cluster-promise' })
  const bound = (p[0] as { leases_until_ms: number }).leases_until_ms
  t.ok(bound >= 1900, `its bound ${bound} covers the lease confirmed at 900 (until 1900) that it forgot`)
  t.equal(bound, 1000 + cfg.lease_ms + cfg.clock_skew_ms)
})

t.test('records the newest epochs, persists before replying, refuses the past and survives a restart', async (t) => {
  const w = new Arbiter(cfg, 0)
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
  msg(w, { t: 'cluster-lease-request', from: 'host-a1', epoch: 1, round: 1, started_ms: 0, db_epoch: 65540, db: null }, 0)
  t.equal(w.record().committed_epoch, 1)
  t.equal(w.record().db_epoch, 65540, 'the newest database epoch from a confirmed write')

  const restarted = new Arbiter(cfg, 5000, structuredClone(w.record()))
  // host-b1 still thinks epoch 1 is undecided (it holds the genesis view): partition in time.
  const r = sent(msg(restarted, { t: 'cluster-prepare', from: 'host-b1', slot: 1, ballot: { n: 9, node: 'host-b1' } }, 5000))
  t.match(r[0], { t: 'cluster-refuse', reason: 'decided', committed_epoch: 1, db_epoch: 65540 })
  // An older database is not confirmed, and epochs never go back.
  t.same(
    sent(
      msg(
        restarted,
        { t: 'cluster-lease-request', from: 'host-a1', epoch: 1, round: 2, started_ms: 5000, db_epoch: 65537, db: null },
        5000,
      ),
    ),
    [],
  )
  msg(restarted, { t: 'cluster-commit', from: 'host-b1', view: value(1, 'host-b1').view, db: db(65536) }, 5000)
  t.equal(restarted.record().db_epoch, 65540)
  t.same(restarted.step({ kind: 'message', message: { t: 'cluster-leave', from: 'stranger' } }, 0), [], 'strangers are ignored')
})

t.test('a lease request proves its epoch was decided', async (t) => {
  const w = new Arbiter(cfg, 0)
  const out = sent(
    msg(w, { t: 'cluster-lease-request', from: 'host-b1', epoch: 3, round: 1, started_ms: 10, db_epoch: 3 * 65536, db: null }, 10),
  )
  t.equal(out[0]?.t, 'cluster-lease-ack')
  t.equal(w.record().committed_epoch, 3)
  t.match(
    sent(msg(w, { t: 'cluster-accept', from: 'host-a1', slot: 2, ballot: { n: 1, node: 'host-a1' }, value: value(2, 'host-a1') }, 20))[0],
    { reason: 'decided' },
  )
})
