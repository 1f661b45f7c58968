/**
 * Live migration of a host's VM roles: the host's migration service (migration-host.ts)
 * with CLX switching a replicated disk over to the destination's site inside the
 * blackout, the check that cancels a cross-site migration of a group that is not Synced,
 * where an arriving VM's disk writes go here, and the outcome reported to the
 * coordinator. A VM's disk comes from this host's copy of the cluster database
 * (committed at create, long before any migration).
 */
import type { LabProcess } from '../../shared/lab-process.js'
import type { VmStorageSpecRecord } from '../../shared/protocol/cluster-messages.js'
import type { StorageMode } from '../../shared/protocol/migration-messages.js'
import { checkBeforeMigration, clxStorageHandOver, type ClxMigrationDeps } from '../clx/clx-hand-over.js'
import type { ClxService } from '../clx/clx-service.js'
import { arrayOfSite, csvDiskTargets, diskTargetsFor, type VmDiskTarget } from '../clx/disk-target.js'
import { startMigrationHost, type MigrationHost } from '../migration/migration-host.js'
import type { CoordinatorReports } from './coordinator-reports.js'
import type { Membership } from './membership.js'
import { decodeRole } from './role-record.js'
import type { VmAgent } from './vm-agent.js'

export interface RoleMigrationDeps {
  agent: VmAgent
  clx: ClxService
  membership: Pick<Membership, 'view' | 'holdsLease' | 'database'>
  reports: CoordinatorReports
  /** How long after a host left the view its VMs count as stopped. */
  roles_free_after_ms: number
}

export function startRoleMigration(p: LabProcess, deps: RoleMigrationDeps): MigrationHost {
  const m = deps.membership
  // The VM's own entry only: decoding every role (each a JSON parse and a schema check) took
  // several ms inside the blackout of a lab with few VMs, and grows with the cluster.
  const storageOf = (vm: string): VmStorageSpecRecord | null => decodeRole(m.database().config, vm)?.storage ?? null
  const clxMigration = clxMigrationOf(p, deps, storageOf)
  return startMigrationHost(p, {
    agent: deps.agent,
    storage: clxStorageHandOver(clxMigration),
    checkStorage: (vm, source, to, mode) => checkBeforeMigration(clxMigration, vm, source, to, mode),
    storageModeOf: (vm) => storageModeOf(storageOf(vm)),
    disksForArrival: (vm) => disksForArrival(p, storageOf(vm)),
    isMember: (node) => m.view().members.includes(node),
    viewEpoch: () => m.view().epoch,
    holdsLease: (now) => m.holdsLease(now),
    roles_free_after_ms: deps.roles_free_after_ms,
    reportMigrated: (r) => deps.reports.vmMigrated(r),
  })
}

/** CLX's part in a migration: pause the VM's disk writes, switch its group over, move its disk target along. */
function clxMigrationOf(p: LabProcess, deps: RoleMigrationDeps, storageOf: (vm: string) => VmStorageSpecRecord | null): ClxMigrationDeps {
  const { agent } = deps
  return {
    clx: deps.clx,
    quiesce: async (vm: string) => {
      await Promise.all(agent.vms.instance(vm)?.disks.map((d) => d.pause()) ?? [])
    },
    siteOf: (host: string): string | undefined => p.topology.hosts.find((h) => h.name === host)?.site,
    storageOf,
    onSwitched: (vm: string, site: string, result: { array: string; group: string }) => {
      const spec = storageOf(vm)
      if (spec?.kind === 'replicated' && site === p.site) agent.setDisks(vm, diskTargetsFor(spec, result))
    },
  }
}

/** Where an arriving VM's disks' I/O goes on this host, disk 0 first (none: no disk to write). */
function disksForArrival(p: LabProcess, spec: VmStorageSpecRecord | null): VmDiskTarget[] {
  if (spec?.kind === 'csv') return csvDiskTargets(spec)
  const array = arrayOfSite(p.topology.arrays, p.site)
  return spec?.kind === 'replicated' && array !== undefined ? diskTargetsFor(spec, { array, group: spec.group }) : []
}

/** How a VM's disk moves in a migration: a replicated disk by CLX, a CSV region needs nothing, a host's own disk is owned. */
function storageModeOf(spec: VmStorageSpecRecord | null): StorageMode {
  if (spec?.kind === 'replicated') return 'clx'
  if (spec?.kind === 'csv') return 'csv'
  return 'owned'
}
