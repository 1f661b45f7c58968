/**
 * An array's volume store and Remote Copy service in a test folder, in process: the
 * settings every in-process array test shares (real time, scale 1, one partner, silent
 * log, events dropped, the topology's default resync limit); the test brings its own
 * link (`send`, and `requestHashes` where resync compares blocks) and may override the
 * rest.
 */
import { join } from 'node:path'
import { pino } from 'pino'
import { RemoteCopyService, type RemoteCopyServiceOptions } from '../../array-emulator/remote-copy-service.js'
import { VolumeStore } from '../../array-emulator/volume-store.js'
import { LIMITS_DEFAULT } from '../../shared/topology.js'

type Link = Pick<RemoteCopyServiceOptions, 'send'> & Partial<Omit<RemoteCopyServiceOptions, 'dir' | 'store' | 'partners'>>

export async function openTestArray(dir: string, partner: string, link: Link): Promise<{ store: VolumeStore; rc: RemoteCopyService }> {
  const store = await VolumeStore.open(join(dir, 'volumes'))
  const rc = await RemoteCopyService.open({
    dir: join(dir, 'rc'),
    store,
    partners: [partner],
    timeScale: 1,
    now: () => Date.now(),
    setTimer: (d, fn) => void setTimeout(fn, d).unref(),
    emit: () => {},
    log: pino({ level: 'silent' }),
    // As array-service.ts runs it: every group cycles with a permit from the array's
    // resync limiter, sized by the topology's default limit.
    resync_groups_max: LIMITS_DEFAULT.resync_groups_per_array,
    ...link,
  })
  return { store, rc }
}
