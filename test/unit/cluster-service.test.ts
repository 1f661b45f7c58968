/**
 * The cluster's process shell without sockets: the cluster driver writes a persist before
 * any effect after it, stops on a failed write, and keeps one tick timer; ClusterService
 * drops messages whose `from` is not the authenticated peer, writes its record to
 * cluster.json, and a host reopened from that record keeps its epochs.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { membershipConfig } from '../../agent/cluster/cluster-config.js'
import { ClusterService } from '../../agent/cluster/cluster-service.js'
import { ManualClock } from '../../shared/clock.js'
import type { ClusterEvent, Effect } from '../../shared/consensus/cluster-effects.js'
import { flattenEventDetails } from '../../shared/timeline/flatten.js'
import { clusterDriver, timerOn, type ClusterSinks } from '../../shared/machine/cluster-driver.js'
import type { ClusterMessage } from '../../shared/protocol/cluster-messages.js'
import { parseTopology } from '../../shared/topology.js'

const hb = (from: string): ClusterMessage => ({ t: 'cluster-heartbeat', from, epoch: 0, db_epoch: 0, sent_ms: 0 })
/** The cluster driver with only run() used (the batches are given, not stepped). */
const batchDriver = <R>(
  sinks: Omit<ClusterSinks<R>, 'armTimer'> & { clock: ManualClock },
  bound?: { batches_max: number; log?: { warn(o: object, msg: string): void } },
) => clusterDriver<R>(() => [], { ...sinks, armTimer: timerOn(sinks.clock) }, { defer_start: true, ...(bound ? { bound } : {}) })
const flush = (): Promise<void> => new Promise((r) => setTimeout(r, 5))

t.test('cluster driver: a persist is written before the effects after it; a failed write stops everything', async (t) => {
  const clock = new ManualClock(0)
  const log: string[] = []
  let release!: () => void
  const runner = batchDriver<{ n: number }>({
    clock,
    send: (to) => log.push(`send ${to}`),
    persist: (r) => {
      log.push(`persist ${r.n} start`)
      return new Promise<void>((res) => (release = () => (log.push(`persist ${r.n} done`), res())))
    },
    emit: (e) => log.push(`emit ${e.kind}`),
    onTimer: () => log.push('tick'),
    onFatal: () => log.push('fatal'),
  })
  const batch: Effect<{ n: number }>[] = [
    { kind: 'send', to: 'a', message: hb('x') },
    { kind: 'persist', record: { n: 1 } },
    { kind: 'send', to: 'b', message: hb('x') },
  ]
  const done = runner.run(batch)
  void runner.run([
    { kind: 'persist', record: { n: 2 } },
    // A kind no machine emits: the driver carries out any emit in order, without reading it.
    { kind: 'emit', event: { kind: 'later', source: 'x', details: {} } as unknown as ClusterEvent },
  ])
  await flush()
  t.same(log, ['send a', 'persist 2 start'], 'the send after the persist waits; the newest record is the one written')
  release()
  await done
  await flush()
  t.same(log, ['send a', 'persist 2 start', 'persist 2 done', 'send b', 'emit later'], 'record 2 already covers the second persist')

  const failing = batchDriver<{ n: number }>({
    clock,
    send: (to) => log.push(`send2 ${to}`),
    persist: () => Promise.reject(new Error('disk full')),
    emit: () => {},
    onTimer: () => {},
    onFatal: (e) => log.push(`fatal ${(e as Error).message}`),
  })
  await failing.run([
    { kind: 'persist', record: { n: 3 } },
    { kind: 'send', to: 'c', message: hb('x') },
  ])
  await failing.run([{ kind: 'send', to: 'd', message: hb('x') }])
  t.ok(log.includes('fatal disk full'), 'the failure is reported')
  t.notOk(
    log.some((l) => l.startsWith('send2')),
    'nothing after a failed persist is sent, then or later',
  )
})

t.test('cluster driver: at its batch bound it admits no more inputs, logs once, and admits again once drained', async (t) => {
  const clock = new ManualClock(0)
  const warnings: string[] = []
  let release!: () => void
  const runner = batchDriver<{ n: number }>(
    {
      clock,
      send: () => {},
      persist: () => new Promise<void>((res) => (release = res)),
      emit: () => {},
      onTimer: () => {},
      onFatal: () => {},
    },
    { batches_max: 3, log: { warn: (_o, m) => warnings.push(m) } },
  )
  const admitted: Promise<void>[] = []
  for (let i = 0; i < 10; i++) if (runner.admits()) admitted.push(runner.run([{ kind: 'persist', record: { n: i } }]))
  t.equal(admitted.length, 3, 'three batches admitted while the first persist is stuck, seven refused')
  t.equal(runner.backlog, 3)
  t.equal(warnings.length, 1, 'one warning for the whole run of drops')
  for (let i = 0; i < 3 && runner.backlog > 0; i++) {
    await flush()
    release()
  }
  await Promise.all(admitted)
  t.equal(runner.backlog, 0)
  t.ok(runner.admits(), 'admits again once drained')
  t.equal(warnings.length, 2, 'and says so once, with the count dropped')
})

