/** The spare buffers both migration pools keep (agent/migration/spare-buffers.ts). */
import t from 'tap'
import { SpareBuffers } from '../../agent/migration/spare-buffers.js'

t.test('take gives the largest spare when it is large enough, and keep holds at most count_max, the largest', async (t) => {
  const spares = new SpareBuffers(2)
  const small = new ArrayBuffer(10)
  const large = new ArrayBuffer(30)
  const middle = new ArrayBuffer(20)
  for (const b of [small, large, middle, large, new ArrayBuffer(0)]) spares.keep(b)
  t.equal(spares.take(31), undefined, 'none is large enough')
  t.equal(spares.take(), large, 'the largest first')
  t.equal(spares.take(), middle, 'the smaller one was dropped: two kept, not three')
  t.equal(spares.take(), undefined)
})

t.test('warm faults in only what is missing, and drops what a release overtook; close keeps nothing more', async (t) => {
  const spares = new SpareBuffers(4)
  let asked = 0
  const faultIn = async (bytes: number): Promise<ArrayBuffer> => {
    asked++
    return new ArrayBuffer(bytes)
  }
  spares.keep(new ArrayBuffer(8))
  spares.keep(new ArrayBuffer(2)) // too small to count
  await spares.warm(3, 8, faultIn)
  t.equal(asked, 2, 'two more of 8 bytes make three')
  t.equal(spares.release(), 4)
  const warming = spares.warm(2, 8, faultIn)
  spares.release()
  await warming
  t.equal(spares.take(), undefined, 'faulted in before a release: not kept')
  spares.close()
  spares.keep(new ArrayBuffer(8))
  t.equal(spares.take(), undefined, 'closed: nothing is kept')
})
