/**
 * `hvlab vm move`, `vm migrate` and `vm migrate-cancel`: moving a running VM to another
 * host, by live migration in the background, by quick migration (waits and reports the
 * downtime), or by live migration followed to its end with its progress and result.
 */
import type { Command } from 'commander'
import type { MigrationOptionsMessage, MigrationResultMessage, VmRoleRecord } from '../../shared/protocol/cluster-messages.js'
import { HvlabError } from '../../shared/errors.js'
import { setExitCode } from './cli-io.js'
import { awaitClientBlackout, type ClientBlackout } from './client-blackout.js'
import { HOST_REQUEST_TIMEOUT_MS, roleCommand } from './cluster-client.js'
import { ControlClient } from './control-client.js'
import { MIGRATION_WAIT_S, newTicket, runMigration, startMigration } from './migration-follow.js'
import { migrationJson } from './migration-json.js'
import { dirOption, intIn, out, printResult } from './options.js'
import { mibText } from './units.js'
import { TimelineCursor } from './timeline-cursor.js'
import { ownerOf, vmRoleNow } from './vm-queries.js'
import { type WaitOpts, type WaitStep, done, failed, waitFor, waitOptions, waiting } from './wait-for.js'

/** A move waits this long by default for the VM to run on its new host (a live migration of a big VM takes a while). */
const MOVE_TIMEOUT_S = 120

export function registerVmMove(vm: Command): void {
  const move = vm
    .command('move')
    .description(
      'move a running VM to another host by live migration and wait until it runs there (--no-wait: return at once); with --quick by quick migration: save memory and state, transfer, restore — the VM is down for the whole copy, and the command reports how long',
    )
    .argument('<name>', 'the VM name')
    .requiredOption('--to <host>', 'the host to move it to')
    .option('--quick', 'quick migration; reports the downtime')
    .option('--json', 'with --quick: the result as one object')
  waitOptions(move, MOVE_TIMEOUT_S).addOption(dirOption()).action(moveVm)
}

type VmMoveOptions = WaitOpts & { dir: string; to: string; quick?: boolean; json?: boolean }

async function moveVm(name: string, o: VmMoveOptions): Promise<void> {
  if (o.quick && !o.wait)
    throw new HvlabError('HVLAB_E_USAGE', '--no-wait is for a live move; a quick move always waits and reports its downtime')
  const client = ControlClient.forDir(o.dir)
  if (!o.quick) return liveMove(client, name, o)
  const r = await runMigration(
    client,
    name,
    o.to,
    { mode: 'quick', budget_ms: null, max_rounds: null, verify: false, ticket: newTicket() },
    { quiet: o.json === true, timeout_ms: o.timeoutS * 1000 },
  )
  printResult(o.json, migrationJson(r), () =>
    r.outcome === 'completed'
      ? `quick-migrated vm ${name} to ${o.to}: down for ${r.downtime_ms} ms (${mibText(r.bytes_sent)} MiB sent)`
      : `vm ${name} stays on ${r.source}: ${r.outcome}: ${r.reason}`,
  )
  if (r.outcome !== 'completed') setExitCode(1)
}

/** A move by the cluster's default way (live migration); waits until the role runs on `o.to` or stays where it was. */
async function liveMove(client: ControlClient, name: string, o: VmMoveOptions): Promise<void> {
  const from = await ownerOf(client, name)
  await roleCommand(client, { op: 'move', name, to: o.to })
  if (!o.wait) return out(`live-migrating vm ${name} to ${o.to}; \`hvlab vm list\` shows when it runs there`)
  await waitFor({
    what: `vm ${name} to run on ${o.to}`,
    watch: '`hvlab vm list`',
    timeout_ms: o.timeoutS * 1000,
    poll: async () => moveStep(name, from, o.to, await vmRoleNow(client, name)),
  })
  out(`vm ${name} moved ${from} → ${o.to}; it runs on ${o.to}`)
}

/** Where a moving role is: on `to` (done), back on `from` with no migration under way (it failed), or on its way. */
export function moveStep(name: string, from: string, to: string, seen: { role: VmRoleRecord; current: boolean }): WaitStep<true> {
  const { role, current } = seen
  if (!current) return waiting(`no coordinator answers; the last committed record says ${role.state}`)
  if (role.state === 'running' && role.owner === to) return done(true)
  if (role.state === 'running' && role.owner === from && role.migration === undefined)
    return failed('HVLAB_E_REFUSED', `vm ${name} stays on ${from}: ${role.reason}`)
  if (role.state === 'failed' || role.state === 'stopped') return failed('HVLAB_E_STATE', `vm ${name} is ${role.state}: ${role.reason}`)
  return waiting(`${role.state}${role.owner ? ` on ${role.owner}` : ''} (${role.reason})`)
}

interface VmMigrateOptions extends WaitOpts {
  dir: string
  to: string
  budgetMs?: number
  maxRounds?: number
  verify?: boolean
  json?: boolean
}

