/**
 * The controller's policy for errors nothing caught: log (fatal) and keep serving; more
 * than UNEXPECTED_ERRORS_MAX within UNEXPECTED_ERRORS_WINDOW_MS abort the lab once, with
 * the reason on the timeline. Driven on a plain emitter, with time as an input.
 */
import t from 'tap'
import { EventEmitter } from 'node:events'
import {
  ErrorBurst,
  UNEXPECTED_ERRORS_MAX,
  UNEXPECTED_ERRORS_WINDOW_MS,
  installErrorPolicy,
} from '../../scripts/controller/error-policy.js'
import { silentLogger } from '../../shared/log.js'

type TapTest = Parameters<Parameters<typeof t.test>[0]>[0]

function setup(t: TapTest, options: { recordFails?: boolean } = {}) {
  const target = new EventEmitter()
  const seen = {
    records: [] as { kind: string; details: Record<string, unknown> }[],
    aborts: [] as string[],
    exits: [] as number[],
    now_ms: 0,
  }
  const remove = installErrorPolicy({
    log: silentLogger(),
    record: (kind, details) => {
      if (options.recordFails) throw new Error('ENOSPC: no space left on device')
      seen.records.push({ kind, details })
    },
    abort: (reason) => void seen.aborts.push(reason),
    exit: (code) => void seen.exits.push(code),
    now_ms: () => seen.now_ms,
    target,
  })
  t.teardown(remove)
  return { target, seen, remove }
}

t.test('ErrorBurst: at the limit it holds; one more within the window exceeds it; older errors age out', (t) => {
  const burst = new ErrorBurst(3, 1000)
  t.same([burst.record(0), burst.record(10), burst.record(20)], [false, false, false], '3 errors: at the limit')
  t.equal(burst.record(999), true, 'a 4th within 1000 ms')
  const spaced = new ErrorBurst(3, 1000)
  t.same(
    Array.from({ length: 20 }, (_, i) => spaced.record(i * 400)),
    Array.from({ length: 20 }, () => false),
    'one every 400 ms never exceeds 3 per 1000 ms',
  )
  t.end()
})

t.test('an uncaught exception or unhandled rejection is logged and recorded, and the controller keeps serving', (t) => {
  const { target, seen } = setup(t)
  target.emit('uncaughtException', new TypeError('Invalid URL'))
  target.emit('unhandledRejection', new Error('appendFileSync failed'))
  target.emit('unhandledRejection', 'a string')
  t.same(
    seen.records.map((r) => [r.kind, r.details.origin, r.details.error]),
    [
      ['controller.error', 'uncaughtException', 'Invalid URL'],
      ['controller.error', 'unhandledRejection', 'appendFileSync failed'],
      ['controller.error', 'unhandledRejection', 'a string'],
    ],
  )
  t.same(seen.aborts, [], 'no abort')
  t.same(seen.exits, [], 'no exit')
  t.end()
})

t.test(
  `more than ${UNEXPECTED_ERRORS_MAX} within ${UNEXPECTED_ERRORS_WINDOW_MS} ms abort the lab once, with the reason on the timeline`,
  (t) => {
    const { target, seen } = setup(t)
    for (let i = 0; i < UNEXPECTED_ERRORS_MAX; i++) target.emit('uncaughtException', new Error(`bug ${i}`))
    t.same(seen.aborts, [], `${UNEXPECTED_ERRORS_MAX}: still serving`)
    seen.now_ms = UNEXPECTED_ERRORS_WINDOW_MS - 1
    target.emit('uncaughtException', new Error('one too many'))
    t.equal(seen.aborts.length, 1, 'aborted')
    t.match(seen.aborts[0], new RegExp(`more than ${UNEXPECTED_ERRORS_MAX} unexpected errors within ${UNEXPECTED_ERRORS_WINDOW_MS} ms`))
    t.match(seen.records.at(-1), { kind: 'lab.aborting', details: { reason: seen.aborts[0] } })
    target.emit('uncaughtException', new Error('while aborting'))
    t.equal(seen.aborts.length, 1, 'an error while aborting does not abort again')
    t.equal(seen.records.at(-1)?.kind, 'controller.error', 'but it is still recorded')
    t.end()
  },
)

t.test('errors spread out in time never abort', (t) => {
  const { target, seen } = setup(t)
  for (let i = 0; i < 50; i++) {
    seen.now_ms = i * (UNEXPECTED_ERRORS_WINDOW_MS / UNEXPECTED_ERRORS_MAX)
    target.emit('unhandledRejection', new Error(`slow bug ${i}`))
  }
  t.same(seen.aborts, [])
  t.end()
})

t.test('a timeline that cannot be written (full disk) does not stop the policy', (t) => {
  const { target, seen } = setup(t, { recordFails: true })
  for (let i = 0; i <= UNEXPECTED_ERRORS_MAX; i++) target.emit('uncaughtException', new Error(`bug ${i}`))
  t.equal(seen.aborts.length, 1, 'it still aborts')
  t.end()
})

t.test('removing the policy stops listening', (t) => {
  const { target, remove } = setup(t)
  remove()
  t.equal(target.listenerCount('uncaughtException'), 0)
  t.equal(target.listenerCount('unhandledRejection'), 0)
  t.end()
})
