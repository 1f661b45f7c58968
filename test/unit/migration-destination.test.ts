import t from 'tap'
import { MigrationDestination, type DestinationEffect } from '../../agent/migration/migration-destination.js'

const kinds = (effects: DestinationEffect[]): string[] => effects.map((e) => (e.kind === 'emit' ? `emit:${e.event.kind}` : e.kind))
const begin = { kind: 'begin', migration_id: 'm-1', vm: 'web1', page_count: 256, storage: 'csv', verify: true } as const

function receiving(): MigrationDestination {
  const d = new MigrationDestination({ host: 'host-b1', source: 'host-a1' })
  d.step(begin, 0)
  return d
}

t.test('happy path: allocate, rounds in order, blackout, resume and announce', async (t) => {
  const d = new MigrationDestination({ host: 'host-b1', source: 'host-a1' })
  const b = d.step(begin, 0)
  t.same(kinds(b), ['emit:migration.incoming', 'allocate-memory', 'reply'])
  t.match(b[1], { kind: 'allocate-memory', page_count: 256 })
  t.same(kinds(d.step({ kind: 'pages', round: 0, seq: 0, entries: 200 }, 1)), ['apply-batch'])
  t.same(kinds(d.step({ kind: 'pages', round: 0, seq: 1, entries: 56 }, 2)), ['apply-batch'])
  const ack = d.step({ kind: 'round-end', round: 0, batches: 2 }, 3)
  t.same(ack, [{ kind: 'reply', reply: { t: 'migration-round-ack', round: 0, batches: 2, pages: 256 } }])
  d.step({ kind: 'pages', round: 1, seq: 0, entries: 10 }, 4)
  t.same(d.step({ kind: 'round-end', round: 1, batches: 1 }, 5), [
    { kind: 'reply', reply: { t: 'migration-round-ack', round: 1, batches: 1, pages: 10 } },
  ])
  const prep = d.step({ kind: 'blackout', round: 2, batches: 0, device_state_bytes: 64 }, 6)
  t.same(kinds(prep), ['load-device-state', 'reply'])
  t.match(prep[1], { reply: { t: 'migration-prepared', verify: true } })
  t.equal(d.stage, 'prepared')
  const run = d.step({ kind: 'resume' }, 7)
  t.same(kinds(run), ['resume-guest', 'announce-location', 'emit:migration.resumed', 'reply'])
  t.match(run[1], { kind: 'announce-location', host: 'host-b1' })
  t.equal(d.stage, 'running')
  t.equal(d.pages_applied, 266)
  t.same(d.step({ kind: 'link-lost', reason: 'bye' }, 8), [], 'once running, the VM is ours: a lost link changes nothing')
})

t.test('a blackout that asks to resume runs the VM in the same step (no verify)', async (t) => {
  const d = new MigrationDestination({ host: 'host-b1', source: 'host-a1' })
  d.step({ ...begin, verify: false }, 0)
  d.step({ kind: 'pages', round: 0, seq: 0, entries: 3 }, 1)
  const run = d.step({ kind: 'blackout', round: 0, batches: 1, device_state_bytes: 64, resume: true }, 2)
  t.same(kinds(run), ['load-device-state', 'resume-guest', 'announce-location', 'emit:migration.resumed', 'reply'])
  t.match(run[4], { kind: 'reply', reply: { t: 'migration-running', host: 'host-b1' } })
  t.equal(d.stage, 'running')
  t.same(d.step({ kind: 'link-lost', reason: 'bye' }, 3), [], 'it runs here now: a lost link changes nothing')
  t.match(d.step({ kind: 'resume' }, 4), [{ kind: 'refuse', code: 'HVLAB_E_PROTOCOL' }], 'a second resume is refused')

  const verified = receiving() // verify: true
  const refused = verified.step({ kind: 'blackout', round: 0, batches: 0, device_state_bytes: 64, resume: true }, 1)
  t.same(
    kinds(refused),
    ['discard-vm', 'emit:migration.aborted', 'refuse'],
    'memory to verify is hashed paused: resuming at once is refused',
  )
  t.equal(verified.stage, 'aborted')
})

t.test('the source aborts or the link goes before resume: discard the skeleton VM', async (t) => {
  const a = receiving()
  a.step({ kind: 'pages', round: 0, seq: 0, entries: 1 }, 1)
  t.same(kinds(a.step({ kind: 'abort', reason: 'cancelled' }, 2)), ['discard-vm', 'emit:migration.aborted'])
  t.equal(a.stage, 'aborted')
  t.same(a.step({ kind: 'pages', round: 0, seq: 1, entries: 1 }, 3), [], 'late batches are dropped, not applied')

  const b = receiving()
  b.step({ kind: 'blackout', round: 0, batches: 0, device_state_bytes: 1 }, 1)
  t.same(kinds(b.step({ kind: 'link-lost', reason: 'cut' }, 2)), ['discard-vm', 'emit:migration.aborted'])
  t.match(b.abort_reason, /link to host-a1 was lost/)
})

t.test('out-of-order input aborts and refuses with the reason', async (t) => {
  const cases: [string, (d: MigrationDestination) => DestinationEffect[]][] = [
    ['a skipped batch', (d) => d.step({ kind: 'pages', round: 0, seq: 1, entries: 1 }, 1)],
    ['a batch of a future round', (d) => d.step({ kind: 'pages', round: 1, seq: 0, entries: 1 }, 1)],
    ['a round end with a wrong count', (d) => d.step({ kind: 'round-end', round: 0, batches: 3 }, 1)],
    ['resume before the blackout', (d) => d.step({ kind: 'resume' }, 1)],
    ['a blackout without device state', (d) => d.step({ kind: 'blackout', round: 0, batches: 0, device_state_bytes: 0 }, 1)],
  ]
  for (const [what, act] of cases) {
    const d = receiving()
    const effects = act(d)
    t.same(kinds(effects), ['discard-vm', 'emit:migration.aborted', 'refuse'], what)
    t.match(effects[2], { kind: 'refuse', code: 'HVLAB_E_PROTOCOL' }, what)
    t.equal(d.stage, 'aborted', what)
  }
})

t.test('a second begin is refused without touching the first', async (t) => {
  const d = receiving()
  t.match(d.step(begin, 1), [{ kind: 'refuse', code: 'HVLAB_E_STATE' }])
  t.equal(d.stage, 'receiving')
})
