/**
 * The VMs an event of the timeline names, read from its typed details (never its text):
 * a `vm` detail (vm.*, migration.*, clx.*), the `role` of a role event (a VM role is named
 * after its VM), and the `vms` list of `role.stopped-no-quorum`. Elsewhere `role` is a word
 * (a Remote Copy role, a process's role), not a VM.
 */
import type { TimelineEvent } from './events.js'

/** The VM names `e` carries in its details, in no particular order. */
export function vmsNamedBy(e: Pick<TimelineEvent, 'kind' | 'details'>): string[] {
  const d: Readonly<Record<string, unknown>> = e.details
  const names: string[] = []
  if (typeof d.vm === 'string') names.push(d.vm)
  if (e.kind.startsWith('role.') && typeof d.role === 'string') names.push(d.role)
  if (Array.isArray(d.vms)) names.push(...d.vms.filter((v): v is string => typeof v === 'string'))
  return names
}
