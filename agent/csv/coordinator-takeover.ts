/**
 * The takeover of CSVs whose coordinator node left the cluster view. The cluster's
 * coordinator, holding quorum, asks the cluster to commit the new coordinator node that
 * coordinatorMoves picks, once per CSV while it is pending; every host emits
 * csv.coordinator-moved when its copy shows the move (within MOVE_PENDING_MS).
 */
import { describeError } from '../../shared/errors.js'
import type { CsvHostContext } from './csv-host-context.js'
import { csvKey, encodeCsv, type CsvEntry } from './csv-record.js'
import { coordinatorMoves, type CoordinatorMove } from './coordinator-choice.js'

const MOVE_PENDING_MS = 5000

interface PendingMove {
  from: string
  to: string
  at_ms: number
}

export class CoordinatorTakeover {
  /** Moves asked for, by CSV, until this host's copy shows them or they time out. */
  private readonly pending = new Map<string, PendingMove>()

  constructor(private readonly ctx: CsvHostContext) {}

  /** Reports the moves that committed, and (as the cluster's coordinator holding quorum) asks for the ones needed. */
  reconcile(): void {
    const { db, membership: m } = this.ctx
    const now = this.ctx.p.clock.now()
    const csvs = db.all().csvs
    this.settlePending(csvs, now)
    if (!m.runsRoles(now)) return
    const moves = coordinatorMoves(
      [...csvs.values()].map((e) => ({ name: e.name, owner: e.owner, array_site: this.ctx.arraySite(e.array) })),
      m.view().members,
      (node) => this.ctx.siteOf(node),
    )
    for (const mv of moves) {
      if (!this.pending.has(mv.csv)) this.askMove(csvs.get(mv.csv)!, mv, now)
    }
  }

  private settlePending(csvs: ReadonlyMap<string, CsvEntry>, now: number): void {
    for (const [name, mv] of this.pending) {
      const owner = csvs.get(name)?.owner
      if (owner === mv.to) {
        this.ctx.p.emitEvent('csv.coordinator-moved', {
          csv: name,
          from: mv.from,
          to: mv.to,
          reason: `${mv.from} left the cluster view`,
          epoch: this.ctx.membership.view().epoch,
        })
        this.pending.delete(name)
      } else if (owner === undefined || now - mv.at_ms > MOVE_PENDING_MS) this.pending.delete(name)
    }
  }

  private askMove(e: CsvEntry, mv: CoordinatorMove, now: number): void {
    const { log } = this.ctx
    try {
      this.ctx.cluster.command({
        kind: 'set-config',
        key: csvKey(mv.csv),
        value: encodeCsv({
          array: e.array,
          volume: e.volume,
          size_bytes: e.size_bytes,
          block_size_bytes: e.block_size_bytes,
          owner: mv.to,
        }),
      })
      this.pending.set(mv.csv, { from: mv.from, to: mv.to, at_ms: now })
      log.info({ csv: mv.csv, from: mv.from, to: mv.to }, 'CSV coordinator node left the view; moving the coordinator')
    } catch (err) {
      log.warn({ err: describeError(err), csv: mv.csv }, 'could not move the CSV coordinator; retried')
    }
  }
}
