/**
 * An operator's role command as the coordinator runs it. A create first gets the VM its
 * disk (a failure refuses the create, and nothing is recorded): none; `local` (one host's
 * own storage, so the VM can run only there); a region of a Cluster Shared Volume; or a
 * replicated disk provisioned on both arrays. Other commands go to the RoleService as
 * they are.
 */
import { scaled } from '../../shared/clock.js'
import { HvlabError, describeError } from '../../shared/errors.js'
import type { LabProcess } from '../../shared/lab-process.js'
import type { RoleCommandMessage, VmStorageRequest } from '../../shared/protocol/cluster-messages.js'
import { preferredSiteOf } from '../../shared/vm-storage-choice.js'
import { provisionVmDisk, vmDiskRegion, vmStorageContext } from '../clx/vm-storage.js'
import type { CsvHost } from '../csv/csv-host.js'
import type { RoleCommand } from './role-controller.js'
import type { RoleService } from './role-service.js'
import { checkFitsAHost, createVmRole } from './vm-role.js'

export interface CoordinatorCommandsDeps {
  p: Pick<LabProcess, 'topology' | 'mesh' | 'clock' | 'emitEvent'>
  roles: Pick<RoleService, 'command' | 'list'>
  csv: Pick<CsvHost, 'entry' | 'volume'>
}

type CreateSpec = Omit<Extract<RoleCommandMessage, { op: 'create' }>['spec'], 'storage'>
type StorageWanted<K extends VmStorageRequest['kind']> = Extract<VmStorageRequest, { kind: K }>

export async function runRoleCommand(deps: CoordinatorCommandsDeps, command: RoleCommandMessage): Promise<void> {
  const { roles } = deps
  if (command.op !== 'create') return roles.command(command as RoleCommand)
  const { storage: wanted, ...spec } = command.spec
  if (wanted?.kind === 'local') return createOnLocal(deps, spec, wanted)
  if (wanted === undefined || wanted === null) return roles.command({ op: 'create', spec: { ...spec, storage: null } })
  createVmRole({ ...spec, storage: null }) // a bad name, size or owner list is refused before any array is touched
  checkFitsAHost(spec, deps.p.topology.hosts)
  if (roles.list()?.some((r) => r.name === spec.name))
    throw new HvlabError('HVLAB_E_STATE', `cannot create vm ${spec.name}: a vm with that name exists; pick another name`)
  if (wanted.kind === 'csv') return createOnCsv(deps, spec, wanted)
  return createReplicated(deps, spec, wanted)
}

/**
 * A disk on one host's own storage: the VM can run only there (no failover across hosts;
 * moving local storage with it — shared-nothing migration — is not built).
 */
function createOnLocal(deps: CoordinatorCommandsDeps, spec: CreateSpec, wanted: StorageWanted<'local'>): Promise<void> {
  const home = spec.possible_owners?.length === 1 ? spec.possible_owners[0] : spec.preferred_owners?.[0]
  if (home === undefined || (spec.possible_owners && spec.possible_owners.length > 0 && !spec.possible_owners.includes(home))) {
    throw new HvlabError(
      'HVLAB_E_USAGE',
      `cannot create vm ${spec.name} with --storage local: its disk lives on one host, so name that host with --preferred HOST (it can run nowhere else)`,
    )
  }
  return deps.roles.command({ op: 'create', spec: { ...spec, preferred_owners: [home], possible_owners: [home], storage: wanted } })
}

/** Regions of the CSV named after the VM (vmDiskRegion: one per disk), allocated by the CSV's coordinator node; all or none. */
async function createOnCsv(deps: CoordinatorCommandsDeps, spec: CreateSpec, wanted: StorageWanted<'csv'>): Promise<void> {
  const entry = deps.csv.entry(wanted.csv)
  const regions = Array.from({ length: wanted.disks ?? 1 }, (_, disk) => vmDiskRegion(spec.name, disk))
  const volume = deps.csv.volume(wanted.csv)
  const allocated: string[] = []
  try {
    for (const region of regions) {
      await volume.allocateRegion(region, wanted.size_bytes)
      allocated.push(region)
    }
  } catch (e) {
    for (const region of allocated) await volume.releaseRegion(region).catch(() => undefined) // the next create or `csv release` finishes it
    throw new HvlabError(
      e instanceof HvlabError ? e.code : 'HVLAB_E_INTERNAL',
      `cannot create vm ${spec.name}: no region ${regions[allocated.length]} of ${wanted.size_bytes} bytes on CSV ${wanted.csv}: ${describeError(e)}`,
      { cause: e },
    )
  }
  const storage = {
    kind: 'csv',
    csv: wanted.csv,
    region: regions[0]!,
    size_bytes: wanted.size_bytes,
    array: entry.array,
    volume: entry.volume,
    ...(regions.length > 1 ? { data_regions: regions.slice(1) } : {}),
  } as const
  await deps.roles.command({ op: 'create', spec: { ...spec, storage } })
}

/** A replicated disk: a volume on each site's array in a remote-copy group, primary in the VM's preferred site. */
async function createReplicated(deps: CoordinatorCommandsDeps, spec: CreateSpec, wanted: StorageWanted<'replicated'>): Promise<void> {
  const { p } = deps
  let storage
  try {
    storage = await provisionVmDisk(vmStorageContext(p), {
      vm: spec.name,
      preferredSite: preferredSiteOf(spec.preferred_owners ?? [], p.topology.hosts),
      size_bytes: wanted.size_bytes,
      disks: wanted.disks ?? 1,
      ...(wanted.period_ms === undefined ? {} : { mode: 'periodic', period_ms: wanted.period_ms }),
    })
  } catch (e) {
    throw new HvlabError(
      e instanceof HvlabError ? e.code : 'HVLAB_E_INTERNAL',
      `cannot create vm ${spec.name}: its replicated disk could not be provisioned: ${describeError(e)}`,
      { cause: e },
    )
  }
  p.emitEvent('clx.disk-provisioned', {
    vm: spec.name,
    group: storage.group,
    volume: storage.volume,
    size_bytes: storage.size_bytes,
    primary: storage.arrays.primary,
    secondary: storage.arrays.secondary,
    mode: storage.mode,
    ...(storage.data_volumes === undefined ? {} : { disks: storage.data_volumes.length + 1 }),
    ...(wanted.period_ms === undefined ? {} : { period_ms: scaled(wanted.period_ms, p.topology.timeScale) }),
  })
  await deps.roles.command({ op: 'create', spec: { ...spec, storage } })
}
