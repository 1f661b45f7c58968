/** One Hyper-V host process: the failover cluster member (agent/cluster/cluster-host.ts) its Cluster Shared Volumes (agent/csv/) and its VM roles (agent/cluster/role-host.ts). */
import { labEnv } from '../shared/lab-env.js'
import { runLabProcess } from '../shared/lab-process.js'
import { startClusterHost } from './cluster/cluster-host.js'
import { startRoleHost } from './cluster/role-host.js'
import { startCsvHost } from './csv/csv-host.js'
import { hostLabOptions } from './host-lab-env.js'

await runLabProcess('host', async (p) => {
  // HVLAB_* settings (shared/lab-env.ts): a bad value, or a journal that cannot be opened, and the host refuses to start
  const options = hostLabOptions(p, labEnv(process.env))
  const cluster = await startClusterHost(p)
  const csv = startCsvHost(p, cluster) // Cluster Shared Volumes (agent/csv/)
  startRoleHost(p, cluster, csv, options)
})
