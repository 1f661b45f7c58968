/**
 * How `vm migrate` and `vm move --quick` run a migration: ask the coordinator for it, then
 * poll the source (waitFor) until the migration with our ticket has ended, showing its
 * progress on stderr (a progress bar redrawn in place on a terminal, a line per change
 * otherwise). The bar's line is erased before the result is printed.
 */
import { randomBytes } from 'node:crypto'
import { HvlabError, describeError } from '../../shared/errors.js'
import type { MigrationOptionsMessage, MigrationResultMessage } from '../../shared/protocol/cluster-messages.js'
import type { MessageOf } from '../../shared/protocol/messages.js'
import { currentIo } from './cli-io.js'
import { HOST_REQUEST_TIMEOUT_MS, askAnyHost } from './cluster-client.js'
import type { ControlClient } from './control-client.js'
import { formatProgressBar, progressText } from './migration-progress.js'
import { ownerOf } from './vm-queries.js'
import { type WaitStep, done, failed, realWaitClock, waitFor, waiting } from './wait-for.js'

/** How often `vm migrate` polls the source for progress. */
const MIGRATION_POLL_MS = 200
/** How long `vm migrate` and `vm move --quick` follow a migration by default (`--timeout-s`), in seconds. */
export const MIGRATION_WAIT_S = 600
/** Erases the terminal line the cursor is on and goes back to its start. */
const ERASE_LINE = '\r\x1b[2K'

/** A fresh ticket: how the source's status tells our migration from another. */
export const newTicket = (): string => `t${randomBytes(6).toString('hex')}`

type StatusReply = MessageOf<'vm-migration-status-reply'>

/** Asks the coordinator to migrate, then follows the source until the migration with our ticket ended. */
export async function runMigration(
  client: ControlClient,
  name: string,
  to: string,
  options: MigrationOptionsMessage,
  follow: { quiet: boolean; timeout_ms: number },
): Promise<MigrationResultMessage> {
  const source = await startMigration(client, name, to, options)
  const quiet = follow.quiet
  const view = new ProgressView(quiet, options.mode, `${options.mode} ${name} ${source} → ${to}`)
  try {
    return await waitFor(
      {
        what: `the migration of vm ${name} on ${source}`,
        watch: '`hvlab vm list`',
        timeout_ms: follow.timeout_ms,
        poll: async () => {
          const st = await statusOn(client, source, name)
          if (st.ticket !== options.ticket) return waiting('not started on the source yet')
          if (st.state === 'done' && st.result !== null) return done(st.result)
          view.show(st)
          return waiting(`${st.stage} round ${st.round}, ${st.pages_left} pages left`)
        },
      },
      realWaitClock,
      MIGRATION_POLL_MS,
    )
  } finally {
    view.clear()
  }
}

/** Asks the coordinator to migrate `name` to `to`; returns the host it leaves. */
export async function startMigration(client: ControlClient, name: string, to: string, options: MigrationOptionsMessage): Promise<string> {
  const source = await ownerOf(client, name)
  await askAnyHost(client, { t: 'vm-migrate-command-request', name, to, options, forwarded: false }, 'ok')
  return source
}

/** The source's status of the VM's latest migration; a source that does not answer ends the wait (it may have died). */
async function statusOn(client: ControlClient, source: string, name: string): Promise<StatusReply> {
  try {
    return await client.request(
      source,
      { t: 'vm-migration-status-request', vm: name },
      'vm-migration-status-reply',
      HOST_REQUEST_TIMEOUT_MS,
    )
  } catch (e) {
    throw new HvlabError(
      'HVLAB_E_STATE',
      `lost track of the migration: ${source} did not answer (${describeError(e)}); \`hvlab vm list\` shows where vm ${name} runs`,
    )
  }
}

/** The progress on stderr: one bar redrawn in place on a terminal, else a line per change; nothing when quiet. */
class ProgressView {
  private shown = ''
  private pages_total = 0
  private readonly io = currentIo()
  private readonly bar: boolean

  constructor(
    private readonly quiet: boolean,
    private readonly mode: 'live' | 'quick',
    private readonly prefix: string,
  ) {
    this.bar = !quiet && this.io.isTTY
  }

  show(st: StatusReply): void {
    this.pages_total = Math.max(this.pages_total, st.pages_left)
    const p = { ...st, mode: this.mode, pages_total: this.pages_total }
    const line = this.bar ? formatProgressBar(p, this.io.columns ?? 100) : `${this.prefix}: ${progressText(p)}`
    if (!this.quiet && line !== this.shown) this.io.stderr(this.bar ? `\r${line}` : line + '\n')
    this.shown = line
  }

  /** Erases the bar's line, so the result starts on a clean one. */
  clear(): void {
    if (this.bar && this.shown !== '') this.io.stderr(ERASE_LINE)
    this.shown = ''
  }
}
