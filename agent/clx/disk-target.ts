/**
 * Where a VM's disks' I/O goes (one target per disk, disk 0 first): for a replicated disk, once CLX made its copy writable in the
 * host's site, the array, the volume on it and the remote-copy group; for a disk on a
 * Cluster Shared Volume, the CSV's volume and the VM's region of it (no group: every node
 * writes a CSV, and a move changes nothing on the storage). The VM's disk writer
 * (agent/vm/vm-disk.ts) takes this as its target; the host keeps it with the VM's
 * runtime state (VmAgent.diskOf). PURE.
 */
import { HvlabError } from '../../shared/errors.js'
import type { VmStorageSpecRecord } from '../../shared/protocol/cluster-messages.js'

export interface VmDiskTarget {
  /** The array that holds the writable copy (replicated: in the host's site). */
  readonly array: string
  readonly volume: string
  /** The remote-copy group; null on a CSV. */
  readonly group: string | null
  readonly size_bytes: number
  /** On a CSV: which one and the VM's region of it (I/O goes through the host's CsvVolume). */
  readonly csv: { readonly name: string; readonly region: string } | null
}

/** How many disks a VM with this storage has: disk 0 and its data disks (none beyond the host: 1). */
export function vmDiskCount(spec: VmStorageSpecRecord | null | undefined): number {
  if (spec?.kind === 'replicated') return vmVolumes(spec).length
  if (spec?.kind === 'csv') return vmRegions(spec).length
  return 1
}

type Replicated = Extract<VmStorageSpecRecord, { kind: 'replicated' }>
type OnCsv = Extract<VmStorageSpecRecord, { kind: 'csv' }>

/** A replicated VM's volumes, disk 0 first (one name on both arrays). */
export const vmVolumes = (spec: Replicated): string[] => [spec.volume, ...(spec.data_volumes ?? [])]
/** A CSV VM's regions, disk 0 first. */
export const vmRegions = (spec: OnCsv): string[] => [spec.region, ...(spec.data_regions ?? [])]

/** The disk targets of a VM on a CSV, disk 0 first: the same on every node. */
export function csvDiskTargets(spec: OnCsv): VmDiskTarget[] {
  return vmRegions(spec).map((region) => ({
    array: spec.array,
    volume: spec.volume,
    group: null,
    size_bytes: spec.size_bytes,
    csv: { name: spec.csv, region },
  }))
}

/**
 * The disk targets, disk 0 first, after `prepareForStart` (or a switchover) resolved with
 * `result`: the result's array must be one of the spec's two arrays (else the spec and the
 * arrays disagree — a bug or a hand-edited record). Every disk is in the one group.
 */
export function diskTargetsFor(spec: Replicated, result: { readonly array: string; readonly group: string }): VmDiskTarget[] {
  if (result.group !== spec.group) {
    throw new HvlabError('HVLAB_E_INTERNAL', `CLX prepared group ${result.group}, but the disk of this vm is in group ${spec.group}`)
  }
  if (result.array !== spec.arrays.primary && result.array !== spec.arrays.secondary) {
    throw new HvlabError(
      'HVLAB_E_INTERNAL',
      `CLX made array ${result.array} writable, but the disk ${spec.volume} lives on ${spec.arrays.primary} and ${spec.arrays.secondary}`,
    )
  }
  return vmVolumes(spec).map((volume) => ({
    array: result.array,
    volume,
    group: spec.group,
    size_bytes: spec.size_bytes,
    csv: null,
  }))
}

/** The one array of `site` (CLX's "local" array), or undefined when the site has none or several. */
export function arrayOfSite(arrays: readonly { readonly name: string; readonly site: string }[], site: string): string | undefined {
  const here = arrays.filter((a) => a.site === site)
  return here.length === 1 ? here[0]!.name : undefined
}
