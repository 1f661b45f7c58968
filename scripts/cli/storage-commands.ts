/**
 * `hvlab array …` and `hvlab rcopy …`: the storage arrays' commands. Each one is a
 * request to an array process, relayed by the lab controller; the array checks it and
 * answers, or refuses with a message that says what to do.
 */
import { Command, InvalidArgumentError, Option } from 'commander'
import { HvlabError, describeError } from '../../shared/errors.js'
import type { LabStatus } from '../controller/lab-controller.js'
import type { Message } from '../../shared/protocol/messages.js'
import {
  BLOCKS_PER_IO_MAX,
  DIGEST_BLOCKS_MAX,
  RC_MODES,
  RC_WRITE_ERROR_POLICIES,
  type RcGroupStatus,
} from '../../shared/protocol/storage-messages.js'
import { ControlClient } from './control-client.js'
import { duration, table } from './format.js'
import { dirOption, intIn, nameList, out, printJson, printResult } from './options.js'

const UNITS: Record<string, number> = { '': 1, b: 1, k: 1024, kib: 1024, m: 1024 ** 2, mib: 1024 ** 2, g: 1024 ** 3, gib: 1024 ** 3 }

/** "1MiB", "64k", "4096" → bytes. */
export const sizeBytes = (v: string): number => {
  const m = /^(\d+)\s*([a-z]*)$/i.exec(v.trim())
  const unit = m ? UNITS[m[2]!.toLowerCase()] : undefined
  if (!m || unit === undefined) throw new InvalidArgumentError('a size like 4096, 64KiB, 1MiB or 1GiB')
  const n = Number(m[1]) * unit
  if (!Number.isSafeInteger(n) || n <= 0) throw new InvalidArgumentError('a positive size')
  return n
}

const uint = intIn(0, Number.MAX_SAFE_INTEGER)

interface DirOpt {
  dir: string
}
interface JsonOpt extends DirOpt {
  json?: boolean
}

function ask<T extends Message['t']>(o: DirOpt, array: string, message: Message, expect: T, timeout_ms?: number) {
  return ControlClient.forDir(o.dir).request(array, message, expect, timeout_ms)
}

async function arraysOf(o: DirOpt): Promise<string[]> {
  const s = await ControlClient.forDir(o.dir).get<LabStatus>('/v1/status')
  return s.processes.filter((p) => p.role === 'array').map((p) => p.name)
}

