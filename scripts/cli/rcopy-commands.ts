/**
 * `hvlab rcopy …`: 3PAR-style Remote Copy groups between two arrays — create one on both
 * arrays, admit volumes, the verbs that run on one side of a group (start, stop, sync,
 * failover, recover, restore, reverse, switchover), each array's view of its groups, and
 * dismiss a volume or remove a group (rcopy-remove-commands.ts).
 */
import { type Command, Option } from 'commander'
import { HvlabError, describeError } from '../../shared/errors.js'
import type { Message } from '../../shared/protocol/messages.js'
import { RC_MODES, RC_PERIOD_MS_MAX, RC_WRITE_ERROR_POLICIES } from '../../shared/protocol/storage-limits.js'
import type { RcGroupStatus } from '../../shared/protocol/storage-messages.js'
import { type DirOpt, type JsonOpt, arraysOf, ask } from './array-client.js'
import { dirOption, intIn, out, printJson, printResult } from './options.js'
import { registerRcopyDismiss, registerRcopyRemove } from './rcopy-remove-commands.js'
import { type GroupView, formatGroups } from './rcopy-status-format.js'
import { type WaitingVerb, verbDone, verbNoop, verbOutcome } from './rcopy-wait.js'
import { type WaitOpts, waitFor, waitOptions } from './wait-for.js'

/** Every array's view of `group` (or of all groups); an unreachable array is reported, not fatal. */
async function groupViews(o: DirOpt, group?: string): Promise<GroupView[]> {
  const views = []
  for (const array of await arraysOf(o)) {
    try {
      const r = await ask(o, array, { t: 'rc-status-request', ...(group ? { group } : {}) }, 'rc-status')
      views.push({ array, groups: r.groups })
    } catch (e) {
      // An array without the group answers NOT_FOUND: it holds none of it, which is no error.
      views.push(HvlabError.has(e, 'HVLAB_E_NOT_FOUND') ? { array, groups: [] } : { array, groups: [], error: describeError(e) })
    }
  }
  return views
}

const SOURCE = ['primary', 'primary-rev']
const TARGET = ['secondary', 'secondary-rev']
/** Which side of a group runs a verb, as on 3PAR. */
const RUNS_ON: Record<string, string[]> = {
  admit: SOURCE,
  start: SOURCE,
  stop: SOURCE,
  sync: SOURCE,
  switchover: ['primary'],
  failover: TARGET,
  recover: SOURCE,
  restore: ['primary-rev'],
  reverse: [...SOURCE, ...TARGET],
}

/** Sends `message` to the array where `verb` runs for `group`; tries the next candidate on a state refusal. */
async function runOnGroupSide(
  o: DirOpt & { array?: string },
  group: string,
  verb: string,
  message: Message,
): Promise<{ array: string; status: RcGroupStatus }> {
  const views = await groupViews(o, group)
  const roles = RUNS_ON[verb]!
  const candidates = o.array ? [o.array] : views.filter((v) => v.groups.some((g) => roles.includes(g.role))).map((v) => v.array)
  if (candidates.length === 0) {
    const seen = views.map((v) => `${v.array}: ${v.error ?? v.groups.map((g) => g.role).join(',') ?? '-'}`).join('; ')
    throw new HvlabError(
      'HVLAB_E_STATE',
      `no reachable array holds group ${group} as ${roles.join(' or ')}, which is where ${verb} runs (${seen}); \`hvlab rcopy status ${group}\` shows the sides`,
    )
  }
  let last: unknown
  for (const array of candidates) {
    try {
      const r = await ask(o, array, message, 'rc-status', 60_000)
      return { array, status: r.groups[0]! }
    } catch (e) {
      last = e
      if (!(e instanceof HvlabError && e.code === 'HVLAB_E_STATE')) throw e
    }
  }
  throw last
}

export function registerRcopyCommands(program: Command): void {
  const rcopy = program.command('rcopy').description('3PAR-style Remote Copy groups between two arrays')
  registerRcopyCreate(rcopy)
  registerRcopyAdmit(rcopy)
  for (const [verb, help, waits] of RCOPY_VERBS) registerRcopyVerb(rcopy, verb, help, waits)
  registerRcopyStatus(rcopy)
  registerRcopyDismiss(rcopy)
  registerRcopyRemove(rcopy)
}

