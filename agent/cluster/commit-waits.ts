/**
 * Operator commands waiting for the cluster database writes they caused to reach the
 * quorum. The role service answers a command only once its role records are committed
 * (as WSFC's global update completes on every node before the API call returns): a
 * coordinator killed a moment after answering must not lose a change the operator saw
 * accepted.
 *
 * A write counts as committed when the committed database holds its value, or when the
 * service no longer wants the key (it wants a key until the database holds what it last
 * wanted: a newer value of the same record carries this one's change, as the controller's
 * state is cumulative).
 */
import { HvlabError } from '../../shared/errors.js'

/** How long a command waits for its writes (below the 3 s a forwarding host waits for its answer). */
export const COMMIT_WAIT_MS = 2000

/** Database writes by key; null deletes the entry. */
export type DatabaseWrites = ReadonlyMap<string, string | null>

interface Waiter {
  writes: DatabaseWrites
  what: string
  deadline_ms: number
  resolve(): void
  reject(e: HvlabError): void
}

export class CommitWaits {
  private waiters: Waiter[] = []

  /** Resolves when `done(writes)`, checked at each `settle`; rejects at the deadline or on `failAll`. */
  wait(writes: DatabaseWrites, what: string, now_ms: number): Promise<void> {
    return new Promise((resolve, reject) => this.waiters.push({ writes, what, deadline_ms: now_ms + COMMIT_WAIT_MS, resolve, reject }))
  }

  get size(): number {
    return this.waiters.length
  }

  /** Resolves the waiters whose writes are committed, rejects those past their deadline. */
  settle(committed: (writes: DatabaseWrites) => boolean, now_ms: number): void {
    const still: Waiter[] = []
    for (const w of this.waiters) {
      if (committed(w.writes)) w.resolve()
      else if (now_ms >= w.deadline_ms) w.reject(notCommitted(w.what, `not within ${COMMIT_WAIT_MS} ms`))
      else still.push(w)
    }
    this.waiters = still
  }

  /** This host stopped running the roles: no waiter's writes will be repeated from here. */
  failAll(why: string): void {
    const all = this.waiters
    this.waiters = []
    for (const w of all) w.reject(notCommitted(w.what, why))
  }
}

function notCommitted(what: string, why: string): HvlabError {
  return new HvlabError(
    'HVLAB_E_STATE',
    `${what} was accepted but not committed to the cluster database (${why}), so it may not have taken; \`hvlab vm list\` shows the roles as they are`,
  )
}
