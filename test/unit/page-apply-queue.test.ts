/**
 * The destination's ordered apply queue: batches applied one at a time in arrival order,
 * appliedSoFar() once all are in, a failure stops it (later batches dropped, onFailed once),
 * bounded bytes waiting. And LoopSlicer, which cuts the source's send loop.
 */
import { setImmediate as tick } from 'node:timers/promises'
import t from 'tap'
import { PageApplyQueue } from '../../agent/migration/page-apply-queue.js'
import { LoopSlicer } from '../../agent/migration/loop-slice.js'
import { HvlabError } from '../../shared/errors.js'

interface Harness {
  queue: PageApplyQueue
  /** First byte of each batch, as its apply call started. */
  started: number[]
  finished: number[]
  /** The batches of each apply call. */
  calls: number[][]
  failures: unknown[]
  /** Most apply calls running at once. */
  concurrent_max: number
  /** First byte of each batch applied on this thread (`here`). */
  here: number[]
}

/**
 * A queue whose apply takes a few event-loop turns and, like the pool, applies a call's
 * batches in order up to one whose first byte is 0xff (malformed), then fails.
 */
function harness(bytes_max = 1 << 20, group_bytes_max?: number): Harness {
  const h: Harness = {
    queue: undefined as unknown as PageApplyQueue,
    started: [],
    finished: [],
    calls: [],
    failures: [],
    concurrent_max: 0,
    here: [],
  }
  let running = 0
  h.queue = new PageApplyQueue({
    bytes_max,
    ...(group_bytes_max === undefined ? {} : { group_bytes_max }),
    onFailed: (e) => h.failures.push(e),
    applyHere: (b) => {
      if (running > 0) throw new Error('applied here while a worker call ran')
      if (b[0] === 0xff) throw new HvlabError('HVLAB_E_PROTOCOL', 'malformed page batch: test')
      h.here.push(b[0] as number)
      h.started.push(b[0] as number)
      h.finished.push(b[0] as number)
    },
    apply: async (batches) => {
      running++
      h.concurrent_max = Math.max(h.concurrent_max, running)
      const ids = batches.map((b) => b[0] as number)
      h.calls.push(ids)
      h.started.push(...ids)
      for (let i = 0; i < 1 + ((ids[0] as number) % 3); i++) await tick()
      running--
      for (const id of ids) {
        if (id === 0xff) throw new HvlabError('HVLAB_E_PROTOCOL', 'malformed page batch: test')
        h.finished.push(id)
      }
    },
  })
  return h
}

const batch = (id: number, bytes = 16): Uint8Array => new Uint8Array(bytes).fill(id)

t.test('batches are applied one at a time, in the order they came; appliedSoFar() once all are in', async (t) => {
  const h = harness()
  await h.queue.appliedSoFar() // nothing queued: at once
  for (let i = 0; i < 10; i++) h.queue.push(batch(i))
  t.equal(h.concurrent_max, 1, 'one at a time')
  await h.queue.appliedSoFar()
  t.same(h.finished, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], 'in arrival order')
  t.equal(h.queue.applied_batches, 10)
  t.equal(h.queue.queued_bytes, 0)
  h.queue.push(batch(20))
  h.queue.push(batch(21))
  await h.queue.appliedSoFar()
  t.same(h.finished.slice(10), [20, 21], 'a queue that went idle takes more')
  t.equal(h.concurrent_max, 1)
})

t.test('appliedSoFar() waits for the batches pushed before it, not for those pushed after', async (t) => {
  const h = harness(1 << 20, 16) // one batch a call: the later ones are still waiting when the first call returns
  for (const id of [3, 4]) h.queue.push(batch(id)) // a round's batches
  const round = h.queue.appliedSoFar().then(() => [...h.finished])
  for (const id of [5, 6, 7, 8]) h.queue.push(batch(id)) // the next round's, arriving before the first is applied
  t.same(await round, [3, 4], 'it resolved once its batches were applied, with the next round still waiting')
  const all = h.queue.appliedSoFar()
  const again = h.queue.appliedSoFar()
  await all
  t.same(h.finished, [3, 4, 5, 6, 7, 8])
  await again
  t.equal(h.queue.applied_batches, 6)
})

t.test('batches that waited go together in the next call, up to group_bytes_max', async (t) => {
  const h = harness(1 << 20, 48)
  for (let i = 0; i < 10; i++) h.queue.push(batch(i))
  await h.queue.appliedSoFar()
  t.same(h.calls, [[0], [1, 2, 3], [4, 5, 6], [7, 8, 9]], 'the first alone (nothing waited), then three of 16 bytes a call')
  t.equal(h.concurrent_max, 1, 'one call at a time')
  const big = harness(1 << 20, 8)
  big.queue.push(batch(1))
  big.queue.push(batch(2))
  await big.queue.appliedSoFar()
  t.same(big.calls, [[1], [2]], 'a batch larger than a group goes alone')
})

