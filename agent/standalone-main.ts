/**
 * One standalone Hyper-V host process: a Hyper-V host outside the failover cluster, with
 * storage of its own, serving as a Hyper-V Replica server (agent/replica/replica-server.ts),
 * typically in a DR site. It shares agent/ with the cluster host because both are Hyper-V
 * hosts; it runs none of the cluster's parts (membership, roles, CSVs).
 */
import { runLabProcess } from '../shared/lab-process.js'
import { startReplicaServer } from './replica/standalone-host.js'

await runLabProcess('standalone', async (p) => {
  await startReplicaServer(p)
})
