/**
 * An array's volume store and Remote Copy service in a test folder, in process: the
 * settings every in-process array test shares (real time, scale 1, one partner, silent
 * log, events dropped); the test brings its own link (`send`, and `requestHashes` where
 * resync compares blocks) and may override the rest.
 */
import { join } from 'node:path'
import { pino } from 'pino'
import { RemoteCopyService, type RemoteCopyServiceOptions } from '../../array-emulator/remote-copy-service.js'
import { VolumeStore } from '../../array-emulator/volume-store.js'

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
    ...link,
  })
  return { store, rc }
}