t.test("the blackout's batches are applied here, alone, behind every batch before them", async (t) => {
  const h = harness(1 << 20, 64)
  for (const id of [1, 2, 3]) h.queue.push(batch(id))
  for (const id of [10, 11]) h.queue.push(batch(id), false, true)
  h.queue.push(batch(4))
  h.queue.push(batch(12), false, true)
  await h.queue.appliedSoFar()
  t.same(h.finished, [1, 2, 3, 10, 11, 4, 12], 'in arrival order, worker calls and batches applied here alike')
  t.same(h.here, [10, 11, 12], 'the batches marked here were applied on this thread')
  t.same(h.calls, [[1], [2, 3], [4]], 'none of them went to a worker, nor joined a worker call')
  const bad = harness()
  for (const [id, here] of [
    [1, false],
    [0xff, true],
    [2, true],
  ] as const)
    bad.queue.push(batch(id), false, here)
  await bad.queue.appliedSoFar()
  t.same(bad.finished, [1], 'a malformed batch applied here stops the queue too')
  t.equal(bad.failures.length, 1)
})

t.test('a failed batch stops the queue: later batches are dropped, onFailed is called once', async (t) => {
  const h = harness(1 << 20, 16)
  for (const id of [1, 2, 0xff, 3, 4]) h.queue.push(batch(id))
  await h.queue.appliedSoFar()
  t.same(h.finished, [1, 2], 'the batches before it went in')
  t.same(h.started, [1, 2, 0xff], 'none after it started')
  t.equal(h.failures.length, 1)
  t.match(h.failures[0], { code: 'HVLAB_E_PROTOCOL' })
  h.queue.push(batch(5))
  await h.queue.appliedSoFar()
  t.same(h.started, [1, 2, 0xff], 'a stopped queue takes nothing more')
})

t.test('stop() drops what waits; the batch in a worker finishes; appliedSoFar() resolves', async (t) => {
  const h = harness(1 << 20, 16)
  for (const id of [1, 2, 3]) h.queue.push(batch(id))
  h.queue.stop()
  await h.queue.appliedSoFar()
  t.same(h.started, [1], 'only the batch already applying ran')
  t.same(h.failures, [], 'stopping is not a failure')
})

t.test('bytes waiting are bounded: beyond, push() refuses with HVLAB_E_BACKPRESSURE', async (t) => {
  const h = harness(64, 32)
  h.queue.push(batch(1, 32)) // starts at once: the first waits nowhere
  h.queue.push(batch(2, 32))
  h.queue.push(batch(3, 32))
  t.equal(h.queue.queued_bytes, 64)
  t.throws(() => h.queue.push(batch(4, 1)), { code: 'HVLAB_E_BACKPRESSURE', message: /faster than this host applies them/ })
  await h.queue.appliedSoFar()
  t.same(h.finished, [1, 2, 3])
})

t.test('a batch the transport handed over is kept, not copied, and counted by its whole buffer; any other is copied', async (t) => {
  const kept: Uint8Array[] = []
  const queue = new PageApplyQueue({
    bytes_max: 100,
    onFailed: () => t.fail('no failure'),
    applyHere: () => t.fail('nothing is applied here'),
    apply: async (batches) => {
      kept.push(...batches)
      await tick()
    },
  })
  const frame = new Uint8Array(40).fill(1) // header, then a 30-byte batch, as a frame's buffer
  const owned = frame.subarray(10)
  const lent = new Uint8Array(30).fill(2)
  queue.push(new Uint8Array(1)) // in a worker at once: the next ones wait
  queue.push(owned, true)
  queue.push(lent)
  t.equal(queue.queued_bytes, 40 + 30, "the owned batch counts its frame's whole buffer")
  lent.fill(9) // the transport reuses its buffer after the handler returns
  t.throws(() => queue.push(new Uint8Array(31).fill(3), true), { code: 'HVLAB_E_BACKPRESSURE' }, 'the bound holds for owned batches')
  await queue.appliedSoFar()
  t.equal(kept[1], owned, 'the owned batch went to apply as it is')
  t.not(kept[2], lent, 'the lent one was copied on arrival')
  t.same(kept[2], new Uint8Array(30).fill(2), 'with the bytes it had then')
})

t.test('LoopSlicer serves the event loop only once its slice is used up', async (t) => {
  let turned = false
  setImmediate(() => (turned = true))
  await new LoopSlicer(60_000).serve()
  t.equal(turned, false, 'within the slice: no event-loop turn')
  await new LoopSlicer(0).serve()
  t.equal(turned, true, 'slice used up: the event loop ran (an immediate queued before it fired)')
})