t.test("ClusterService: a command at the bound is refused with HVLAB_E_BACKPRESSURE; peers' messages are dropped", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'hvlab-cluster-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const clock = new ManualClock(1_000_000)
  const warnings: string[] = []
  const s = await ClusterService.open({
    config: membershipConfig(ONE_HOST, 'host-a1'),
    clock,
    data_dir: dir,
    send: () => {},
    isConnected: () => false,
    emitEvent: () => {},
    log: { info: () => {}, warn: (_o, m) => warnings.push(m), error: () => {} },
    inputs_queued_max: 1,
    onFatal: (e) => {
      throw e
    },
  })
  s.start() // one batch queued: its persist is under way
  t.throws(
    () => s.command({ kind: 'force-quorum' }),
    { code: 'HVLAB_E_BACKPRESSURE' },
    'a command is refused while the queue is at its bound',
  )
  s.receive(hb('host-b1'), 'host-b1')
  t.match(warnings.join('\n'), /effect queue full/, 'a peer message at the bound is dropped and said so')
  await s.stop()
})

t.test('cluster driver: one tick timer, re-armed by each set-timer', async (t) => {
  const clock = new ManualClock(0)
  let ticks = 0
  const runner = batchDriver<object>({
    clock,
    send: () => {},
    persist: async () => {},
    emit: () => {},
    onTimer: () => ticks++,
    onFatal: () => {},
  })
  await runner.run([{ kind: 'set-timer', at_ms: 100, token: 'tick' }])
  await runner.run([{ kind: 'set-timer', at_ms: 50, token: 'tick' }])
  clock.advance(200)
  t.equal(ticks, 1, 'the earlier timer was replaced')
  t.equal(clock.pendingTimers(), 0)
})

const ONE_HOST = parseTopology({
  name: 'one',
  sites: [{ name: 'site-a' }],
  hosts: [{ name: 'host-a1', site: 'site-a' }],
  quorum: { model: 'node-majority' },
  heartbeat: { sameSite: { interval_ms: 100, missed_max: 5 }, crossSite: { interval_ms: 100, missed_max: 5 } },
})

async function openHost(dir: string, clock: ManualClock, warnings: string[], events: string[]): Promise<ClusterService> {
  return ClusterService.open({
    config: membershipConfig(ONE_HOST, 'host-a1'),
    clock,
    data_dir: dir,
    send: () => {},
    isConnected: () => false,
    emitEvent: (kind) => events.push(kind),
    log: { info: () => {}, warn: (_o, m) => warnings.push(m), error: () => {} },
    inputs_queued_max: 4096,
    onFatal: (e) => {
      throw e
    },
  })
}

async function runFor(clock: ManualClock, ms: number): Promise<void> {
  for (let elapsed = 0; elapsed < ms; elapsed += 50) {
    clock.advance(50)
    await flush()
  }
}

t.test('ClusterService: forms a view, writes cluster.json, comes back from it; refuses a forged sender', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'hvlab-cluster-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const clock = new ManualClock(1_000_000)
  const warnings: string[] = []
  const events: string[] = []
  const s1 = await openHost(dir, clock, warnings, events)
  t.equal(s1.restored, false, 'no record yet')
  s1.start()
  await runFor(clock, 5000)
  t.equal(s1.status().holds_lease, true, 'a one-host cluster forms with node majority')
  t.equal(s1.status().nodes[0]?.state, 'Up')
  t.ok(events.includes('cluster.view-changed') && events.includes('cluster.quorum-gained'), 'view and quorum events reach the timeline')
  const onDisk = JSON.parse(readFileSync(join(dir, 'cluster.json'), 'utf8')) as { view: { epoch: number } }
  t.equal(onDisk.view.epoch, s1.status().epoch, 'the record on disk has the current epoch')

  s1.receive(hb('host-a1'), 'host-b9')
  t.match(warnings.join('\n'), /sender is not the connected peer/, 'a message whose from is not the peer is dropped')

  await s1.stop()
  const epoch = s1.status().epoch
  const s2 = await openHost(dir, clock, warnings, events)
  t.equal(s2.restored, true, 'restored from cluster.json')
  t.equal(s2.status().epoch, epoch, 'same epoch as before the restart')
  t.equal(s2.status().holds_lease, false, 'a restarted host holds no lease until the cluster confirms it')
  s2.start()
  await runFor(clock, 5000)
  t.equal(s2.status().holds_lease, true, 'it has quorum again')
  t.ok(s2.status().epoch >= epoch, 'in its old view or a newer one, never an older one')
  await s2.stop()
})

t.test('ClusterService: a damaged record stops the host with a clear message', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'hvlab-cluster-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const { writeFileSync } = await import('node:fs')
  writeFileSync(join(dir, 'cluster.json'), JSON.stringify({ view: 'nonsense' }))
  await t.rejects(openHost(dir, new ManualClock(0), [], []), /cluster\.json is damaged .*move it away/)
})

t.test('flattenEventDetails: timeline details stay flat', async (t) => {
  t.same(flattenEventDetails({ a: 1, b: 'x', c: null, d: ['p', 'q'], e: { n: 1, node: 'h' } }), {
    a: 1,
    b: 'x',
    c: null,
    d: ['p', 'q'],
    e: '{"n":1,"node":"h"}',
  })
})
