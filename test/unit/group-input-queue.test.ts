/**
 * A Remote Copy group's input queue at its bound (rc_group_inputs_queued_max): inputs run
 * one at a time in order; beyond the bound an input from hosts/the operator or from the
 * partner is refused at once with HVLAB_E_BACKPRESSURE, each origin with its own places;
 * the array's own inputs are never refused.
 */
import t from 'tap'
import { GroupInputQueue } from '../../array-emulator/group-input-queue.js'

const MAX = 4

/** A job that runs until `release` is called, recording the order jobs ran in. */
function gate(): { release: () => void; job: (name: string, ran: string[]) => () => Promise<string> } {
  let open!: () => void
  const opened = new Promise<void>((r) => (open = r))
  return {
    release: () => open(),
    job: (name, ran) => async () => {
      ran.push(name)
      await opened
      return name
    },
  }
}

t.test(
  'at the bound: the next input from the same origin is refused with HVLAB_E_BACKPRESSURE; other origins still have their places',
  async (t) => {
    const q = new GroupInputQueue('rc1', MAX)
    const g = gate()
    const ran: string[] = []
    const accepted = Array.from({ length: MAX }, (_, i) => q.run('caller', g.job(`c${i}`, ran)))
    t.equal(q.queuedFrom('caller'), MAX, 'the bound is reached')
    await t.rejects(q.run('caller', g.job('over', ran)), {
      code: 'HVLAB_E_BACKPRESSURE',
      message: /rc1 has 4 inputs from hosts and the operator waiting/,
    })
    const partner = q.run('partner', g.job('p0', ran))
    const internal = Array.from({ length: MAX + 2 }, (_, i) => q.run('internal', g.job(`i${i}`, ran)))
    t.equal(q.queuedFrom('partner'), 1, 'the partner has its own places')
    g.release()
    t.same(
      await Promise.all([...accepted, partner, ...internal]),
      ['c0', 'c1', 'c2', 'c3', 'p0', 'i0', 'i1', 'i2', 'i3', 'i4', 'i5'],
      'every accepted input ran, in arrival order',
    )
    t.same(ran, ['c0', 'c1', 'c2', 'c3', 'p0', 'i0', 'i1', 'i2', 'i3', 'i4', 'i5'], 'the refused one never ran')
    t.equal(q.queuedFrom('caller'), 0, 'places are given back as inputs finish')
    t.equal(await q.run('caller', async () => 'again'), 'again', 'below the bound again: accepted')
  },
)

t.test('a partner at the bound is refused too, and a failing input gives its place back', async (t) => {
  const q = new GroupInputQueue('rc1', 1)
  const g = gate()
  const first = q.run('partner', g.job('p0', []))
  await t.rejects(
    q.run('partner', async () => 'p1'),
    { code: 'HVLAB_E_BACKPRESSURE', message: /from its partner array/ },
  )
  g.release()
  await first
  await t.rejects(
    q.run('partner', async () => Promise.reject(new Error('step refused'))),
    /step refused/,
  )
  t.equal(q.queuedFrom('partner'), 0)
  t.equal(await q.run('partner', async () => 'p2'), 'p2')
})

t.test('a bound that is not a positive integer is refused', async (t) => {
  t.throws(() => new GroupInputQueue('rc1', 0), { code: 'HVLAB_E_USAGE' })
})