/** Every array's view of `group` (or of all groups); an unreachable array is reported, not fatal. */
async function groupViews(o: DirOpt, group?: string): Promise<{ array: string; groups: RcGroupStatus[]; error?: string }[]> {
  const views = []
  for (const array of await arraysOf(o)) {
    try {
      const r = await ask(o, array, { t: 'rc-status-request', ...(group ? { group } : {}) }, 'rc-status')
      views.push({ array, groups: r.groups })
    } catch (e) {
      views.push({ array, groups: [], error: describeError(e) })
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

export function formatGroups(views: { array: string; groups: RcGroupStatus[]; error?: string }[]): string {
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

export function registerStorageCommands(program: Command): void {
  const array = program.command('array').description('storage arrays: virtual volumes, LUN presentation, test I/O')

  const volume = array.command('volume').description('virtual volumes on an array')
  volume
    .command('create')
    .description('create a virtual volume (a sparse file in the array’s data dir, 4 KiB blocks)')
    .argument('<array>', 'array name, e.g. array-a')
    .argument('<volume>', 'volume name, e.g. vm1-disk0')
    .requiredOption('--size <size>', 'size: a multiple of 4 KiB, e.g. 1MiB', sizeBytes)
    .addOption(dirOption())
    .option('--json', 'print the array’s volumes as JSON')
    .action(async (a: string, v: string, o: JsonOpt & { size: number }) => {
      const r = await ask(o, a, { t: 'volume-create', volume: v, size_bytes: o.size }, 'volume-listing')
      printResult(o.json, r, () => `created volume ${v} (${o.size} bytes) on ${a}`)
    })
  volume
    .command('grow')
    .description('grow a volume (never shrinks; new blocks read as zeros)')
    .argument('<array>', 'array name')
    .argument('<volume>', 'volume name')
    .requiredOption('--size <size>', 'the new size, e.g. 2MiB', sizeBytes)
    .addOption(dirOption())
    .option('--json', 'print the array’s volumes as JSON')
    .action(async (a: string, v: string, o: JsonOpt & { size: number }) => {
      const r = await ask(o, a, { t: 'volume-grow', volume: v, size_bytes: o.size }, 'volume-listing')
      printResult(o.json, r, () => `volume ${v} on ${a} is now ${o.size} bytes`)
    })
  volume
    .command('remove')
    .description('remove a volume and its presentations (refused while it is in a remote copy group)')
    .argument('<array>', 'array name')
    .argument('<volume>', 'volume name')
    .addOption(dirOption())
    .action(async (a: string, v: string, o: DirOpt) => {
      await ask(o, a, { t: 'volume-remove', volume: v }, 'volume-listing')
      out(`removed volume ${v} from ${a}`)
    })
  volume
    .command('list')
    .description('the volumes of an array')
    .argument('<array>', 'array name')
    .addOption(dirOption())
    .option('--json', 'machine-readable: {"block_size_bytes","volumes":[{"volume","size_bytes"}]}')
    .action(async (a: string, o: JsonOpt) => {
      const r = await ask(o, a, { t: 'volume-list' }, 'volume-listing')
      if (o.json) return printJson(r)
      out(
        r.volumes.length === 0
          ? `no volumes on ${a}`
          : table([
              ['VOLUME', 'SIZE-BYTES', 'BLOCKS'],
              ...r.volumes.map((x) => [x.volume, `${x.size_bytes}`, `${x.size_bytes / r.block_size_bytes}`]),
            ]),
      )
    })

  array
    .command('present')
    .description('present (LUN-mask) a volume to a host; with --wwn only those initiators (a VFC WWN A/B pair) may do I/O')
    .argument('<array>', 'array name')
    .argument('<volume>', 'volume name')
    .argument('<host>', 'host name, e.g. host-a1')
    .option('--wwn <ids>', 'up to two initiator WWNs, comma-separated (c0:03:ff:00:00:ff:ff:00,…)', nameList)
    .addOption(dirOption())
    .option('--json', 'print the volume’s presentations as JSON')
    .action(async (a: string, v: string, h: string, o: JsonOpt & { wwn?: string[] }) => {
      const r = await ask(o, a, { t: 'lun-present', volume: v, host: h, initiators: o.wwn ?? [] }, 'lun-presentations')
      printResult(
        o.json,
        r,
        () =>
          `volume ${v} on ${a} is presented to ${r.presentations.map((p) => p.host + (p.initiators.length ? ` (${p.initiators.join(', ')})` : '')).join(', ')}`,
      )
    })
  array
    .command('unpresent')
    .description('stop presenting a volume to a host')
    .argument('<array>', 'array name')
    .argument('<volume>', 'volume name')
    .argument('<host>', 'host name')
    .addOption(dirOption())
    .action(async (a: string, v: string, h: string, o: DirOpt) => {
      await ask(o, a, { t: 'lun-unpresent', volume: v, host: h }, 'lun-presentations')
      out(`volume ${v} on ${a} is no longer presented to ${h}`)
    })

  array
    .command('write')
    .description('write test data as a host would (masking and fencing apply); block b gets sha256("SEED:b") repeated')
    .argument('<array>', 'array name')
    .argument('<volume>', 'volume name')
    .requiredOption('--block <n>', 'first block', uint)
    .option('--blocks <k>', `number of blocks (1-${BLOCKS_PER_IO_MAX})`, intIn(1, BLOCKS_PER_IO_MAX), 1)
    .requiredOption('--host <host>', 'the host the write comes from')
    .option('--initiator <wwn>', 'the initiator WWN it comes through')
    .requiredOption('--epoch <e>', 'the writer’s cluster epoch (reservation)', uint)
    .requiredOption('--pattern <seed>', 'seed of the data pattern')
    .addOption(dirOption())
    .option('--json', 'print the reply as JSON')
    .action(
      async (
        a: string,
        v: string,
        o: JsonOpt & { block: number; blocks: number; host: string; initiator?: string; epoch: number; pattern: string },
      ) => {
        const m: Message = {
          t: 'block-write-pattern',
          volume: v,
          host: o.host,
          epoch: o.epoch,
          block: o.block,
          blocks: o.blocks,
          pattern: o.pattern,
          ...(o.initiator ? { initiator: o.initiator } : {}),
        }
        const r = await ask(o, a, m, 'block-written', 60_000)
        printResult(o.json, r, () => `wrote blocks ${r.block}..${r.block + r.blocks - 1} of ${v} on ${a} (acknowledged)`)
      },
    )
  array
    .command('read')
    .description('read blocks and print their sha256 (per block, or of the whole range with --sha256)')
    .argument('<array>', 'array name')
    .argument('<volume>', 'volume name')
    .requiredOption('--block <n>', 'first block', uint)
    .option('--blocks <k>', `number of blocks (1-${DIGEST_BLOCKS_MAX})`, intIn(1, DIGEST_BLOCKS_MAX), 1)
    .option('--host <host>', 'read as this host (masking applies); without it, an administrator’s read')
    .option('--initiator <wwn>', 'the initiator WWN, with --host')
    .option('--sha256', 'print only the sha256 of the whole range')
    .addOption(dirOption())
    .option('--json', 'machine-readable: {"volume","block","blocks","sha256","block_sha256":[…]}')
    .action(
      async (a: string, v: string, o: JsonOpt & { block: number; blocks: number; host?: string; initiator?: string; sha256?: boolean }) => {
        const m: Message = {
          t: 'block-digest-request',
          volume: v,
          block: o.block,
          blocks: o.blocks,
          ...(o.host ? { host: o.host } : {}),
          ...(o.initiator ? { initiator: o.initiator } : {}),
        }
        const r = await ask(o, a, m, 'block-digest', 60_000)
        if (o.json) return printJson(r)
        if (o.sha256 || !r.block_sha256) return out(r.sha256)
        out(r.block_sha256.map((h, i) => `${r.block + i}  ${h}`).join('\n'))
      },
    )

  registerRcopyCommands(program)
}

function registerRcopyCommands(program: Command): void {
  const rcopy = program.command('rcopy').description('3PAR-style Remote Copy groups between two arrays')

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
    .option('--period-ms <ms>', 'periodic mode: time between delta cycles (scaled by the lab’s timeScale)', intIn(1, 7 * 24 * 3600 * 1000))
    .addOption(
      new Option(
        '--policy <policy>',
        'what a write does while the partner is unreachable: no_fail_wrt_on_err (default) acknowledges it on the primary alone and the group shows NotSynced; fail_wrt_on_err refuses it',
      ).choices(RC_WRITE_ERROR_POLICIES),
    )
    .option('--no-auto-recover', 'stop the group on link loss instead of resyncing when the link returns')
    .addOption(dirOption())
    .option('--json', 'print both sides as JSON')
    .action(
      async (
        group: string,
        o: JsonOpt & {
          primary: string
          secondary: string
          mode: 'sync' | 'periodic'
          periodMs?: number
          policy?: (typeof RC_WRITE_ERROR_POLICIES)[number]
          autoRecover: boolean
        },
      ) => {
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
      },
    )

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

  const verbs: [string, string][] = [
    ['start', 'start replication (startrcopygroup); a new volume is fully synced, then changes follow'],
    ['stop', 'stop replication; changes are tracked for a later resync'],
    ['sync', 'start a delta cycle now (periodic mode)'],
    ['failover', 'make the secondary writable as Primary-Rev (after losing the primary); --force uses volumes that never completed a sync'],
    ['recover', 'after a failover, with the old primary back: resync to it and make it Secondary-Rev'],
    ['restore', 'return a recovered group to its natural roles (Primary-Rev must be in sync)'],
    ['reverse', 'swap the natural roles of both sides'],
    ['switchover', 'planned, zero-loss swap: drain to the secondary, then swap roles'],
  ]
  for (const [verb, help] of verbs) {
    rcopy
      .command(verb)
      .description(help)
      .argument('<group>', 'group name')
      .option('--force', 'failover: accept volumes that never completed a sync')
      .option('--array <array>', 'run on this array instead of the side 3PAR runs it on')
      .addOption(dirOption())
      .option('--json', 'print the group as JSON')
      .action(async (group: string, o: JsonOpt & { force?: boolean; array?: string }) => {
        const r = await runOnGroupSide(o, group, verb, { t: 'rc-verb', group, verb: verb as 'start', ...(o.force ? { force: true } : {}) })
        printResult(
          o.json,
          r,
          () =>
            `${verb} of ${group} accepted on ${r.array}: now ${r.status.role}, ${r.status.started ? 'started' : 'stopped'}; \`hvlab rcopy status ${group}\` follows it`,
        )
      })
  }

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
      if (o.json) return printJson(views)
      out(formatGroups(views))
    })
}
