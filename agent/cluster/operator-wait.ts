/**
 * Where an operator request runs: here when this host runs the roles (the coordinator
 * with quorum), else forwarded to the coordinator. Through a view change (no coordinator,
 * no connection, a timeout, a coordinator without quorum) it tries again every
 * OPERATOR_RETRY_MS on the Clock until OPERATOR_WAIT_MS have passed. A request that was
 * itself forwarded is tried once: the host the operator asked does the waiting.
 */
import { sleepOn, type Clock } from '../../shared/clock.js'
import { HvlabError, isTransientError } from '../../shared/errors.js'
import { OPERATOR_WAIT_MS } from './role-request-timeouts.js'

export const OPERATOR_RETRY_MS = 250

export interface OperatorWaitDeps {
  /** This host. */
  name: string
  clock: Clock
  /** This host's current view of the cluster. */
  view(): { readonly coordinator: string; readonly epoch: number }
  /** Does this host run the roles now (the leader, its RoleService running)? */
  runsRoles(): boolean
}

/** Runs `here` if this host runs the roles, else `there` on the coordinator; waits through a view change. */
export async function onCoordinator<T>(
  deps: OperatorWaitDeps,
  here: () => Promise<T> | T,
  there: (coordinator: string) => Promise<T>,
  forwarded: boolean,
): Promise<T> {
  const deadline = deps.clock.now() + OPERATOR_WAIT_MS
  for (;;) {
    try {
      return await tryOnce(deps, here, there, forwarded)
    } catch (e) {
      // The coordinator's refusal is given as this host's own: the operator asked this host.
      if (forwarded || !isTransientError(e) || deps.clock.now() >= deadline) throw e instanceof HvlabError ? e.withoutOrigin() : e
      await sleepOn(deps.clock, OPERATOR_RETRY_MS)
    }
  }
}

async function tryOnce<T>(
  deps: OperatorWaitDeps,
  here: () => Promise<T> | T,
  there: (coordinator: string) => Promise<T>,
  forwarded: boolean,
): Promise<T> {
  const coordinator = deps.view().coordinator
  if (deps.runsRoles()) return await here()
  if (forwarded || coordinator === deps.name || deps.view().epoch === 0) {
    throw new HvlabError(
      'HVLAB_E_NO_QUORUM',
      `the cluster has no coordinator with quorum right now (${deps.name} sees epoch ${deps.view().epoch}); retry when \`hvlab cluster status\` shows quorum HELD`,
    )
  }
  return await there(coordinator)
}
