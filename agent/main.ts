/** One Hyper-V host process: the failover cluster member (agent/cluster/cluster-host.ts) and its VM roles (agent/cluster/role-host.ts). */
import { runLabProcess } from '../shared/lab-process.js'
import { startClusterHost } from './cluster/cluster-host.js'
import { startRoleHost } from './cluster/role-host.js'

await runLabProcess('host', async (p) => {
  startRoleHost(p, await startClusterHost(p))
})
