/**
 * The storage admin requests on the array's volumes: list, create, grow and remove. Each
 * answers with the volume listing (each volume's size and the hosts it is presented to).
 * A volume in a Remote Copy group keeps its size and cannot be removed while it is
 * replicated or presented to a host (`hvlab array unpresent` first); a removed volume's
 * fencing entries go with it.
 */
import { HvlabError } from '../shared/errors.js'
import type { LabProcess } from '../shared/lab-process.js'
import type { MessageOf } from '../shared/protocol/messages.js'
import type { ArrayMetrics } from './array-metrics.js'
import type { FencingTable } from './fencing.js'
import type { LunMasking } from './lun-masking.js'
import type { RemoteCopyService } from './remote-copy-service.js'
import type { StorageAdmin } from './storage-admin.js'
import type { VolumeStore } from './volume-store.js'

export interface VolumeAdminParts {
  store: VolumeStore
  masking: LunMasking
  fencing: FencingTable
  rc: RemoteCopyService
  metrics: ArrayMetrics
}

/** Every volume of the array, with its size and the hosts it is presented to. */
function volumeListing(store: VolumeStore, masking: LunMasking): MessageOf<'volume-listing'> {
  return {
    t: 'volume-listing',
    block_size_bytes: store.block_size_bytes,
    volumes: store
      .list()
      .map((v) => ({ volume: v.volume, size_bytes: v.size_bytes, presented_to: masking.presentations(v.volume).map((x) => x.host) })),
  }
}

/** Refuses to change `volume` while it is in a Remote Copy group; `fixed` says what stays as it is. */
function checkNotReplicated(rc: RemoteCopyService, volume: string, fixed: string): void {
  const group = rc.groupOfVolume(volume)
  if (group !== undefined) throw new HvlabError('HVLAB_E_STATE', `volume ${volume} is in remote copy group ${group}; ${fixed}`)
}

/** Refuses to remove `volume` while it is in a Remote Copy group: it is dismissed from it first. */
function checkNotInGroup(rc: RemoteCopyService, volume: string): void {
  const group = rc.groupOfVolume(volume)
  if (group === undefined) return
  throw new HvlabError(
    'HVLAB_E_STATE',
    `volume ${volume} is in remote copy group ${group}; dismiss it first: \`hvlab rcopy dismiss ${group} ${volume}\` (with the group stopped: \`hvlab rcopy stop ${group}\`)`,
  )
}

/** Refuses to remove `volume` while hosts may see it: each presentation is taken away first. */
function checkNotPresented(array: string, masking: LunMasking, volume: string): void {
  const hosts = masking.presentations(volume).map((x) => x.host)
  if (hosts.length === 0) return
  throw new HvlabError(
    'HVLAB_E_STATE',
    `volume ${volume} is presented to ${hosts.join(', ')}; unpresent it from each (\`hvlab array unpresent ${array} ${volume} HOST\`), or remove it with \`hvlab array volume remove ${array} ${volume} --unpresent\``,
  )
}

export function serveVolumeAdmin(admin: StorageAdmin, p: LabProcess, parts: VolumeAdminParts): void {
  const { store, masking, fencing, rc, metrics } = parts
  const listing = (): MessageOf<'volume-listing'> => volumeListing(store, masking)
  admin.serve('volume-list', () => listing())
  admin.serve('volume-create', async (m) => {
    const v = await store.create(m.volume, m.size_bytes)
    metrics.volumes.set(store.list().length)
    p.emitEvent('array.volume-created', { volume: v.volume, size_bytes: v.size_bytes })
    return listing()
  })
  admin.serve('volume-grow', async (m) => {
    checkNotReplicated(rc, m.volume, 'its size is fixed while it is replicated')
    const v = await store.grow(m.volume, m.size_bytes)
    p.emitEvent('array.volume-grown', { volume: v.volume, size_bytes: v.size_bytes })
    return listing()
  })
  admin.serve('volume-remove', async (m) => {
    store.get(m.volume) // a clear error for an unknown volume
    checkNotInGroup(rc, m.volume)
    checkNotPresented(p.name, masking, m.volume)
    await store.remove(m.volume)
    await masking.forgetVolume(m.volume)
    await fencing.forget(m.volume)
    metrics.volumes.set(store.list().length)
    p.emitEvent('array.volume-removed', { volume: m.volume })
    return listing()
  })
}
