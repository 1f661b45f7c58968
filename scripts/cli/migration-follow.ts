/**
 * How `vm migrate` and `vm move --quick` run a migration: ask the coordinator for it, then
 * poll the source until the migration with our ticket has ended, showing its progress on
 * stderr (a progress bar redrawn in place on a terminal, a line per change otherwise).
 */
import { randomBytes } from 'node:crypto'
import { HvlabError, describeError } from '../../shared/errors.js'
import type { MigrationOptionsMessage, MigrationResultMessage } from '../../shared/protocol/cluster-messages.js'
import { currentIo } from './cli-io.js'
import { HOST_REQUEST_TIMEOUT_MS, askAnyHost } from './cluster-client.js'
import type { ControlClient } from './control-client.js'
import { formatProgressBar } from './migration-progress.js'
import { mibText } from './units.js'
import { ownerOf } from './vm-queries.js'

/** How often `vm migrate` polls the source for progress. */
const MIGRATION_POLL_MS = 200
/** A migration that shows no result in this long is reported as lost (the source may have died). */
const MIGRATION_WAIT_MS = 10 * 60_000

/** A fresh ticket: how the source's status tells our migration from another. */
export const newTicket = (): string => `t${randomBytes(6).toString('hex')}`

/** Asks the coordinator to migrate, then follows the source until the migration with our ticket ended. */
export async function runMigration(
  client: ControlClient,
  name: string,
  to: string,
  options: MigrationOptionsMessage,
  quiet: boolean,
): Promise<MigrationResultMessage> {
  const source = await ownerOf(client, name)
  await askAnyHost(client, { t: 'vm-migrate-command-request', name, to, options, forwarded: false }, 'ok')
  const deadline = Date.now() + MIGRATION_WAIT_MS
  let shown = ''
  // On a terminal: one progress bar redrawn in place; otherwise (a pipe, a log) a line per change.
  const io = currentIo()
  const bar = !quiet && io.isTTY
  let pages_total = 0
  const clearBar = (): void => {
    if (bar && shown !== '') io.stderr(`\r${' '.repeat(Math.max(20, (io.columns ?? 100) - 1))}\r`)
  }
  for (;;) {
    if (Date.now() > deadline) {
      clearBar()
      throw new HvlabError(
        'HVLAB_E_TIMEOUT',
        `no result from ${source} for the migration of vm ${name} after ${MIGRATION_WAIT_MS / 1000} s; \`hvlab vm list\` shows where it runs`,
      )
    }
    let st
    try {
      st = await client.request(
        source,
        { t: 'vm-migration-status-request', vm: name },
        'vm-migration-status-reply',
        HOST_REQUEST_TIMEOUT_MS,
      )
    } catch (e) {
      clearBar()
      throw new HvlabError(
        'HVLAB_E_STATE',
        `lost track of the migration: ${source} did not answer (${describeError(e)}); \`hvlab vm list\` shows where vm ${name} runs`,
      )
    }
    if (st.ticket === options.ticket) {
      if (st.state === 'done' && st.result !== null) {
        clearBar()
        return st.result
      }
      pages_total = Math.max(pages_total, st.pages_left)
      const line = bar
        ? formatProgressBar({ ...st, pages_total }, io.columns ?? 100)
        : `${options.mode} ${name} ${source} → ${to}: ${st.stage} round ${st.round}, ${st.pages_left} pages left, ${mibText(st.bandwidth_bytes_per_s)} MiB/s, expected blackout ${st.expected_blackout_ms === null ? '-' : `${Math.round(st.expected_blackout_ms)} ms`}`
      if (!quiet && line !== shown) io.stderr(bar ? `\r${line}` : line + '\n')
      shown = line
    }
    await new Promise((r) => setTimeout(r, MIGRATION_POLL_MS))
  }
}
