/**
 * The MachineDriver (shared/machine/driver.ts) on a toy machine: effects run in order
 * through the handler of their kind, a persist finishes before any effect after it,
 * persists coalesce when asked, everything happens inside `feed` when the handlers are
 * synchronous, the input bound logs once per run of drops, and the three ways a failure
 * ends (fatal, reported, rejected).
 */
import t from 'tap'
import { MachineDriver, type EffectHandlers, type MachineDriverOptions } from '../../shared/machine/driver.js'
import type { EmitEffect, PersistEffect, SendEffect } from '../../shared/machine/effect.js'

type Fx = SendEffect<string> | PersistEffect<number> | EmitEffect<string>

const flush = (): Promise<void> => new Promise((r) => setTimeout(r, 5))

/** A machine that answers input n with the effects `script(n)`, and a log of what ran. */
function toy(
  script: (n: number) => Fx[],
  handlers: Partial<EffectHandlers<Fx>> = {},
  options: Partial<MachineDriverOptions<number, Fx>> = {},
) {
  const log: string[] = []
  const driver = new MachineDriver<number, Fx>({
    step: (n) => {
      log.push(`step ${n}`)
      return script(n)
    },
    handlers: {
      send: (e) => void log.push(`send ${e.to} ${e.message}`),
      persist: (e) => void log.push(`persist ${e.record}`),
      emit: (e) => void log.push(`emit ${e.event}`),
      ...handlers,
    },
    ...options,
  })
  return { driver, log }
}

t.test('synchronous handlers: every step and effect happens inside feed, in order', async (t) => {
  const { driver, log } = toy((n) => [
    { kind: 'send', to: 'a', message: `m${n}` },
    { kind: 'persist', record: n },
    { kind: 'emit', event: `e${n}` },
  ])
  driver.feed(1)
  driver.feed(2)
  t.same(log, ['step 1', 'send a m1', 'persist 1', 'emit e1', 'step 2', 'send a m2', 'persist 2', 'emit e2'], 'no event-loop turn needed')
  t.equal(driver.backlog, 0)
})

t.test('an input fed by a handler runs after the current step’s effects', async (t) => {
  const { driver, log } = toy(
    (n) =>
      n === 1
        ? [
            { kind: 'send', to: 'self', message: 'again' },
            { kind: 'emit', event: 'after' },
          ]
        : [],
    { send: () => driver.feed(2) },
  )
  driver.feed(1)
  t.same(log, ['step 1', 'emit after', 'step 2'])
})

t.test('a persist finishes before any effect after it, and before the next input steps', async (t) => {
  let release!: () => void
  const { driver, log } = toy(
    (n) => [
      { kind: 'send', to: 'a', message: `m${n}` },
      { kind: 'persist', record: n },
      { kind: 'send', to: 'b', message: `m${n}` },
    ],
    {
      persist: (e) => {
        log.push(`persist ${e.record} start`)
        return new Promise<void>((res) => (release = () => (log.push(`persist ${e.record} done`), res())))
      },
    },
  )
  const first = driver.feedSettled(1)
  driver.feed(2)
  t.same(log, ['step 1', 'send a m1', 'persist 1 start'], 'the rest waits for the write')
  t.equal(driver.backlog, 2)
  release()
  await first
  await flush()
  t.same(log.slice(3), ['persist 1 done', 'send b m1', 'step 2', 'send a m2', 'persist 2 start'])
  release()
  await flush()
  t.same(log.slice(-2), ['persist 2 done', 'send b m2'])
  t.equal(driver.backlog, 0)
})

t.test('coalescing: the newest record admitted is written once; step_at admission steps in feed', async (t) => {
  const written: number[] = []
  let release: (() => void) | undefined
  const { driver, log } = toy(
    (n) => [
      { kind: 'persist', record: n },
      { kind: 'emit', event: `e${n}` },
    ],
    {
      persist: (e) => {
        written.push(e.record)
        return new Promise<void>((res) => (release = res))
      },
    },
    { coalesce_persists: true, step_at: 'admission', defer_start: true },
  )
  driver.feed(1)
  driver.feed(2)
  driver.feed(3)
  t.same(log, ['step 1', 'step 2', 'step 3'], 'stepped at once; effects start on the next microtask')
  await flush()
  t.same(written, [3], 'the first persist writes the newest record')
  release?.()
  await flush()
  t.same(written, [3], 'the later persists are covered by it')
  t.same(log.slice(3), ['emit e1', 'emit e2', 'emit e3'])
})

