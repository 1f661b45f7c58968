/**
 * `replica failover VM --latest-app-consistent`: the recovery point to start from is the
 * newest application-consistent one the replica server holds of the VM.
 */
import { HvlabError } from '../../shared/errors.js'
import type { ControlClient } from './control-client.js'
import { sideOf } from './replica-queries.js'

/** The cycle of the newest application-consistent recovery point of `vm` on `server`; throws when it has none. */
export async function latestAppConsistentCycle(client: ControlClient, server: string, vm: string): Promise<number> {
  const replica = await sideOf(client, server, vm, 'replicas')
  if (replica === null)
    throw new HvlabError('HVLAB_E_NOT_FOUND', `${server} holds no replica of vm ${vm} it can list (down, or not its replica server)`)
  const point = replica.recovery_points.filter((p) => p.kind === 'application').at(-1)
  if (point === undefined)
    throw new HvlabError(
      'HVLAB_E_NOT_FOUND',
      `${server} holds no application-consistent recovery point of vm ${vm} (${replica.recovery_points.length} crash-consistent); \`hvlab replica status ${vm} --json\` lists them, --recovery-point CYCLE picks one`,
    )
  return point.cycle
}
