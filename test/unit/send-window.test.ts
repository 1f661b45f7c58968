/**
 * The source's send window: bytes in flight (reserved, not reported applied) stay within
 * it; callers wait in turn; a report cannot shrink what was applied nor claim more than was
 * sent; one batch larger than the window goes once nothing is in flight; close ends waits.
 */
import { setImmediate as tick } from 'node:timers/promises'
import t from 'tap'
import { SendWindow } from '../../agent/migration/send-window.js'

/** Whether the promise has settled after the pending callbacks ran. */
async function settled(p: Promise<void>): Promise<boolean> {
  let done = false
  void p.then(() => (done = true))
  await tick()
  return done
}

t.test('bytes in flight stay within the window; applied reports make room for the waiters, in turn', async (t) => {
  const w = new SendWindow(100)
  t.ok(await settled(w.reserve(60)), 'fits at once')
  const second = w.reserve(60)
  const third = w.reserve(10)
  t.notOk(await settled(second), '60 + 60 is over 100: waits')
  t.notOk(await settled(third), 'a later, smaller batch waits its turn')
  w.applied(20)
  t.ok(await settled(second), '40 in flight + 60 fits exactly')
  t.notOk(await settled(third), '100 in flight: the next waits')
  t.equal(w.in_flight_bytes, 100)
  w.applied(30) // 30 applied of 120: 90 in flight
  t.ok(await settled(third))
  t.equal(w.in_flight_bytes, 100, 'the third counts as sent once it went')
})

t.test('reports never lower what was applied, nor raise it past what was sent', async (t) => {
  const w = new SendWindow(100)
  await w.reserve(100)
  w.applied(60)
  w.applied(30) // late or out of order
  t.equal(w.in_flight_bytes, 40, 'a lower report changes nothing')
  w.applied(10_000) // a destination claiming more than it got
  t.equal(w.in_flight_bytes, 0, 'applied is at most what was sent')
  await w.reserve(100)
  t.equal(w.in_flight_bytes, 100, 'the claim bought no extra window')
  t.notOk(await settled(w.reserve(1)), 'a full window waits')
})

t.test('a batch larger than the window goes once nothing is in flight', async (t) => {
  const w = new SendWindow(100)
  t.ok(await settled(w.reserve(500)), 'nothing in flight: it goes')
  const next = w.reserve(1)
  t.notOk(await settled(next))
  w.applied(500)
  t.ok(await settled(next))
})

t.test('close ends every wait', async (t) => {
  const w = new SendWindow(10)
  await w.reserve(10)
  const waits = [w.reserve(5), w.reserve(5)]
  t.notOk(await settled(waits[0] as Promise<void>))
  w.close()
  t.ok(await settled(Promise.all(waits).then(() => undefined)), 'both ended')
  t.ok(await settled(w.reserve(1000)), 'and later ones do not wait')
  t.throws(() => new SendWindow(0), { code: 'HVLAB_E_INTERNAL' })
})