t.test('the bound: admits() says no at batches_max, logs once per run of drops, and yes again once drained', async (t) => {
  const warnings: string[] = []
  let release: (() => void) | undefined
  const { driver } = toy(
    (n) => [{ kind: 'persist', record: n }],
    { persist: () => new Promise<void>((res) => (release = res)) },
    {
      bound: { batches_max: 2, log: { warn: (_o, m) => warnings.push(m) } },
    },
  )
  let admitted = 0
  for (let i = 0; i < 5; i++) if (driver.admits()) (driver.feed(i), admitted++)
  t.equal(admitted, 2)
  t.equal(driver.backlog, 2)
  t.same(warnings, ['effect queue full (its persists are slow); dropping inputs until it drains'])
  release?.()
  await flush()
  release?.()
  await flush()
  t.equal(driver.backlog, 0)
  t.ok(driver.admits())
  t.same(warnings.slice(1), ['inputs admitted again; the effect queue has room'])
})

t.test('onFatal: a failed effect stops the driver for good', async (t) => {
  const fatal: string[] = []
  const { driver, log } = toy(
    (n) => [
      { kind: 'persist', record: n },
      { kind: 'send', to: 'a', message: `m${n}` },
    ],
    { persist: () => Promise.reject(new Error('disk full')) },
    { onFatal: (e) => fatal.push((e as Error).message) },
  )
  await driver.feedSettled(1)
  driver.feed(2)
  await flush()
  t.same(fatal, ['disk full'])
  t.same(log, ['step 1'], 'nothing after the failed persist, then or later')
})

t.test('onFailed: a failed step is reported and the next input runs; without it feedSettled rejects', async (t) => {
  const failed: string[] = []
  const script = (n: number): Fx[] => {
    if (n === 1) throw new Error('refused')
    return [{ kind: 'emit', event: `e${n}` }]
  }
  const reported = toy(script, {}, { onFailed: (e, input) => failed.push(`${input}: ${(e as Error).message}`) })
  reported.driver.feed(1)
  reported.driver.feed(2)
  t.same(failed, ['1: refused'])
  t.same(reported.log, ['step 1', 'step 2', 'emit e2'])

  const plain = toy(script)
  await t.rejects(plain.driver.feedSettled(1), { message: 'refused' })
  await plain.driver.feedSettled(2)
  t.same(plain.log, ['step 1', 'step 2', 'emit e2'], 'the next input runs after a rejected one')

  const admission = toy(script, {}, { step_at: 'admission' })
  t.throws(() => admission.driver.feed(1), { message: 'refused' }, 'step_at admission: a refusal throws to the caller')
})

t.test('stop: nothing more runs; onStop is called', async (t) => {
  let stopped = 0
  const { driver, log } = toy((n) => [{ kind: 'emit', event: `e${n}` }], {}, { onStop: () => stopped++ })
  driver.feed(1)
  await driver.stop()
  driver.feed(2)
  await driver.run([{ kind: 'emit', event: 'late' }])
  t.same(log, ['step 1', 'emit e1'])
  t.equal(stopped, 1)
})

t.test('at_once: a liveness send leaves as the machine steps, never behind a slow persist', async (t) => {
  let release!: () => void
  const { driver, log } = toy(
    (n) => [
      { kind: 'send', to: 'a', message: `beat${n}`, liveness: true },
      { kind: 'persist', record: n },
      { kind: 'send', to: 'b', message: `ack${n}` },
    ],
    {
      persist: (e) => {
        log.push(`persist ${e.record} start`)
        return new Promise<void>((res) => (release = () => (log.push(`persist ${e.record} done`), res())))
      },
    },
    { step_at: 'admission', coalesce_persists: true, at_once: (e) => e.kind === 'send' && e.liveness === true },
  )
  driver.feed(1)
  await flush()
  driver.feed(2)
  t.same(
    log,
    ['step 1', 'send a beat1', 'persist 1 start', 'step 2', 'send a beat2'],
    'the second heartbeat went while the first write was still under way; the ordered ack waits',
  )
  release()
  await flush()
  release()
  await flush()
  t.same(
    log.slice(5),
    ['persist 1 done', 'send b ack1', 'persist 2 start', 'persist 2 done', 'send b ack2'],
    'the rest in order, after the writes',
  )
})
