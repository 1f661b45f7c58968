/**
 * A coordinator node that lost its own path to a CSV's array hands the CSV on: holding
 * quorum, it asks the members in coordinatorCandidates order to check their path and makes
 * the first that has one the coordinator node (event csv.coordinator-moved). When none has
 * one it keeps the role and says so in its log, at most every STRANDED_LOG_INTERVAL_MS.
 */
import type { CsvHostContext } from './csv-host-context.js'
import type { CsvEntry } from './csv-record.js'
import type { CsvVolumes } from './csv-volumes.js'
import { coordinatorCandidates } from './coordinator-choice.js'

const STRANDED_LOG_INTERVAL_MS = 30_000

export class CoordinatorHandOff {
  /** CSVs being handed off now (one check at a time per CSV). */
  private readonly handingOff = new Set<string>()
  private strandedLoggedAt = -Infinity

  constructor(
    private readonly ctx: CsvHostContext,
    private readonly volumes: CsvVolumes,
  ) {}

  /** As coordinator node of `name`: check the own path; without one, hand the CSV to the first member that has one. */
  async checkOwnPath(name: string): Promise<void> {
    const { p, db, membership: m } = this.ctx
    const e = db.entry(name)
    if (e === undefined || e.owner !== p.name || this.handingOff.has(name)) return
    const own = await this.volumes.volume(name).checkDirect()
    if (own.direct || !m.holdsLease(p.clock.now())) return
    this.handingOff.add(name)
    try {
      if (await this.handOff(e, own.detail)) return
      this.logStranded(name, own.detail)
    } finally {
      this.handingOff.delete(name)
    }
  }

  /** Gives CSV `e` to the first candidate that has a direct path; false if none has one. */
  private async handOff(e: CsvEntry, detail: string): Promise<boolean> {
    const { p, db, membership: m } = this.ctx
    const name = e.name
    for (const to of coordinatorCandidates(p.name, this.ctx.arraySite(e.array), m.view().members, (n) => this.ctx.siteOf(n))) {
      const r = await this.ctx.ask(to, { t: 'csv-path-check', csv: name }, 'csv-path-checked').catch(() => null)
      if (!r?.message.direct) continue
      const current = db.entry(name)
      if (current?.owner !== p.name) return true // moved meanwhile (operator, takeover)
      await this.ctx.setOwner(current, to)
      p.emitEvent('csv.coordinator-moved', {
        csv: name,
        from: p.name,
        to,
        reason: `${p.name} lost its path to ${e.array}: ${detail}`.slice(0, 240),
      })
      this.ctx.log.info({ csv: name, to }, 'lost the path to the CSV array; handed the coordinator role to a node that has one')
      return true
    }
    return false
  }

  private logStranded(name: string, detail: string): void {
    const now = this.ctx.p.clock.now()
    if (now - this.strandedLoggedAt < STRANDED_LOG_INTERVAL_MS) return
    this.strandedLoggedAt = now
    this.ctx.log.warn({ csv: name, detail }, 'lost the path to the CSV array and no other member has one; keeping the coordinator role')
  }
}
