import t from 'tap'
import { HeartbeatDetector, WSFC_HEARTBEAT_DEFAULTS } from '../../agent/cluster/heartbeat-detector.js'

const sites = new Map([
  ['host-a1', 'site-a'],
  ['host-a2', 'site-a'],
  ['host-b1', 'site-b'],
])

t.test('same-site and cross-site intervals and thresholds are separate (WSFC defaults)', async (t) => {
  const d = new HeartbeatDetector('host-a1', sites, WSFC_HEARTBEAT_DEFAULTS, 0)
  t.same(d.peers(), ['host-a2', 'host-b1'])
  t.equal(d.intervalTo('host-a2'), 1000)
  t.equal(d.timeoutFor('host-a2'), 10_000, '10 missed within a site')
  t.equal(d.timeoutFor('host-b1'), 20_000, '20 missed across sites')
  t.same(d.upPeers(10_000), ['host-a2', 'host-b1'])
  t.same(d.newlyDown(10_001), ['host-a2'], 'the same-site peer is down after 10 s of silence')
  t.same(d.newlyDown(15_000), [], 'reported once')
  t.ok(d.isUp('host-b1', 20_000))
  t.same(d.newlyDown(20_001), ['host-b1'], 'the cross-site peer after 20 s')
})

t.test('a heartbeat keeps a peer up and brings it back', async (t) => {
  const d = new HeartbeatDetector(
    'host-a1',
    sites,
    { same_site_interval_ms: 100, same_site_missed_max: 3, cross_site_interval_ms: 200, cross_site_missed_max: 5 },
    0,
  )
  d.heard('host-a2', 250)
  t.ok(d.isUp('host-a2', 550))
  t.notOk(d.isUp('host-a2', 551))
  t.same(d.newlyDown(600), ['host-a2'])
  t.equal(d.heard('host-a2', 700), true, 'came back up')
  t.equal(d.heard('host-a2', 710), false, 'already up')
  t.ok(d.isUp('host-a2', 800))
  t.equal(d.heard('stranger', 800), false, 'unknown senders are ignored')
  t.equal(d.heard('host-a2', 500), false, 'an older heartbeat does not move time back')
  t.ok(d.isUp('host-a2', 1000))
})

t.test('a peer that leaves is down at once', async (t) => {
  const d = new HeartbeatDetector('host-a1', sites, WSFC_HEARTBEAT_DEFAULTS, 0)
  d.markDown('host-b1')
  t.notOk(d.isUp('host-b1', 1))
  t.same(d.upPeers(1), ['host-a2'])
})

t.test('bad settings and topology are refused with a clear error', async (t) => {
  t.throws(
    () => new HeartbeatDetector('host-a1', sites, { ...WSFC_HEARTBEAT_DEFAULTS, same_site_missed_max: 0 }, 0),
    /same_site_missed_max must be a positive integer/,
  )
  t.throws(() => new HeartbeatDetector('host-zz', sites, WSFC_HEARTBEAT_DEFAULTS, 0), /no site/)
})

t.test('only watched peers are judged; a peer watched anew gets a full window, one no longer watched is not down', async (t) => {
  const s = { same_site_interval_ms: 100, same_site_missed_max: 3, cross_site_interval_ms: 100, cross_site_missed_max: 3 }
  const d = new HeartbeatDetector('host-a1', sites, s, 0)
  d.watch(['host-a2'], 0)
  t.same(d.newlyDown(1000), ['host-a2'], 'the watched peer, silent, is declared down')
  t.ok(d.isUp('host-b1', 1000), 'an unwatched peer counts up however long it is silent')
  t.equal(d.silentFor('host-b1', 1000), 0, 'and never silent')
  d.watch(['host-b1'], 1000)
  t.ok(d.isUp('host-a2', 1000), 'no longer watched: no longer counted down')
  t.ok(d.isUp('host-b1', 1300), 'watched anew at 1000: a full window from then')
  t.equal(d.silentFor('host-b1', 1300), 1300, 'though its silence counts from when it was last heard (status shows it Down)')
  t.same(d.newlyDown(1301), ['host-b1'])
  d.markDown('host-a2')
  d.watch([], 1400)
  t.equal(d.silentFor('host-a2', 1400), Infinity, 'a peer that left stays gone, watched or not')
  t.notOk(d.isUp('host-a2', 1400))
})