interface RcopyCreateOptions extends JsonOpt {
  primary: string
  secondary: string
  mode: 'sync' | 'periodic'
  periodMs?: number
  policy?: (typeof RC_WRITE_ERROR_POLICIES)[number]
  autoRecover: boolean
}

function registerRcopyCreate(rcopy: Command): void {
  rcopy
    .command('create')
    .description('create a remote copy group on both arrays (creatercopygroup)')
    .argument('<group>', 'group name, e.g. rc-vm1 (one VM = one group)')
    .requiredOption('--primary <array>', 'the array that takes host writes')
    .requiredOption('--secondary <array>', 'the array that holds the copy')
    .addOption(
      new Option('--mode <mode>', 'sync: ack after the secondary has it; periodic: delta every period')
        .choices(RC_MODES)
        .makeOptionMandatory(),
    )
    .option('--period-ms <ms>', 'periodic mode: time between delta cycles (scaled by the lab’s timeScale)', intIn(1, RC_PERIOD_MS_MAX))
    .addOption(
      new Option(
        '--policy <policy>',
        'what a write does while the partner is unreachable: no_fail_wrt_on_err (default) acknowledges it on the primary alone and the group shows NotSynced; fail_wrt_on_err refuses it',
      ).choices(RC_WRITE_ERROR_POLICIES),
    )
    .option('--no-auto-recover', 'stop the group on link loss instead of resyncing when the link returns')
    .addOption(dirOption())
    .option('--json', 'print both sides as JSON')
    .action(createGroup)
}

/** Creates the group on the secondary first, then on the primary (which starts talking to it). */
async function createGroup(group: string, o: RcopyCreateOptions): Promise<void> {
  if (o.primary === o.secondary) throw new HvlabError('HVLAB_E_USAGE', 'the primary and secondary must be two different arrays')
  const base = {
    group,
    mode: o.mode,
    ...(o.periodMs ? { period_ms: o.periodMs } : {}),
    ...(o.policy ? { write_error_policy: o.policy } : {}),
    auto_recover: o.autoRecover,
  }
  const sec = await ask(o, o.secondary, { t: 'rc-create', ...base, partner: o.primary, role: 'secondary' }, 'rc-status')
  const pri = await ask(o, o.primary, { t: 'rc-create', ...base, partner: o.secondary, role: 'primary' }, 'rc-status')
  printResult(
    o.json,
    { [o.primary]: pri.groups[0], [o.secondary]: sec.groups[0] },
    () =>
      `created group ${group}: ${o.primary} primary → ${o.secondary} secondary, ${o.mode}; next: hvlab rcopy admit ${group} VOLUME, then hvlab rcopy start ${group}`,
  )
}

function registerRcopyAdmit(rcopy: Command): void {
  rcopy
    .command('admit')
    .description('add a volume to a group (admitrcopyvv); its copy on the secondary is created if missing, then fully synced')
    .argument('<group>', 'group name')
    .argument('<volume>', 'volume on the primary')
    .option('--remote-volume <name>', 'its name on the secondary (default: the same)')
    .option('--array <array>', 'run on this array instead of the group’s primary')
    .addOption(dirOption())
    .option('--json', 'print the group as JSON')
    .action(async (group: string, volume: string, o: JsonOpt & { remoteVolume?: string; array?: string }) => {
      const r = await runOnGroupSide(o, group, 'admit', { t: 'rc-admit', group, volume, remote_volume: o.remoteVolume ?? volume })
      printResult(o.json, r, () => `admitted ${volume} to ${group} on ${r.array}`)
    })
}

