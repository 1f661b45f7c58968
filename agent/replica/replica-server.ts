/**
 * A standalone Hyper-V host's replica server (seed 002): takes the replication of VMs from
 * the primary servers it allows. Wired in agent/standalone-main.ts.
 */
import type { LabProcess } from '../../shared/lab-process.js'

export async function startReplicaServer(p: LabProcess): Promise<void> {
  p.log.info({}, 'replica server not yet enabled')
}
