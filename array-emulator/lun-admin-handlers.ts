/**
 * The storage admin requests on LUN masking: present a volume to a host (with its
 * initiators) and take the presentation away. Each answers with the volume's
 * presentations.
 */
import type { LabProcess } from '../shared/lab-process.js'
import type { MessageOf } from '../shared/protocol/messages.js'
import type { LunMasking } from './lun-masking.js'
import type { StorageAdmin } from './storage-admin.js'
import type { VolumeStore } from './volume-store.js'

/** The hosts `volume` is presented to, with their initiators. */
function lunPresentations(masking: LunMasking, volume: string): MessageOf<'lun-presentations'> {
  return {
    t: 'lun-presentations',
    volume,
    presentations: masking.presentations(volume).map((x) => ({ host: x.host, initiators: x.initiators })),
  }
}

export function serveLunAdmin(admin: StorageAdmin, p: LabProcess, store: VolumeStore, masking: LunMasking): void {
  admin.serve('lun-present', async (m) => {
    store.get(m.volume) // a clear error for an unknown volume
    await masking.present(m.volume, m.host, m.initiators)
    p.emitEvent('array.lun-presented', { volume: m.volume, host: m.host, initiators: m.initiators })
    return lunPresentations(masking, m.volume)
  })
  admin.serve('lun-unpresent', async (m) => {
    await masking.unpresent(m.volume, m.host)
    p.emitEvent('array.lun-unpresented', { volume: m.volume, host: m.host })
    return lunPresentations(masking, m.volume)
  })
}
