/**
 * Puts `hvlab replica size` into a cluster host (agent/cluster/role-host.ts): the host's
 * churn measurements (churn-measurements.ts) hear its VMs' disk writes through the write
 * sink, and answer the operator's replica-size requests for the VMs running here.
 */
import type { LabProcess } from '../../shared/lab-process.js'
import type { VmAgent } from '../cluster/vm-agent.js'
import { ChurnMeasurements } from './churn-measurements.js'
import { primaryDisk, vmsRunning } from './replication-wiring.js'

export function newChurnMeasurements(p: LabProcess, agent: () => VmAgent): ChurnMeasurements {
  const measurements = new ChurnMeasurements({
    host: p.name,
    clock: p.clock,
    time_scale: p.topology.timeScale,
    running: () => vmsRunning(agent()),
    diskOf: (vm) => primaryDisk(p.name, agent(), vm),
  })
  p.serveOperator('replica-size-request', (q) => measurements.begin(q.vm, q.duration_ms))
  p.serveOperator('replica-size-status-request', (q) => measurements.status(q.vm))
  return measurements
}
