/**
 * largeBuffersReleased: one full collection a moment after the last release, where the
 * process has gc (the lab's processes run with --expose-gc); nothing where it has not.
 */
import t from 'tap'
import { RELEASE_COLLECT_AFTER_MS, largeBuffersReleased } from '../../shared/large-buffer-release.js'

t.test('many releases, one collection after the last; none without gc', async (t) => {
  const g = globalThis as { gc?: () => void }
  const had = g.gc
  let collections = 0
  g.gc = () => void collections++
  t.teardown(() => {
    if (had) g.gc = had
    else delete g.gc
  })
  for (let i = 0; i < 5; i++) largeBuffersReleased()
  await new Promise((r) => setTimeout(r, RELEASE_COLLECT_AFTER_MS / 2))
  largeBuffersReleased()
  await new Promise((r) => setTimeout(r, RELEASE_COLLECT_AFTER_MS / 2 + 50))
  t.equal(collections, 0, 'still waiting: the last release moved it on')
  await new Promise((r) => setTimeout(r, RELEASE_COLLECT_AFTER_MS))
  t.equal(collections, 1, 'one collection')
  delete g.gc
  largeBuffersReleased()
  await new Promise((r) => setTimeout(r, RELEASE_COLLECT_AFTER_MS + 50))
  t.equal(collections, 1, 'no gc: nothing scheduled')
})
