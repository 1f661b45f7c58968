/**
 * What storage `hvlab vm create` gives a VM (PURE): `--storage replicated|local|csv:NAME`,
 * `--disk-gib N`, `--disks N` (that many disks of that size: disk 0 and its data disks) and
 * `--rc-period-ms N` (a periodic group instead of a synchronous one), with the default the seeds give — a replicated disk (remote-copy
 * group of its own between the two sites' arrays) when the topology has exactly one array
 * in each of two sites, else local. `csv:NAME` puts the disk in a region of Cluster Shared
 * Volume NAME (`hvlab csv create` makes one); the coordinator allocates the region. The
 * CLI turns the options into the create request; a host (role-host.ts) uses the same
 * rules to find the site of a new VM's primary copy.
 */
import { HvlabError } from './errors.js'
import type { VmStorageRequest } from './protocol/cluster-messages.js'
import { CSV_NAME_RE } from './protocol/csv-messages.js'
import { RC_PERIOD_MS_MAX, VM_DISKS_MAX } from './protocol/storage-limits.js'

/**
 * A lab VM's disk when --disk-gib is left out: small, like lab VMs' memory — the first sync
 * of a new group compares and copies the whole volume, which is most of a VM create's cost.
 */
export const DISK_BYTES_DEFAULT = 16 * 1024 ** 2
/** An array's remote-copied volume has at most 2^20 blocks of 4 KiB. */
export const DISK_GIB_MAX = 4
const GIB = 1024 ** 3

export type StorageKind = 'replicated' | 'local'

/** 'replicated' when there is exactly one array in each of exactly two sites, else 'local'. */
export function defaultStorageKind(arrays: readonly { readonly site: string }[]): StorageKind {
  const perSite = new Map<string, number>()
  for (const a of arrays) perSite.set(a.site, (perSite.get(a.site) ?? 0) + 1)
  return perSite.size === 2 && [...perSite.values()].every((n) => n === 1) ? 'replicated' : 'local'
}

/**
 * The create request's storage from the options. Throws HVLAB_E_USAGE for a kind that
 * does not exist, for a bad CSV name, for replicated without two sites' arrays, or for
 * --disk-gib with local storage.
 */
export function chooseVmStorage(
  o: { storage?: string; disk_gib?: number; rc_period_ms?: number; disks?: number },
  arrays: readonly { readonly site: string }[],
): VmStorageRequest {
  const raw = o.storage ?? defaultStorageKind(arrays)
  const disks = o.disks === undefined || o.disks === 1 ? {} : { disks: diskCount(o.disks) }
  if (o.rc_period_ms !== undefined && raw !== 'replicated')
    throw new HvlabError(
      'HVLAB_E_USAGE',
      `--rc-period-ms makes a replicated disk's group periodic; --storage ${raw} has no remote-copy group — leave --rc-period-ms out`,
    )
  if (raw.startsWith('csv:') || raw === 'csv') {
    const csv = raw.slice('csv:'.length)
    if (!CSV_NAME_RE.test(csv))
      throw new HvlabError(
        'HVLAB_E_USAGE',
        `--storage ${raw}: name the Cluster Shared Volume, e.g. --storage csv:vol1 (\`hvlab csv list\` shows them)`,
      )
    return { kind: 'csv', csv, size_bytes: diskBytes(o.disk_gib), ...disks }
  }
  if (raw === 'local') {
    if (o.disk_gib !== undefined)
      throw new HvlabError('HVLAB_E_USAGE', '--disk-gib sizes a replicated disk; --storage local has none to size — leave --disk-gib out')
    if (o.disks !== undefined)
      throw new HvlabError('HVLAB_E_USAGE', '--disks counts replicated or CSV disks; --storage local has none to count — leave --disks out')
    return { kind: 'local' }
  }
  if (raw !== 'replicated')
    throw new HvlabError('HVLAB_E_USAGE', `--storage ${raw} is not a kind of storage; use replicated, local or csv:NAME`)
  if (defaultStorageKind(arrays) !== 'replicated') {
    throw new HvlabError(
      'HVLAB_E_USAGE',
      `--storage replicated needs one storage array in each of two sites; this lab has ${arrays.length} array(s) in ${new Set(arrays.map((a) => a.site)).size} site(s); use --storage local`,
    )
  }
  return {
    kind: 'replicated',
    size_bytes: diskBytes(o.disk_gib),
    ...(o.rc_period_ms === undefined ? {} : { period_ms: rcPeriodMs(o.rc_period_ms) }),
    ...disks,
  }
}

/** `--disks N`: 1 to VM_DISKS_MAX. */
export function diskCount(n: number): number {
  if (!Number.isInteger(n) || n < 1 || n > VM_DISKS_MAX)
    throw new HvlabError('HVLAB_E_USAGE', `--disks must be a whole number from 1 to ${VM_DISKS_MAX}, got ${n}`)
  return n
}

function rcPeriodMs(ms: number): number {
  if (!Number.isInteger(ms) || ms < 1 || ms > RC_PERIOD_MS_MAX)
    throw new HvlabError('HVLAB_E_USAGE', `--rc-period-ms must be a whole number of ms from 1 to ${RC_PERIOD_MS_MAX} (a week), got ${ms}`)
  return ms
}

function diskBytes(gib: number | undefined): number {
  if (gib === undefined) return DISK_BYTES_DEFAULT
  if (!Number.isInteger(gib) || gib < 1 || gib > DISK_GIB_MAX)
    throw new HvlabError(
      'HVLAB_E_USAGE',
      `--disk-gib must be a whole number from 1 to ${DISK_GIB_MAX} (an array remote-copies volumes of up to 4 GiB), got ${gib}`,
    )
  return gib * GIB
}

/** The site whose array holds a new VM's primary copy: its first preferred owner's, else the first host's. */
export function preferredSiteOf(
  preferred_owners: readonly string[],
  hosts: readonly { readonly name: string; readonly site: string }[],
): string {
  const first = preferred_owners[0]
  const host = first === undefined ? hosts[0] : hosts.find((h) => h.name === first)
  if (host === undefined)
    throw new HvlabError('HVLAB_E_USAGE', first === undefined ? 'the topology has no hosts' : `${first} is not a host of this lab`)
  return host.site
}
