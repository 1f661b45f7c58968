/**
 * The host's answer to `hvlab vm hang NAME [--for-ms N] [--release]` (operator request
 * `vm-hang-request`, sent by the CLI to the VM's owner): hang or release the guest of a
 * VM that runs here. The health checks (vm-agent.ts) notice the silence.
 */
import type { LabProcess } from '../../shared/lab-process.js'
import type { Message } from '../../shared/protocol/messages.js'
import type { VmAgent } from '../cluster/vm-agent.js'

export function serveGuestHang(p: LabProcess, agent: Pick<VmAgent, 'hang' | 'releaseHang'>): void {
  p.serveOperator('vm-hang-request', (q): Message => {
    if (q.release) agent.releaseHang(q.vm)
    else agent.hang(q.vm, q.for_ms)
    return { t: 'ok' }
  })
}
