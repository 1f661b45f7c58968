/**
 * `hvlab vm remove` as the coordinator runs it (like Remove-ClusterGroup + Remove-VM):
 * the RoleController removes the role first — refused while it runs, starts, stops or
 * migrates (role-removal.ts) — and once the cluster database has committed the record's
 * deletion, nothing can start the VM again, so its disks can go: a replicated VM's group
 * and volumes on both arrays (agent/clx/vm-disk-removal.ts), a CSV VM's regions; a
 * `local` VM has no disk object in the lab. With `keep_disk` the disk stays and the reply
 * says what was kept. The reply lists exactly what was removed.
 */
import { sleepOn, type Clock } from '../../shared/clock.js'
import { HvlabError, describeError, isHvlabError } from '../../shared/errors.js'
import type { LabProcess } from '../../shared/lab-process.js'
import type { VmStorageSpecRecord } from '../../shared/protocol/cluster-messages.js'
import type { MessageOf } from '../../shared/protocol/messages.js'
import type { RemovableObject } from '../../shared/protocol/removal-messages.js'
import { diskObject, removeReplicatedDisk, replicatedDiskObjects, type DiskRemoval } from '../clx/vm-disk-removal.js'
import { vmStorageContext } from '../clx/vm-storage.js'
import { vmRegions } from '../clx/disk-target.js'
import type { CsvHost } from '../csv/csv-host.js'
import type { RoleService } from './role-service.js'

/** How long the removal waits for the cluster database to commit the role record's deletion. */
export const ROLE_DELETE_COMMIT_MS = 10_000
const COMMIT_POLL_MS = 100

export interface VmRemovalDeps {
  p: Pick<LabProcess, 'topology' | 'mesh' | 'clock'>
  roles: Pick<RoleService, 'command' | 'list' | 'roleRecordGone'>
  csv: Pick<CsvHost, 'volume'>
}

type VmRemoveReply = MessageOf<'vm-remove-reply'>

export async function removeVm(deps: VmRemovalDeps, name: string, keep_disk: boolean): Promise<VmRemoveReply> {
  const storage = deps.roles.list()?.find((r) => r.name === name)?.storage ?? null
  await deps.roles.command({ op: 'remove', name }) // refused (nothing changed) unless it runs nowhere
  const reply = (disk: DiskRemoval): VmRemoveReply => ({
    t: 'vm-remove-reply',
    vm: name,
    storage: storage?.kind ?? 'none',
    removed: [diskObject('vm-role', name, null), ...disk.removed],
    kept: disk.kept,
    unfinished: disk.unfinished,
  })
  const committed = await untilCommitted(deps.p.clock, () => deps.roles.roleRecordGone(name))
  if (!committed) {
    const reason = `the cluster database did not commit the removal of vm ${name} within ${ROLE_DELETE_COMMIT_MS / 1000} s (a view change or lost quorum?), so its disk was left alone; check \`hvlab cluster status\` and \`hvlab vm list\``
    return reply({ removed: [], kept: keptDisk(storage), unfinished: { code: 'HVLAB_E_TIMEOUT', reason } })
  }
  if (keep_disk) return reply({ removed: [], kept: keptDisk(storage), unfinished: null })
  return reply(await removeDisk(deps, storage))
}

/** The disk objects of `storage` that stay when it is kept. */
function keptDisk(storage: VmStorageSpecRecord | null): RemovableObject[] {
  if (storage?.kind === 'replicated') return replicatedDiskObjects(storage)
  if (storage?.kind === 'csv') return vmRegions(storage).map((r) => diskObject('csv-region', r, storage.csv))
  return []
}

async function removeDisk(deps: VmRemovalDeps, storage: VmStorageSpecRecord | null): Promise<DiskRemoval> {
  if (storage?.kind === 'replicated') return removeReplicatedDisk(vmStorageContext(deps.p), storage)
  if (storage?.kind !== 'csv') return { removed: [], kept: [], unfinished: null } // local: no disk object in the lab
  const regions = vmRegions(storage)
  const removed: RemovableObject[] = []
  for (const [i, name] of regions.entries()) {
    try {
      await deps.csv.volume(storage.csv).releaseRegion(name)
      removed.push(diskObject('csv-region', name, storage.csv))
    } catch (e) {
      if (HvlabError.has(e, 'HVLAB_E_NOT_FOUND')) continue // the CSV, or that region, is gone already
      const kept = regions.slice(i).map((r) => diskObject('csv-region', r, storage.csv))
      return { removed, kept, unfinished: { code: isHvlabError(e) ? e.code : 'HVLAB_E_INTERNAL', reason: describeError(e) } }
    }
  }
  return { removed, kept: [], unfinished: null }
}

/** Polls `done` on the clock until it holds (true) or ROLE_DELETE_COMMIT_MS have passed (false). */
async function untilCommitted(clock: Clock, done: () => boolean): Promise<boolean> {
  const deadline_ms = clock.now() + ROLE_DELETE_COMMIT_MS
  while (!done()) {
    if (clock.now() >= deadline_ms) return false
    await sleepOn(clock, COMMIT_POLL_MS)
  }
  return true
}
