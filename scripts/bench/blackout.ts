/**
 * Benchmark of a live migration's blackout as a client sees it (issue 15): the smallest lab
 * a live migration within a site needs (two hosts and an array in one site, a witness in
 * another: five processes with the controller), started with `hvlab up --detach` as a user
 * does; one VM of `vm_mib` on a CSV dirtying `dirty_mib_s`, live-migrated back and forth
 * `migrations` times through the CLI while a client (the CLI's own ping module, in this
 * process) pings it every `ping_interval_ms` through the lab's virtual switch. The lab is
 * stopped with `hvlab down` whatever happens (a failure, Ctrl-C or SIGTERM).
 *
 * Per migration: what the migration reported (`blackout_ms`: pause → the source heard the
 * destination runs it; `guest_paused_ms`: pause → resume on the destination;
 * `client_blackout_ms`: pause → the switch's first reply from the destination), what the
 * client saw (its longest gap between replies, pings lost) and the differences; and where
 * the client's gap went, from the timeline: the last copy (pause → the storage step), the
 * storage step and the resume (→ the destination ran it), the announcement reaching the
 * switch, and the held pings' first reply from the destination. Numbers are for reading,
 * never for asserting in tests.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pingVm } from '../cli/guest-commands.js'
import type { PingSummary } from '../cli/ping-tally.js'
import { hvlab } from './hvlab-cli.js'
import { DOWNTIME_BUDGET_MS_DEFAULT } from '../../agent/migration/convergence.js'

const HOSTS = ['host-a1', 'host-a2'] as const
const VM = 'bo1'

/** Two hosts and an array in one site, the witness in another. */
const TOPOLOGY = {
  name: 'blackout-bench',
  description: 'Two hosts and an array in one site, a witness in another: the smallest lab a live migration within a site on a CSV needs.',
  sites: [
    { name: 'site-a', description: 'the data centre' },
    { name: 'site-w', description: 'the file-share witness only' },
  ],
  hosts: HOSTS.map((name) => ({ name, site: 'site-a', memory_mib: 2048 })),
  arrays: [{ name: 'array-a', site: 'site-a' }],
  witness: { name: 'witness', site: 'site-w' },
  quorum: { model: 'node-and-file-share-majority', dynamicQuorum: true, dynamicWitness: true },
  heartbeat: { sameSite: { interval_ms: 250, missed_max: 10 }, crossSite: { interval_ms: 250, missed_max: 20 } },
  timeScale: 1,
}

export interface BlackoutBenchOptions {
  /** Live migrations, alternating host-a1 → host-a2 → host-a1 … (default 3). */
  migrations?: number
  vm_mib?: number
  dirty_mib_s?: number
  ping_interval_ms?: number
  /** The client pings this long before each migration and after it, ms (default 1000). */
  ping_margin_ms?: number
  /**
   * How long the VM dirties its memory before the first migration, ms (default 3000): a
   * guest given a load has its memory faulted in by a worker first (agent/vm/guest-memory-prefault.ts,
   * about a second of CPU for 256 MiB on the 2-core machine); a migration during that
   * measures the prefault as much as the migration.
   */
  settle_ms?: number
  /** The migrations' downtime budget (`vm migrate --budget-ms`), ms; null: the migration's default. */
  budget_ms?: number | null
}

export interface BlackoutRow {
  from: string
  to: string
  outcome: string
  /** As the migration reported them, ms. */
  blackout_ms: number | null
  guest_paused_ms: number | null
  client_blackout_ms: number | null
  /** The switch: the VM's last reply from the source → its first from the destination, ms. */
  switch_gap_ms: number | null
  released_pings: number | null
  /** Pre-copy rounds (round 0 included), the pages of the blackout's copy, and the blackout the source expected when it switched over. */
  precopy_rounds: number | null
  final_pages: number | null
  expected_blackout_ms: number | null
  /** What the client saw: its longest gap between replies across the move (from the source to the destination), and at all. */
  client_move_gap_ms: number | null
  client_gap_ms_max: number
  /** When the client's longest gap ended, ms from the pause (its clock read as wall-clock), and whether it spans the move. */
  client_gap_ended_ms: number | null
  client_gap_across_hosts: boolean
  pings_sent: number
  pings_lost: number
  /** client_move_gap_ms − client_blackout_ms, and − blackout_ms (the source's own figure), ms. */
  gap_minus_client_blackout_ms: number | null
  gap_minus_blackout_ms: number | null
  /** Where the time went (timeline, ms from the pause). */
  phases: {
    last_copy_ms: number | null
    storage_and_resume_ms: number | null
    announced_at_switch_ms: number | null
    /** The source let the VM go (where, before the switch sent held pings on at the announcement, they were released). */
    source_released_ms: number | null
    first_reply_from_destination_ms: number | null
  }
}

