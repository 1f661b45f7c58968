/** One Hyper-V host process: the failover cluster member (agent/cluster/cluster-host.ts). */
import { runLabProcess } from '../shared/lab-process.js'
import { startClusterHost } from './cluster/cluster-host.js'

await runLabProcess('host', async (p) => {
  await startClusterHost(p)
})
