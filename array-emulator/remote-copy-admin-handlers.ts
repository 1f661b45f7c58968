/**
 * The storage admin requests on Remote Copy groups: create, admit a volume pair, dismiss
 * one, run a verb (start, stop, failover, …) and report status, each answered with
 * rc-status; and remove a group (rc-removed, naming the volumes that were in it).
 */
import type { RemoteCopyService } from './remote-copy-service.js'
import type { StorageAdmin } from './storage-admin.js'

export function serveRemoteCopyAdmin(admin: StorageAdmin, rc: RemoteCopyService): void {
  admin.serve('rc-create', async (m) => ({ t: 'rc-status', groups: [await rc.create(m)] }))
  admin.serve('rc-admit', async (m) => ({ t: 'rc-status', groups: [await rc.admit(m.group, m.volume, m.remote_volume)] }))
  admin.serve('rc-dismiss', async (m) => ({ t: 'rc-status', groups: [await rc.dismiss(m.group, m.volume)] }))
  admin.serve('rc-remove', async (m) => ({ t: 'rc-removed', group: m.group, volumes: await rc.remove(m.group) }))
  admin.serve('rc-verb', async (m) => ({ t: 'rc-status', groups: [await rc.verb(m.group, m.verb, m.force === true)] }))
  admin.serve('rc-status-request', (m) => ({ t: 'rc-status', groups: rc.status(m.group) }))
}