export interface BlackoutBenchReport {
  row: string
  vm_mib: number
  dirty_mib_s: number
  ping_interval_ms: number
  migrations: BlackoutRow[]
  summary: {
    /** The client's longest gap across a move, and at all (pre-copy included), over the migrations. */
    client_move_gap_ms_max: number | null
    client_gap_ms_max: number
    /** max |client_move_gap_ms − client_blackout_ms| over the migrations (null if one has no figure). */
    reported_vs_client_ms_max: number | null
    /** The same for the switch's own gap across the move (`client_gap_ms` of vm migrate). */
    switch_gap_vs_client_ms_max: number | null
    /** The same for the source's blackout_ms (what was reported before). */
    blackout_ms_vs_client_ms_max: number | null
    pings_lost: number
    target_gap_ms: number
    target_diff_ms: number
    gap_met: boolean
    diff_met: boolean
  }
}

interface SeenEvent {
  seq: number
  at_ms: number
  kind: string
  source: string
  details: Record<string, unknown>
}

type MigrateJson = {
  outcome: string
  blackout_ms: number | null
  guest_paused_ms?: number | null
  paused_at_ms?: number | null
  client_blackout_ms?: number | null
  client_gap_ms?: number | null
  released_pings?: number | null
  rounds?: unknown[]
  final_pages?: number
  expected_blackout_ms?: number | null
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))
const round1 = (v: number | null | undefined): number | null => (v == null ? null : Math.round(v * 10) / 10)
const diff = (a: number, b: number | null | undefined): number | null => (b == null ? null : round1(a - b))

async function eventsAfter(dir: string, seq: number): Promise<SeenEvent[]> {
  const lines = (await hvlab(['events', '--dir', dir, '--json', '--kind', 'migration.,vm.,switch.'])).split('\n').filter((l) => l.trim())
  return lines.map((l) => JSON.parse(l) as SeenEvent).filter((e) => e.seq > seq)
}

const lastSeq = async (dir: string): Promise<number> =>
  Number(
    (JSON.parse((await hvlab(['events', '--dir', dir, '--json', '--tail', '1'])).trim().split('\n').at(-1) ?? '{}') as SeenEvent).seq ?? 0,
  )

/** Phases of one migration from its events (at_ms: each process's wall clock, ms). */
function phasesOf(events: SeenEvent[], r: MigrateJson, from: string, to: string): BlackoutRow['phases'] {
  const paused = r.paused_at_ms ?? null
  const at = (kind: string, source?: string): number | null => {
    const e = events.find((x) => x.kind === kind && x.details.vm === VM && (source === undefined || x.source === source))
    return e === undefined || paused === null ? null : round1(e.at_ms - paused)
  }
  const moved = events.find((e) => e.kind === 'switch.vm-moved' && e.details.vm === VM && e.details.to === to)
  const rel = (v: unknown): number | null => (typeof v === 'number' && paused !== null ? round1(v - paused) : null)
  return {
    last_copy_ms: at('migration.storage'),
    storage_and_resume_ms: at('vm.arrived', to),
    announced_at_switch_ms: rel(moved?.details.announced_at_ms),
    source_released_ms: at('vm.departed', from),
    first_reply_from_destination_ms: rel(moved?.details.first_reply_at_ms),
  }
}

