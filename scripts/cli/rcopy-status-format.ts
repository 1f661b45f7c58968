/**
 * `hvlab rcopy status` as people read it: a table of every array's side of each remote
 * copy group, a table of their volumes, and notes on what needs attention (a link failure,
 * stuck synchronous writes, a damaged journal) and on what a synchronous acknowledgement means.
 */
import type { RcGroupStatus } from '../../shared/protocol/storage-messages.js'
import { duration, table } from './format.js'

/** One array's view of its groups, or why it did not answer. */
export interface GroupView {
  array: string
  groups: RcGroupStatus[]
  error?: string
}

/** What a synchronous acknowledgement means, for the groups' policies (printed under `rcopy status`). */
export function syncAckNote(groups: readonly RcGroupStatus[]): string | undefined {
  const sync = groups.filter((g) => g.mode === 'sync')
  if (sync.length === 0) return undefined
  const timeouts = [...new Set(sync.map((g) => g.sync_write_timeout_ms).filter((ms) => ms !== undefined))]
  const bound = timeouts.length > 0 ? `${timeouts.join('/')} ms` : 'the sync write timeout'
  return (
    `sync: a host write is acknowledged once the partner has it on disk. While the partner is unreachable, or a write ` +
    `waits longer than ${bound} (rc_sync_write_timeout_ms) or is refused by it, policy no_fail_wrt_on_err (the default, ` +
    `as on 3PAR) acknowledges writes on the primary alone and the group shows NotSynced until it has resynced; ` +
    `fail_wrt_on_err refuses them instead.`
  )
}

/** Sync writes waiting for the partner now, and how many are stuck past their bound. */
function waiting(g: RcGroupStatus): string {
  if (g.sync_writes_waiting === undefined) return '-'
  return g.sync_writes_overdue ? `${g.sync_writes_waiting} (${g.sync_writes_overdue} stuck)` : `${g.sync_writes_waiting}`
}

/** What a person must know about one side of a group beyond the table: a link failure, a damaged journal, stuck writes. */
function groupNotes(array: string, g: RcGroupStatus): string[] {
  const notes: string[] = []
  const f = g.last_link_failure
  if (f)
    notes.push(
      `${array} ${g.group}: link failed ${duration(Math.max(0, Math.round(Date.now() - f.at_ms)))} ago (${f.code}, ${g.link_failures_total ?? 1} in all): ${f.reason}`,
    )
  if (g.sync_writes_overdue)
    notes.push(
      `${array} ${g.group}: ${g.sync_writes_overdue} synchronous writes are stuck past ${g.sync_write_timeout_ms} ms; the group is NotSynced and the link is about to count as failed`,
    )
  if (g.journal_damaged)
    notes.push(
      `${array} ${g.group}: its journal was damaged when the array opened it; every block is being resynced by comparison (see the rc.journal-damaged event)`,
    )
  return notes
}

export function formatGroups(views: readonly GroupView[]): string {
  const rows = [
    ['GROUP', 'ARRAY', 'ROLE', 'PARTNER', 'MODE', 'POLICY', 'STARTED', 'LINK', 'LAST-SYNC', 'BEHIND', 'RESYNCED', 'SYNC-WAITING'],
  ]
  const vols = [['GROUP', 'ARRAY', 'VOLUME', 'REMOTE', 'STATE', 'BEHIND']]
  const notes: string[] = []
  for (const v of views) {
    if (v.error) notes.push(`${v.array}: ${v.error}`)
    for (const g of v.groups) {
      rows.push([
        g.group,
        v.array,
        g.role,
        `${g.partner} (${g.partner_role ?? 'not heard'})`,
        g.mode,
        g.write_error_policy ?? '-',
        g.started ? 'yes' : 'no',
        g.link_up ? 'up' : 'down',
        g.last_sync_ms === undefined ? 'never' : `${duration(Math.max(0, Math.round(Date.now() - g.last_sync_ms)))} ago`,
        `${g.bytes_behind}`,
        `${g.bytes_resynced_total}`,
        waiting(g),
      ])
      for (const x of g.volumes) vols.push([g.group, v.array, x.volume, x.remote_volume, x.state, `${x.bytes_behind}`])
      notes.push(...groupNotes(v.array, g))
    }
  }
  const ack = syncAckNote(views.flatMap((v) => v.groups))
  if (ack) notes.push(ack)
  return [
    rows.length > 1 ? table(rows) : 'no remote copy groups',
    vols.length > 1 ? '\n' + table(vols) : '',
    ...notes.map((n) => `note: ${n}`),
  ]
    .filter(Boolean)
    .join('\n')
}
