import t from 'tap'
import { silentLogger } from '../../shared/log.js'
import { LogRateLimit, warnLimited, type WarnLog } from '../../shared/log-rate-limit.js'

const run = (limit: LogRateLimit, times_ms: number[]) => times_ms.map((at) => limit.take(at))

t.test('at most lines_per_s lines in a second; the rest are counted', async (t) => {
  const limit = new LogRateLimit(3, 'refusals')
  const first = run(limit, [1000, 1001, 1002, 1003, 1500, 1999])
  t.same(
    first.map((d) => d.write),
    [true, true, true, false, false, false],
    'three written, three not',
  )
  t.ok(
    first.every((d) => d.notLogged === 0),
    'nothing to report yet',
  )
  t.equal(limit.pending, 3)
  const next = limit.take(2000)
  t.same(next, { write: true, notLogged: 3 }, 'the first line of the next second says how many were not logged')
  t.equal(limit.pending, 0)
  t.same(limit.take(2001), { write: true, notLogged: 0 }, 'and only once')
})

t.test('at exactly the limit nothing is dropped', async (t) => {
  const limit = new LogRateLimit(10, 'refusals')
  for (let second = 0; second < 5; second++) {
    const ds = run(
      limit,
      Array.from({ length: 10 }, (_, i) => second * 1000 + i * 99),
    )
    t.ok(
      ds.every((d) => d.write && d.notLogged === 0),
      `second ${second}: all 10 written`,
    )
  }
  t.same(limit.take(4999), { write: false, notLogged: 0 }, 'the 11th in a second is not')
})

t.test('a flood: one second’s worth written, every other line counted', async (t) => {
  const limit = new LogRateLimit(10, 'refusals')
  const ds = run(
    limit,
    Array.from({ length: 10_000 }, (_, i) => 5000 + i / 20),
  ) // 10,000 in 500 ms
  t.equal(ds.filter((d) => d.write).length, 10)
  t.equal(limit.pending, 9990)
  t.same(limit.take(6000), { write: true, notLogged: 9990 })
})

t.test('windows are whole seconds from their first line; a clock that steps back starts a new one', async (t) => {
  const limit = new LogRateLimit(1, 'refusals')
  t.same(
    run(limit, [100, 900, 1099]).map((d) => d.write),
    [true, false, false],
    'the window runs from 100 to 1100',
  )
  t.same(limit.take(1100), { write: true, notLogged: 2 })
  t.same(limit.take(50), { write: true, notLogged: 0 }, 'time went back: a new window')
})

t.test('lines_per_s must be a positive integer', async (t) => {
  t.throws(() => new LogRateLimit(0, 'refusals'), RangeError)
  t.throws(() => new LogRateLimit(1.5, 'refusals'), RangeError)
})

t.test('warnLimited: the lines allowed, each after the summary of those held back', async (t) => {
  const written: [Record<string, unknown>, string][] = []
  const log = { warn: (fields: Record<string, unknown>, msg: string) => void written.push([fields, msg]) }
  const limit = new LogRateLimit(2, 'refusals')
  for (const at of [0, 1, 2, 3, 4]) warnLimited(limit, log, at, { code: 'HVLAB_E_AUTH', n: at }, 'refusing connection')
  warnLimited(limit, log, 1000, { code: 'HVLAB_E_AUTH', n: 5 }, 'refusing connection')
  t.same(written, [
    [{ code: 'HVLAB_E_AUTH', n: 0 }, 'refusing connection'],
    [{ code: 'HVLAB_E_AUTH', n: 1 }, 'refusing connection'],
    [{ notLogged: 3 }, '3 more refusals not logged'],
    [{ code: 'HVLAB_E_AUTH', n: 5 }, 'refusing connection'],
  ])
})

t.test('a pino logger is a WarnLog', async (t) => {
  const log: WarnLog = silentLogger()
  warnLimited(new LogRateLimit(1, 'refusals'), log, 0, { code: 'HVLAB_E_AUTH' }, 'refusing connection')
  t.pass('type-checks and writes')
})