async function oneMigration(dir: string, from: string, to: string, o: Required<BlackoutBenchOptions>): Promise<BlackoutRow> {
  const seq = await lastSeq(dir)
  let stop: () => void = () => {}
  const stopped = new Promise<void>((r) => (stop = r))
  const ping_started_at_ms = Date.now()
  const ping = pingVm({ vm: VM, dir, interval_ms: o.ping_interval_ms, count: null, timeout_ms: 20_000, stop: stopped })
  let s: PingSummary
  let r: MigrateJson
  try {
    await sleep(o.ping_margin_ms)
    const budget = o.budget_ms === null ? [] : ['--budget-ms', String(o.budget_ms)]
    r = JSON.parse(await hvlab(['vm', 'migrate', VM, '--to', to, ...budget, '--json', '--dir', dir])) as MigrateJson
    await sleep(o.ping_margin_ms)
  } finally {
    stop()
    s = await ping
  }
  const phases = phasesOf(await eventsAfter(dir, seq), r, from, to)
  return {
    from,
    to,
    outcome: r.outcome,
    blackout_ms: round1(r.blackout_ms),
    guest_paused_ms: round1(r.guest_paused_ms),
    client_blackout_ms: round1(r.client_blackout_ms),
    switch_gap_ms: round1(r.client_gap_ms),
    released_pings: r.released_pings ?? null,
    precopy_rounds: r.rounds?.length ?? null,
    final_pages: r.final_pages ?? null,
    expected_blackout_ms: round1(r.expected_blackout_ms),
    client_move_gap_ms: s.move_gap_ms_max,
    client_gap_ms_max: s.gap_ms_max,
    client_gap_ended_ms:
      s.gap_max_ended_ms === null || r.paused_at_ms == null ? null : round1(ping_started_at_ms + s.gap_max_ended_ms - r.paused_at_ms),
    client_gap_across_hosts: s.gap_max_across_hosts,
    pings_sent: s.sent,
    pings_lost: s.lost,
    gap_minus_client_blackout_ms: s.move_gap_ms_max === null ? null : diff(s.move_gap_ms_max, r.client_blackout_ms),
    gap_minus_blackout_ms: s.move_gap_ms_max === null ? null : diff(s.move_gap_ms_max, r.blackout_ms),
    phases,
  }
}

const TARGET_GAP_MS = 40
const TARGET_DIFF_MS = 10

export function summaryOf(rows: BlackoutRow[]): BlackoutBenchReport['summary'] {
  const worst = (f: (r: BlackoutRow) => number | null): number | null =>
    rows.some((r) => f(r) === null) ? null : Math.max(0, ...rows.map((r) => Math.abs(f(r)!)))
  const client_gap_ms_max = Math.max(0, ...rows.map((r) => r.client_gap_ms_max))
  const client_move_gap_ms_max = worst((r) => r.client_move_gap_ms)
  const reported_vs_client_ms_max = worst((r) => r.gap_minus_client_blackout_ms)
  const pings_lost = rows.reduce((a, r) => a + r.pings_lost, 0)
  return {
    client_move_gap_ms_max,
    client_gap_ms_max,
    reported_vs_client_ms_max,
    switch_gap_vs_client_ms_max: worst((r) =>
      r.client_move_gap_ms === null || r.switch_gap_ms === null ? null : round1(r.client_move_gap_ms - r.switch_gap_ms),
    ),
    blackout_ms_vs_client_ms_max: worst((r) => r.gap_minus_blackout_ms),
    pings_lost,
    target_gap_ms: TARGET_GAP_MS,
    target_diff_ms: TARGET_DIFF_MS,
    gap_met: client_move_gap_ms_max !== null && client_move_gap_ms_max <= TARGET_GAP_MS && pings_lost === 0,
    diff_met: reported_vs_client_ms_max !== null && reported_vs_client_ms_max <= TARGET_DIFF_MS,
  }
}

/** Starts the lab, runs the migrations, stops the lab (always). */
export async function runBlackoutBench(opts: BlackoutBenchOptions = {}): Promise<BlackoutBenchReport> {
  const o: Required<BlackoutBenchOptions> = {
    migrations: opts.migrations ?? 3,
    vm_mib: opts.vm_mib ?? 256,
    dirty_mib_s: opts.dirty_mib_s ?? 50,
    ping_interval_ms: opts.ping_interval_ms ?? 2,
    ping_margin_ms: opts.ping_margin_ms ?? 1000,
    settle_ms: opts.settle_ms ?? 3000,
    budget_ms: opts.budget_ms ?? null,
  }
  const dir = mkdtempSync(join(tmpdir(), 'hvlab-blackout-'))
  const topology = join(dir, 'blackout-topology.json')
  writeFileSync(topology, JSON.stringify(TOPOLOGY, null, 2))
  const labDir = join(dir, 'lab')
  const stopLab = (signal: NodeJS.Signals): void =>
    void hvlab(['down', '--dir', labDir])
      .catch(() => undefined)
      .finally(() => {
        rmSync(dir, { recursive: true, force: true })
        process.exit(signal === 'SIGINT' ? 130 : 143)
      })
  process.once('SIGINT', stopLab).once('SIGTERM', stopLab)
  try {
    await hvlab(['up', '--detach', '--json', '--topology', topology, '--dir', labDir])
    await hvlab(['csv', 'create', 'bench', '--array', 'array-a', '--dir', labDir])
    await hvlab([
      'vm',
      'create',
      VM,
      '--memory-mib',
      String(o.vm_mib),
      '--preferred',
      HOSTS.join(','),
      '--storage',
      'csv:bench',
      '--dir',
      labDir,
    ])
    await hvlab(['vm', 'start', VM, '--dir', labDir])
    await hvlab(['vm', 'load', VM, '--dirty-mib-s', String(o.dirty_mib_s), '--dir', labDir])
    await sleep(o.settle_ms)
    const rows: BlackoutRow[] = []
    for (let i = 0; i < o.migrations; i++) {
      const from = HOSTS[i % 2]!
      const to = HOSTS[(i + 1) % 2]!
      rows.push(await oneMigration(labDir, from, to, o))
    }
    return {
      row: `${o.vm_mib} MiB VM dirtying ${o.dirty_mib_s} MiB/s, live migration within a site (downtime budget ${o.budget_ms === null ? `${DOWNTIME_BUDGET_MS_DEFAULT} ms, the default` : `${o.budget_ms} ms`}), client pinging every ${o.ping_interval_ms} ms`,
      vm_mib: o.vm_mib,
      dirty_mib_s: o.dirty_mib_s,
      ping_interval_ms: o.ping_interval_ms,
      migrations: rows,
      summary: summaryOf(rows),
    }
  } finally {
    process.off('SIGINT', stopLab).off('SIGTERM', stopLab)
    await hvlab(['down', '--dir', labDir]).catch(() => undefined)
    rmSync(dir, { recursive: true, force: true })
  }
}