/** The verbs that run on one side of a group: their help and what each waits for, in the order `hvlab rcopy --help` lists them. */
const RCOPY_VERBS: readonly [WaitingVerb, string, string][] = [
  [
    'start',
    'start replication (startrcopygroup); a new volume is fully synced, then changes follow',
    'it is started and every volume Synced',
  ],
  ['stop', 'stop replication; changes are tracked for a later resync', 'it is stopped'],
  [
    'sync',
    'start a delta cycle now (periodic mode)',
    'a cycle begun after the request has completed (with nothing to send, it says so at once)',
  ],
  [
    'failover',
    'make the secondary writable as Primary-Rev (after losing the primary); --force uses volumes that never completed a sync',
    'this side is Primary-Rev',
  ],
  [
    'recover',
    'after a failover, with the old primary back: resync to it and make it Secondary-Rev',
    'the old primary is Secondary-Rev and Synced',
  ],
  ['restore', 'return a recovered group to its natural roles (Primary-Rev must be in sync)', 'the natural roles are back, Synced'],
  ['reverse', 'swap the natural roles of both sides (each run swaps them)', 'both arrays have swapped'],
  ['switchover', 'planned, zero-loss swap: drain to the secondary, then swap roles', 'the roles are swapped'],
]

/** A verb waits this long by default for the state it promises (a full sync of a new volume takes a while). */
const VERB_TIMEOUT_S = 120

type RcopyVerbOptions = JsonOpt & Partial<WaitOpts> & { force?: boolean; array?: string }

function registerRcopyVerb(rcopy: Command, verb: WaitingVerb, help: string, waits: string): void {
  const command = rcopy
    .command(verb)
    .description(`${help}; waits until ${waits}`)
    .argument('<group>', 'group name')
    .option('--force', 'failover: accept volumes that never completed a sync')
    .option('--array <array>', 'run on this array instead of the side 3PAR runs it on')
  waitOptions(command, VERB_TIMEOUT_S)
    .addOption(dirOption())
    .option('--json', 'print the group as JSON')
    .action(async (group: string, o: RcopyVerbOptions) => {
      const r = await runOnGroupSide(o, group, verb, { t: 'rc-verb', group, verb, ...(o.force ? { force: true } : {}) })
      if (o.wait === false) {
        return printResult(
          o.json,
          r,
          () =>
            `${verb} of ${group} accepted on ${r.array}: now ${r.status.role}, ${r.status.started ? 'started' : 'stopped'}; \`hvlab rcopy status ${group}\` follows it`,
        )
      }
      const noop = verbNoop(verb, group, r)
      if (noop !== undefined) return printResult(o.json, r, () => noop)
      const status = await waitFor({
        what: `${verb} of group ${group}`,
        watch: `\`hvlab rcopy status ${group}\``,
        timeout_ms: (o.timeoutS ?? VERB_TIMEOUT_S) * 1000,
        poll: async () => verbOutcome(verb, group, r, await groupViews(o, group)),
      })
      printResult(o.json, { array: r.array, status }, () => verbDone(verb, group, r.array, status))
    })
}

function registerRcopyStatus(rcopy: Command): void {
  rcopy
    .command('status')
    .description('roles, states, last sync and bytes behind, as each array sees its groups')
    .argument('[group]', 'one group (default: all)')
    .addOption(dirOption())
    .option(
      '--json',
      'machine-readable: [{"array","groups":[{"group","role","partner","partner_role"?,"mode","write_error_policy","started","link_up","last_sync_ms","bytes_behind","bytes_resynced_total","sync_write_timeout_ms"?,"sync_writes_waiting"?,"sync_writes_overdue"?,"link_failures_total","last_link_failure"?,"journal_damaged"?,"volumes":[…]}],"error"?}]',
    )
    .action(async (group: string | undefined, o: JsonOpt) => {
      const views = await groupViews(o, group)
      if (group !== undefined) requireGroupSeen(group, views)
      if (o.json) return printJson(views)
      out(formatGroups(views))
    })
}

/** A group no array holds is an error (exit 1); one that only unreachable arrays may hold says which did not answer. */
function requireGroupSeen(group: string, views: readonly GroupView[]): void {
  if (views.some((v) => v.groups.some((g) => g.group === group))) return
  const silent = views.filter((v) => v.error !== undefined)
  if (silent.length === 0) throw new HvlabError('HVLAB_E_NOT_FOUND', `no remote copy group ${group}; \`hvlab rcopy status\` lists them`)
  throw new HvlabError(
    'HVLAB_E_STATE',
    `no reachable array holds remote copy group ${group}; ${silent.map((v) => `${v.array}: ${v.error}`).join('; ')}`,
  )
}
