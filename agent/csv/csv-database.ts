/**
 * The CSV records in the cluster database as a host reads and writes them: decoded on
 * demand from this host's copy, and written through the quorum (`set-config`), waiting
 * until this host's copy shows the write committed (re-asking if it was dropped, e.g.
 * during a view change).
 */
import { HvlabError } from '../../shared/errors.js'
import type { Clock } from '../../shared/clock.js'
import type { ClusterService } from '../cluster/cluster-service.js'
import { decodeCsvs, type CsvEntry, type DecodedCsvs } from './csv-record.js'

export const COMMIT_TIMEOUT_MS = 10_000
const COMMIT_POLL_MS = 100
const COMMIT_RESEND_MS = 2000

export class CsvDatabase {
  private cached: { db_epoch: number; decoded: DecodedCsvs } | undefined

  constructor(
    private readonly cluster: ClusterService,
    private readonly clock: Clock,
  ) {}

  all(): DecodedCsvs {
    const db = this.cluster.membership.database()
    if (this.cached?.db_epoch !== db.db_epoch) this.cached = { db_epoch: db.db_epoch, decoded: decodeCsvs(db.config) }
    return this.cached.decoded
  }

  entry(name: string): CsvEntry | undefined {
    return this.all().csvs.get(name)
  }

  /** Writes (or deletes, with null) one entry through the quorum; resolves once this host sees it committed. */
  async commit(key: string, value: string | null, timeout_ms = COMMIT_TIMEOUT_MS): Promise<void> {
    const deadline = this.clock.now() + timeout_ms
    const committed = (): boolean => (this.cluster.membership.database().config[key] ?? null) === value
    let sent_ms = -Infinity
    while (!committed()) {
      const now = this.clock.now()
      if (now >= deadline)
        throw new HvlabError(
          'HVLAB_E_TIMEOUT',
          `the cluster did not commit ${key} within ${timeout_ms / 1000} s (a view change or lost quorum?); check \`hvlab cluster status\` and retry`,
        )
      if (now - sent_ms >= COMMIT_RESEND_MS) {
        this.cluster.command({ kind: 'set-config', key, value })
        sent_ms = now
      }
      await new Promise<void>((r) => this.clock.setTimer(COMMIT_POLL_MS, r))
    }
  }

  /** Resolves once `probe` holds on this host's copy, or throws after `timeout_ms`. */
  async until(what: string, probe: () => boolean, timeout_ms = COMMIT_TIMEOUT_MS): Promise<void> {
    const deadline = this.clock.now() + timeout_ms
    while (!probe()) {
      if (this.clock.now() >= deadline)
        throw new HvlabError(
          'HVLAB_E_TIMEOUT',
          `${what} did not reach this host's copy of the cluster database within ${timeout_ms / 1000} s`,
        )
      await new Promise<void>((r) => this.clock.setTimer(COMMIT_POLL_MS, r))
    }
  }
}