const fmt = (v: number | null, w: number): string => (v === null ? '-' : String(v)).padStart(w)

export function formatBlackoutReport(r: BlackoutBenchReport): string {
  const s = r.summary
  const lines = [
    `blackout as the client sees it: ${r.row} (${r.migrations.length} migrations; ms)`,
    '  reported: blackout_ms (pause → source hears it runs), guest_paused_ms (pause → resume), client_blackout_ms (pause → switch has the 1st reply from the destination)',
    '  client: its longest gap across the move, and at all (pre-copy included); then where the time went, ms from the pause:',
    '  the last copy done, the destination resumed it, the switch had its announcement, the source released it, the switch had the 1st reply from the destination;',
    '  then the pre-copy rounds (round 0 included), the pages copied in the blackout, and the blackout the source expected',
    '  from → to           blackout guest_paused client_blackout │ move gap   any gap lost │ gap−client_bo gap−blackout │ last copy  resumed announced released 1st reply │ rounds final pages expected',
  ]
  for (const x of r.migrations) {
    const p = x.phases
    lines.push(
      `  ${`${x.from} → ${x.to}`.padEnd(18)} ${fmt(x.blackout_ms, 8)} ${fmt(x.guest_paused_ms, 12)} ${fmt(x.client_blackout_ms, 15)} │ ${fmt(x.client_move_gap_ms, 8)} ${fmt(x.client_gap_ms_max, 9)} ${fmt(x.pings_lost, 4)} │ ${fmt(x.gap_minus_client_blackout_ms, 13)} ${fmt(x.gap_minus_blackout_ms, 12)} │ ${fmt(p.last_copy_ms, 9)} ${fmt(p.storage_and_resume_ms, 8)} ${fmt(p.announced_at_switch_ms, 9)} ${fmt(p.source_released_ms, 8)} ${fmt(p.first_reply_from_destination_ms, 9)} │ ${fmt(x.precopy_rounds, 6)} ${fmt(x.final_pages, 11)} ${fmt(x.expected_blackout_ms, 8)}${x.outcome === 'completed' ? '' : `  (${x.outcome})`}`,
    )
  }
  lines.push(
    `  worst client gap across a move ${s.client_move_gap_ms_max ?? '-'} ms (target ≤ ${s.target_gap_ms}: ${s.gap_met ? 'met' : 'NOT met'}), at all ${s.client_gap_ms_max} ms, lost ${s.pings_lost}`,
    `  worst |move gap − client_blackout_ms| ${s.reported_vs_client_ms_max ?? '-'} ms (target ≤ ${s.target_diff_ms}: ${s.diff_met ? 'met' : 'NOT met'}); worst |move gap − the switch's gap| ${s.switch_gap_vs_client_ms_max ?? '-'} ms; worst |move gap − blackout_ms| ${s.blackout_ms_vs_client_ms_max ?? '-'} ms (the source's own figure)`,
  )
  for (const x of r.migrations)
    if (!x.client_gap_across_hosts)
      lines.push(
        `  ${x.from} → ${x.to}: the client's longest gap was not the move (it ended ${x.client_gap_ended_ms ?? '-'} ms from the pause, replies from one host)`,
      )
  return lines.join('\n')
}
