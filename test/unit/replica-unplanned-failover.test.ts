/**
 * `hvlab replica failover VM` unplanned, when the cluster answers: refused unless the
 * cluster has the VM stopped, since a role that is pending, failed (retried after its retry
 * period), starting or stopping to restart would be started by the cluster while the
 * replica runs (scripts/cli/replica-failover-command.ts).
 */
import t from 'tap'
import { unplannedRefusal } from '../../scripts/cli/replica-failover-command.js'
import type { VmRoleRecord } from '../../shared/protocol/cluster-messages.js'

const role = (state: VmRoleRecord['state'], owner: string | null) => ({ name: 'web1', state, owner })

t.test('an unplanned failover waits for the cluster to have the VM stopped', async (t) => {
  t.equal(unplannedRefusal(role('stopped', null)), null, 'stopped: the cluster starts it only when told')
  t.match(unplannedRefusal(role('running', 'host-a2')), {
    code: 'HVLAB_E_STATE',
    message: /vm web1 still runs on its primary \(host-a2\): starting the replica now would run it twice\. Use --planned, stop it first/,
  })
  for (const [state, owner] of [
    ['pending', null],
    ['failed', null],
    ['starting', 'host-a1'],
    ['stopping', 'host-a1'],
  ] as const)
    t.match(
      unplannedRefusal(role(state, owner)),
      {
        code: 'HVLAB_E_STATE',
        message: new RegExp(`vm web1 is ${state}.* in the cluster, which may start it: .*\\(\`hvlab vm stop web1\`\\)`),
      },
      `${state}: refused`,
    )
})
