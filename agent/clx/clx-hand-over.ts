/**
 * CLX in a VM's migration: the check before a migration across sites starts
 * (`checkBeforeMigration`: a group that is not Synced cancels it, the VM keeps running on
 * the source) and the StorageHandOver the migration calls inside its blackout (a planned
 * switchover of the VM's remote-copy group to the destination's site; `handBack` switches
 * it back when the migration fails after that). A move within a site does nothing to the
 * storage; a VM without a replicated disk needs nothing either.
 */
import type { MigrationOptionsMessage, VmStorageSpecRecord } from '../../shared/protocol/cluster-messages.js'
import type { StorageHandOver, StorageHandOverRequest } from '../migration/storage-hand-over.js'
import type { ClxResult, ClxService } from './clx-service.js'

export interface ClxMigrationDeps {
  clx: Pick<ClxService, 'checkForLiveMigration' | 'switchoverInBlackout'>
  /** A host's site (undefined: not a host of the topology). */
  siteOf(host: string): string | undefined
  /** The VM's disk as the cluster keeps it (null: no replicated disk). */
  storageOf(vm: string): VmStorageSpecRecord | null
  /** The group was made writable in `site` for `vm` (to move the VM's disk target along). */
  onSwitched?(vm: string, site: string, result: ClxResult): void
  /** Resolves once the paused VM's disk has no write in flight (before its group switches over). */
  quiesce?(vm: string): Promise<void>
}

type MigrationMode = MigrationOptionsMessage['mode']
type Replicated = Extract<VmStorageSpecRecord, { kind: 'replicated' }>

/** The VM's replicated disk and the two sites when a move from `source` to `destination` crosses sites; else null. */
export function crossSiteMove(
  deps: Pick<ClxMigrationDeps, 'siteOf' | 'storageOf'>,
  vm: string,
  source: string,
  destination: string,
): { spec: Replicated; from_site: string; to_site: string } | null {
  const spec = deps.storageOf(vm)
  if (spec?.kind !== 'replicated') return null
  const from_site = deps.siteOf(source)
  const to_site = deps.siteOf(destination)
  if (from_site === undefined || to_site === undefined || from_site === to_site) return null
  return { spec, from_site, to_site }
}

/** Resolves when the migration may start; rejects HVLAB_E_REFUSED with CLX's message (nothing changed). Null: nothing to check. */
export function checkBeforeMigration(
  deps: ClxMigrationDeps,
  vm: string,
  source: string,
  destination: string,
  mode: MigrationMode = 'live',
): Promise<void> | null {
  const move = crossSiteMove(deps, vm, source, destination)
  if (move === null) return null
  const operation = mode === 'quick' ? 'quick-migration' : 'live-migration'
  return deps.clx.checkForLiveMigration(vm, move.spec.group, move.to_site, destination, operation).then(() => undefined)
}

export function clxStorageHandOver(deps: ClxMigrationDeps): StorageHandOver {
  const switchTo = async (r: StorageHandOverRequest, back: boolean): Promise<void> => {
    const move = crossSiteMove(deps, r.vm, r.source, r.destination)
    if (move === null) return
    const site = back ? move.from_site : move.to_site
    if (!back) await deps.quiesce?.(r.vm)
    const result = await deps.clx.switchoverInBlackout(r.vm, move.spec.group, site, back ? r.source : r.destination)
    deps.onSwitched?.(r.vm, site, result)
  }
  return {
    handOver: (r) => switchTo(r, false),
    handBack: (r) => switchTo(r, true),
  }
}
