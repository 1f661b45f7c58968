/**
 * How `hvlab replica enable` and `replica import` wait for a VM's initial replication: the
 * primary side's status, polled until its first resync is done, or until it waits for an
 * initial copy on media; a refusal by the replica server's allow list ends the wait.
 */
import { REPLICA_RETRY_MS } from '../../shared/protocol/replica-limits.js'
import type { PrimarySideStatus } from '../../shared/protocol/replica-messages.js'
import type { ControlClient } from './control-client.js'
import { primaryStatus } from './replica-queries.js'
import { WAIT_POLL_MS, done, failed, waitFor, waiting } from './wait-for.js'

/**
 * Waits until the initial replication of `vm` is done, or (`copy_wanted`) until it waits
 * for a copy to be imported: at once with `wanted`, once the disk is exported with
 * `exported`, never with `no` (the copy is being imported). Null when the VM does not run.
 * `sides`: the primary side of the VM where it runs (default: its role's owner's).
 */
export async function initialReplication(
  client: ControlClient,
  vm: string,
  to: string,
  timeout_s: number,
  copy_wanted: 'wanted' | 'exported' | 'no',
  sides: () => Promise<PrimarySideStatus[] | null> = () => primaryStatus(client, vm),
): Promise<PrimarySideStatus | null> {
  let refused_since_ms: number | null = null
  return waitFor({
    what: `the initial replication of vm ${vm} to ${to}`,
    watch: `\`hvlab replica status ${vm}\``,
    timeout_ms: timeout_s * 1000,
    poll: async () => {
      const now = await sides()
      if (now === null) return done(null)
      const p = now.find((x) => x.vm === vm)
      if (p === undefined) return waiting('the host running it has not started replicating yet')
      // A refusal by the replica server's allow list does not cure itself: once the host's next try (REPLICA_RETRY_MS) was refused too, say so.
      const refused = p.last_error_code === 'HVLAB_E_REPLICA_NOT_ALLOWED'
      refused_since_ms = refused ? (refused_since_ms ?? Date.now()) : null
      if (refused_since_ms !== null && Date.now() - refused_since_ms > REPLICA_RETRY_MS + WAIT_POLL_MS * 4)
        return failed('HVLAB_E_REFUSED', `${p.last_error ?? 'refused'} (vm ${vm} stays set to replicate; it begins once allowed)`)
      if (p.waiting_for === 'initial-copy' && copy_wanted !== 'no' && (copy_wanted === 'wanted' || p.export_file !== null)) return done(p)
      if (p.waiting_for === 'initial-copy')
        return waiting(copy_wanted === 'exported' ? 'the disk is being exported' : 'the initial copy to be imported')
      if (p.resyncing || p.last_error !== null) return waiting(p.last_error ?? 'the initial replication is under way')
      return done(p)
    },
  })
}
