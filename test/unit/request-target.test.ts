/** Reading an HTTP request target without throwing: only the origin form is served. */
import t from 'tap'
import { decodePathSegment, parseRequestTarget } from '../../shared/request-target.js'

t.test('origin-form targets: path and query', (t) => {
  const r = parseRequestTarget('/v1/events?after=3&follow=1')
  t.ok(r.ok)
  if (r.ok) {
    t.equal(r.path, '/v1/events')
    t.equal(r.query.get('after'), '3')
    t.equal(r.query.get('follow'), '1')
  }
  t.match(parseRequestTarget('/'), { ok: true, path: '/' })
  const odd = parseRequestTarget('/v1/events?after=%zz')
  t.ok(odd.ok && odd.query.get('after') === '%zz', 'a bad escape in the query is kept as written')
  t.end()
})

t.test('every other form is refused with a reason, never thrown', (t) => {
  for (const target of [
    'http://x:99999/',
    'http://[/',
    '//x:99999/',
    'http://%zz/',
    '*',
    'x:1',
    '',
    undefined,
    'http://127.0.0.1/v1/status',
  ]) {
    const r = parseRequestTarget(target)
    t.equal(r.ok, false, JSON.stringify(target))
    if (!r.ok) t.match(r.reason, /is not a path/)
  }
  const long = parseRequestTarget('x'.repeat(10_000))
  t.ok(!long.ok && long.reason.length < 200, 'the reason quotes a bounded piece of the target')
  t.end()
})

t.test('path segments: decoded, or undefined when an escape is malformed', (t) => {
  t.equal(decodePathSegment('host-a1'), 'host-a1')
  t.equal(decodePathSegment('a%20b'), 'a b')
  t.equal(decodePathSegment('%E0%A4%A'), undefined)
  t.equal(decodePathSegment('%zz'), undefined)
  t.end()
})
