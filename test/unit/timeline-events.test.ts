/**
 * The timeline's one vocabulary (shared/timeline/): every kind is declared with a schema
 * of its details, a good event passes, and an unknown kind, a wrong detail type, an extra
 * detail or one beyond its bound is refused with its stable code. The emitters' kinds are
 * checked by the type-check (`emitEvent<K extends EventKind>`); a scan of the sources here
 * also finds every literal kind an emitter names and checks that it is declared.
 */
import t from 'tap'
import { readdirSync, readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { z } from 'zod'
import { EVENT_KIND_PATTERN } from '../../shared/timeline/details.js'
import { checkEventDetails, EVENT_KINDS, EVENT_SCHEMAS, isEventKind, type DetailsOf } from '../../shared/timeline/events.js'

const ROOT = fileURLToPath(new URL('../../', import.meta.url))

t.test('every declared kind has a strict schema and a family-dotted, bounded name', async (t) => {
  t.ok(EVENT_KINDS.length > 100, `${EVENT_KINDS.length} kinds`)
  for (const kind of EVENT_KINDS) {
    t.match(kind, EVENT_KIND_PATTERN, `${kind}: its name fits the wire's pattern`)
    t.match(kind, /^[a-z]+\.[a-z0-9-]+$/, `${kind}: family.event`)
    t.ok(EVENT_SCHEMAS[kind] instanceof z.ZodObject, `${kind}: has a schema`)
    t.notOk(EVENT_SCHEMAS[kind].safeParse({ __extra__: 1 }).success, `${kind}: an undeclared detail is refused`)
  }
})

t.test('a good event passes, as it was given', async (t) => {
  const details: DetailsOf<'cluster.view-changed'> = {
    epoch: 3,
    members: ['host-a1', 'host-b1'],
    voters: ['host-a1', 'host-b1'],
    witness_vote: true,
    coordinator: 'host-a1',
    forced: false,
    db_epoch: 12,
    removed: [],
    leases_end_ms: 1000,
    removed_lease_end_ms: 900,
    roles_free_at_ms: 1234.5,
  }
  const r = checkEventDetails('cluster.view-changed', details)
  t.ok(r.ok)
  if (r.ok) t.equal(r.event.details, details, 'the details as sent: their key order (and bytes on the timeline) kept')
  t.ok(checkEventDetails('lab.stopped', {}).ok, 'a kind without details')
  t.ok(checkEventDetails('cluster.node-down', { node: 'host-a1' }).ok, 'an optional detail left out')
  t.ok(checkEventDetails('cluster.node-down', { node: 'host-a1', reason: 'left' }).ok, 'and given')
  t.ok(checkEventDetails('process.started', { process: 'host-a1', role: 'host', site: 'a', pid: null }).ok, 'a nullable detail')
  t.ok(checkEventDetails('cluster.election-started', { slot: 2, ballot: '{"n":3,"node":"host-b1"}' }).ok, 'a ballot as its JSON text')
})

t.test('refusals carry a stable code', async (t) => {
  t.match(checkEventDetails('no.such-kind', {}), { ok: false, code: 'unknown-kind' })
  t.match(checkEventDetails('toString', {}), { ok: false, code: 'unknown-kind' }, 'not an inherited property either')
  t.match(checkEventDetails('peer.connected', { peer: 7 }), { ok: false, code: 'bad-details', reason: /peer/ }, 'a wrong type')
  t.match(checkEventDetails('peer.connected', {}), { ok: false, code: 'bad-details' }, 'a missing detail')
  t.match(checkEventDetails('peer.connected', { peer: 'host-a1', extra: 1 }), { ok: false, code: 'bad-details' }, 'an extra detail')
  t.match(checkEventDetails('peer.lost', { peer: 'host-a1', reason: 'x'.repeat(4097) }), { ok: false, code: 'oversize' }, 'a long string')
  const names = Array.from({ length: 65 }, (_, i) => `host-${i}`)
  t.match(checkEventDetails('network.partitioned', { a: names, b: [] }), { ok: false, code: 'oversize' }, 'a long list')
  const many = Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`k${i}`, i]))
  t.match(checkEventDetails('peer.connected', many), { ok: false, code: 'oversize' }, 'too many fields')
  t.match(checkEventDetails('peer.connected', null), { ok: false, code: 'bad-details' }, 'no details at all')
})

/** Every .ts file under the production folders. */
function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name)
    if (statSync(path).isDirectory()) return name === 'node_modules' ? [] : sources(path)
    return name.endsWith('.ts') ? [path] : []
  })
}

t.test('every literal kind an emitter names is declared', async (t) => {
  const emit = /\b(?:emitEvent|emit|event|record)\(\s*'([a-z]+\.[a-z0-9.-]+)'/g
  const pathKind = /\bkind: '([a-z]+\.[a-z0-9-]+)'/g
  const found = new Set<string>()
  for (const dir of ['agent', 'array-emulator', 'witness', 'shared', 'scripts']) {
    for (const file of sources(join(ROOT, dir))) {
      const text = readFileSync(file, 'utf8')
      for (const m of text.matchAll(emit)) found.add(m[1]!)
      for (const m of text.matchAll(pathKind)) found.add(m[1]!)
    }
  }
  t.ok(found.size > 80, `${found.size} kinds named in the sources`)
  t.same(
    [...found].filter((k) => !isEventKind(k)),
    [],
    'none undeclared',
  )
})
