/** One Hyper-V host process: the failover cluster member (agent/cluster/cluster-host.ts) its Cluster Shared Volumes (agent/csv/) and its VM roles (agent/cluster/role-host.ts). */
import { runLabProcess } from '../shared/lab-process.js'
import { startClusterHost } from './cluster/cluster-host.js'
import { startRoleHost } from './cluster/role-host.js'
import { startCsvHost } from './csv/csv-host.js'

await runLabProcess('host', async (p) => {
  const cluster = await startClusterHost(p)
  const csv = startCsvHost(p, cluster) // Cluster Shared Volumes (agent/csv/)
  startRoleHost(p, cluster, csv)
})
