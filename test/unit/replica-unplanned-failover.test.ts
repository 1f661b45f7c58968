/**
 * `hvlab replica failover VM` unplanned, when the cluster answers: refused unless the
 * cluster has the VM stopped, since a role that is pending, failed (retried after its retry
 * period), starting or stopping to restart would be started by the cluster while the
 * replica runs (scripts/cli/replica-failover-command.ts); and what it says it loses.
 */
import t from 'tap'
import { lossWords, unplannedRefusal } from '../../scripts/cli/replica-failover-steps.js'
import type { VmRoleRecord } from '../../shared/protocol/cluster-messages.js'
import type { ReplicaSideStatus } from '../../shared/protocol/replica-messages.js'

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

t.test('what an unplanned failover loses: the writes after the log its replica stands at was closed', async (t) => {
  const side = {
    applied_closed_at_ms: 10_000,
    recovery_points: [{ cycle: 3, at_ms: 4_000, kind: 'crash' as const }],
  } as unknown as ReplicaSideStatus
  t.equal(lossWords(side, undefined, 11_600), ', whose log closed 1.6 s before the failover: what was written after it is lost (the RPO)')
  t.match(lossWords(side, 3, 11_600), /closed 7\.6 s before/, 'a recovery point: its own log')
  t.equal(lossWords(side, 9, 11_600), '', 'a point it does not have: nothing to say')
  t.equal(lossWords({ ...side, applied_closed_at_ms: null } as ReplicaSideStatus, undefined, 11_600), '', 'none applied since a resync')
  t.equal(lossWords(null, undefined, 11_600), '', 'no replica side')
})
