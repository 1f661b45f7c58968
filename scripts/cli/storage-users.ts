/**
 * Who uses a piece of storage, for the removal commands to refuse while something does:
 * the VM roles (their disks) and the Cluster Shared Volumes (their volumes), as the cluster
 * knows them. A lab without hosts has neither. When no host answers, nobody can tell, and
 * the removal is refused with why.
 */
import { HvlabError, describeError } from '../../shared/errors.js'
import type { VmRoleRecord } from '../../shared/protocol/cluster-messages.js'
import type { CsvInfo } from '../../shared/protocol/csv-messages.js'
import type { LabStatus } from '../controller/lab-controller.js'
import { chosenHosts } from './cluster-choice.js'
import { askAnyHost } from './cluster-client.js'
import type { ControlClient } from './control-client.js'

async function hasHosts(client: ControlClient): Promise<boolean> {
  const lab = await client.get<LabStatus>('/v1/status')
  return chosenHosts(lab).length > 0
}

/** Asks the cluster; a failure to ask is a refusal of `what` (nobody can tell whether it is in use). */
async function fromCluster<T>(what: string, ask: () => Promise<T>): Promise<T> {
  try {
    return await ask()
  } catch (e) {
    throw new HvlabError(
      'HVLAB_E_STATE',
      `cannot ${what} now: the cluster could not say whether a vm or CSV uses it (${describeError(e)}); retry when \`hvlab cluster status\` answers`,
      { cause: e },
    )
  }
}

/** The VM roles whose disk `uses` matches. */
export async function vmsUsing(client: ControlClient, what: string, uses: (r: VmRoleRecord) => boolean): Promise<VmRoleRecord[]> {
  if (!(await hasHosts(client))) return []
  const list = await fromCluster(what, () => askAnyHost(client, { t: 'role-list-request', forwarded: false }, 'role-list-reply'))
  return list.roles.filter(uses)
}

/** The CSVs that `uses` matches. */
export async function csvsUsing(client: ControlClient, what: string, uses: (c: CsvInfo) => boolean): Promise<CsvInfo[]> {
  if (!(await hasHosts(client))) return []
  const list = await fromCluster(what, () => askAnyHost(client, { t: 'csv-list-request' }, 'csv-list-reply'))
  return list.csvs.filter(uses)
}

/** "vm web1 (`hvlab vm remove web1`)", joined. */
export function vmRemoveHints(vms: readonly VmRoleRecord[]): string {
  return vms.map((r) => `vm ${r.name} (\`hvlab vm remove ${r.name}\`)`).join(', ')
}