export function registerVmMigrate(vm: Command): void {
  const migrate = vm
    .command('migrate')
    .description(
      'live-migrate a running VM to another host: pre-copy rounds while it runs, then a short blackout; shows a progress bar on a terminal (round, pages left, rate, expected blackout; a line per change when not a terminal) and the result. If it fails or is cancelled the VM keeps running where it was',
    )
    .argument('<name>', 'the VM name')
    .requiredOption('--to <host>', 'the host to migrate it to')
    .option(
      '--budget-ms <n>',
      'downtime budget: switch over when the rest fits in it and another round would not halve it',
      intIn(1, 60_000),
    )
    .option('--max-rounds <n>', 'pre-copy rounds at most before switching over anyway', intIn(1, 1000))
    .option('--verify', 'hash memory on both sides at the switch-over (adds to the blackout)')
    .option(
      '--json',
      'machine-readable: one object {outcome,total_ms,setup_ms,blackout_ms,guest_paused_ms,client_blackout_ms,client_gap_ms,bytes_sent,bytes_raw,rounds:[{round,dirty_pages,…}],pages:{skipped,zero,delta,full},…}; ' +
        'setup_ms: start → the destination was ready (its skeleton VM made, its memory committed); blackout_ms: guest paused → the source heard the destination runs it; guest_paused_ms: paused on the source → resumed on the destination; ' +
        'client_blackout_ms: paused on the source → the virtual switch had the first reply from the destination (null when no client pinged it, `hvlab vm ping`); ' +
        'client_gap_ms: the switch saw no reply from the VM that long at most',
    )
  waitOptions(migrate, MIGRATION_WAIT_S).addOption(dirOption()).action(migrateVm)
}

async function migrateVm(name: string, o: VmMigrateOptions): Promise<void> {
  const options: MigrationOptionsMessage = {
    mode: 'live',
    budget_ms: o.budgetMs ?? null,
    max_rounds: o.maxRounds ?? null,
    verify: o.verify === true,
    ticket: newTicket(),
  }
  const client = ControlClient.forDir(o.dir)
  if (!o.wait) {
    const source = await startMigration(client, name, o.to, options)
    return out(
      `live-migrating vm ${name} ${source} → ${o.to}; \`hvlab vm list\` shows where it runs, \`hvlab vm migrate-cancel ${name}\` stops it`,
    )
  }
  const cursor = await TimelineCursor.atEnd(client)
  const r = await runMigration(client, name, o.to, options, { quiet: o.json === true, timeout_ms: o.timeoutS * 1000 })
  const seen = await awaitClientBlackout(r, () => cursor.next())
  const hashes_match = r.source_sha256 !== null && r.source_sha256 === r.destination_sha256
  printResult(o.json, { ...migrationJson(r), ...roundedClient(seen), ...(options.verify ? { hashes_match } : {}) }, () =>
    formatMigration(r, seen, options.verify, hashes_match),
  )
  if (r.outcome !== 'completed' || (options.verify && !hashes_match)) setExitCode(1)
}

const ms1 = (v: number | null): number | null => (v === null ? null : Math.round(v * 10) / 10)
const roundedClient = (c: ClientBlackout): ClientBlackout => ({
  client_blackout_ms: ms1(c.client_blackout_ms),
  client_gap_ms: ms1(c.client_gap_ms),
  released_pings: c.released_pings,
})
const msText = (v: number | null | undefined): string => (v == null ? '-' : `${Math.round(v)} ms`)

function formatMigration(r: MigrationResultMessage, c: ClientBlackout, verify: boolean, hashes_match: boolean): string {
  const lines = [
    r.outcome === 'completed'
      ? `vm ${r.vm} live-migrated ${r.source} → ${r.destination} in ${Math.round(r.total_ms)} ms (setup ${msText(r.setup_ms)}); blackout ${msText(r.blackout_ms)} (expected ${r.expected_blackout_ms === null ? '-' : Math.round(r.expected_blackout_ms)}, switch-over: ${r.switch_reason ?? '-'})`
      : `vm ${r.vm} stays on ${r.source}: migration ${r.outcome}: ${r.reason}`,
    `  sent ${mibText(r.bytes_sent)} MiB for ${mibText(r.bytes_raw)} MiB raw (memory ${mibText(r.memory_bytes)} MiB), ${mibText(r.bandwidth_bytes_per_s)} MiB/s, dirty rate ${mibText(r.dirty_rate_bytes_per_s)} MiB/s, throttle max ${r.throttle_pct_max}%`,
    `  rounds: ${r.rounds.map((x) => `#${x.round} ${x.dirty_pages} pages`).join(', ') || '-'}; final ${r.final_pages} pages`,
    `  pages: ${r.pages.scanned} scanned, ${r.pages.skipped} skipped, ${r.pages.zero} zero, ${r.pages.delta} delta, ${r.pages.full} full`,
  ]
  if (r.outcome === 'completed')
    lines.splice(
      1,
      0,
      `  guest paused ${msText(r.guest_paused_ms)} (source pause → destination resume); clients' blackout ${c.client_blackout_ms === null ? '- (no client pinged it)' : `${msText(c.client_blackout_ms)} (pause → first reply from ${r.destination}; longest gap ${msText(c.client_gap_ms)}, ${c.released_pings} held pings handed over)`}`,
    )
  if (verify)
    lines.push(
      `  verify: source ${r.source_sha256 ?? '-'} destination ${r.destination_sha256 ?? '-'}: ${hashes_match ? 'MATCH' : 'MISMATCH'}`,
    )
  return lines.join('\n')
}

export function registerVmMigrateCancel(vm: Command): void {
  vm.command('migrate-cancel')
    .description('cancel the live migration of a VM; it keeps running on its host')
    .argument('<name>', 'the VM name')
    .addOption(dirOption())
    .action(async (name: string, o: { dir: string }) => {
      const client = ControlClient.forDir(o.dir)
      const owner = await ownerOf(client, name)
      await client.request(owner, { t: 'vm-migrate-cancel-request', vm: name }, 'ok', HOST_REQUEST_TIMEOUT_MS)
      out(`cancelling the migration of vm ${name}; it stays on ${owner}`)
    })
}
