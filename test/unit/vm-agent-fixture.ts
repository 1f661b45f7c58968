/**
 * A VmAgent for unit tests on a manual clock: the settings every such test shares
 * (host-a1, 4 GiB, a lease always held, 1.5 s no-quorum grace, checks every 100 ms, short
 * health-check intervals, failures and events dropped), each overridable.
 */
import type { Clock } from '../../shared/clock.js'
import { VmAgent, type VmAgentDeps } from '../../agent/cluster/vm-agent.js'

export const TEST_HEALTH = {
  looks_alive_interval_ms: 1000,
  is_alive_interval_ms: 5000,
  heartbeat_timeout_ms: 3000,
  unresponsive_after_ms: 6000,
  boot_grace_ms: 2000,
}

export function testVmAgent(deps: Partial<VmAgentDeps> & { clock: Clock }): VmAgent {
  return new VmAgent({
    host: 'host-a1',
    memory_mib: 4096,
    holdsLease: () => true,
    no_quorum_grace_ms: 1500,
    check_interval_ms: 100,
    health: TEST_HEALTH,
    reportFailure: () => {},
    emitEvent: () => {},
    ...deps,
  })
}
