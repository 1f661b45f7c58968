/**
 * Renders a soak's report (report-types.ts) for people (issue 13's soak):
 * - Markdown to read in a terminal or on GitHub: the verdict, seed and reproduce command on
 *   the first line, then the summary, the violations with the events around them, and one
 *   table each for faults, migrations, operator actions and processes;
 * - one self-contained HTML page with the same tables and a timeline plot drawn by Apache
 *   ECharts, whose browser build is inlined from node_modules (the page needs no network);
 * - writeReport writes both next to the report's JSON.
 * Both renderers draw one document model (blocks of headings, text, facts and tables) and
 * escape every text they draw: the report holds process names and error text from outside.
 * Nothing here reads the current time, so a report renders the same every time.
 */
import { createHash } from 'node:crypto'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { TIMELINE_SCRIPT } from './report-timeline-script.js'
import type {
  DurationStats,
  EventExcerpt,
  FaultOutcome,
  MigrationOutcome,
  OperatorActionOutcome,
  ProcessResources,
  ReplicationOutcome,
  SoakReport,
  SoakSummary,
  Violation,
} from './report-types.js'

/** One table cell: plain text, or text shown as code (JSON details, commands). */
type Cell = string | { code: string }

interface Table {
  head: string[]
  rows: Cell[][]
  /** Indexes of the columns of numbers, drawn right-aligned. */
  numeric: number[]
}

type Block =
  | { kind: 'heading'; text: string }
  | { kind: 'subheading'; text: string }
  | { kind: 'text'; text: string }
  | { kind: 'facts'; facts: [string, Cell][] }
  | { kind: 'table'; table: Table }

// ---- Times, durations and sizes as text ----

const pad = (n: number, width = 2): string => String(n).padStart(width, '0')

/** `+HH:MM:SS.mmm` from the run's start to `at_ms` (`-` before it). */
function runClock(at_ms: number, started_ms: number): string {
  const offset_ms = Math.round(at_ms - started_ms)
  const a = Math.abs(offset_ms)
  const hms = `${pad(Math.floor(a / 3_600_000))}:${pad(Math.floor(a / 60_000) % 60)}:${pad(Math.floor(a / 1000) % 60)}`
  return `${offset_ms < 0 ? '-' : '+'}${hms}.${pad(a % 1000, 3)}`
}

/** `HH:MM:SS.mmm` in UTC; `?` for a time a Date cannot hold. */
function utcClock(at_ms: number): string {
  const d = new Date(Math.round(at_ms))
  if (Number.isNaN(d.getTime())) return '?'
  return `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}.${pad(d.getUTCMilliseconds(), 3)}`
}

/** `YYYY-MM-DD HH:MM:SS.mmm UTC`. */
function utcDate(at_ms: number): string {
  const d = new Date(Math.round(at_ms))
  return Number.isNaN(d.getTime()) ? '?' : `${d.toISOString().slice(0, 10)} ${utcClock(at_ms)} UTC`
}

/** When something happened: since the run's start, and on the clock. */
const moment = (at_ms: number, r: SoakReport): string => `${runClock(at_ms, r.started_ms)} (${utcClock(at_ms)} UTC)`
const seconds = (duration_ms: number): string => (duration_ms / 1000).toFixed(1)
const sinceStart = (at_ms: number, r: SoakReport): string => seconds(at_ms - r.started_ms)
const wholeMs = (duration_ms: number): string => String(Math.round(duration_ms))
const msOrNone = (duration_ms: number | null): string => (duration_ms === null ? 'none' : wholeMs(duration_ms))
const mib = (size_bytes: number): string => (size_bytes / (1024 * 1024)).toFixed(1)
const yesNo = (ok: boolean): string => (ok ? 'yes' : 'no')
const verdictWord = (r: SoakReport): string => (r.verdict === 'pass' ? 'PASS' : 'FAIL')
const listOrNone = (items: readonly string[]): string => (items.length === 0 ? 'none' : items.join(', '))

/** What ran, on one line. */
function runLine(r: SoakReport): string {
  const faultsStopped = runClock(r.faults_stopped_ms, r.started_ms)
  return (
    `Topology ${r.topology}; ${r.vms.length} VMs (${listOrNone(r.vms)}); faults enabled: ${listOrNone(r.faults_enabled)}. ` +
    `Ran ${seconds(r.ended_ms - r.started_ms)} s from ${utcDate(r.started_ms)}; faults stopped at ${faultsStopped}, ` +
    `after which every VM had ${seconds(r.recovery_bound_ms)} s to recover.`
  )
}

// ---- The document: what both renderers draw ----

function summaryTable(s: SoakSummary): Table {
  const rows: [string, string][] = [
    ['faults injected', String(s.faults)],
    ['operator actions', String(s.operator_actions)],
    ['client requests', String(s.client_requests)],
    ['client replies', String(s.client_replies)],
    ['disk writes acknowledged', `${s.disk_writes_acked} of ${s.disk_writes}`],
    ['acknowledged writes lost', `${s.acked_writes_lost} (${s.acked_bytes_lost} bytes)`],
    ['acknowledged writes lost where allowed (RPO, a group out of sync)', String(s.writes_lost_allowed)],
    ['violations', String(s.violations)],
  ]
  return { head: ['measure', 'value'], rows, numeric: [1] }
}

function durationsTable(s: SoakSummary): Table {
  const row = (name: string, d: DurationStats | null): Cell[] =>
    d === null ? [name, 'none', '–', '–', '–'] : [name, String(d.count), wholeMs(d.p50_ms), wholeMs(d.p99_ms), wholeMs(d.max_ms)]
  const rows = [
    row('detection (fault to node.lost)', s.detection),
    row("RTO (the client's longest gap per fault)", s.rto),
    row('blackout as the source host reported it', s.blackout),
    row('blackout as the client saw it', s.client_blackout),
  ]
  return { head: ['duration', 'count', 'p50 ms', 'p99 ms', 'max ms'], rows, numeric: [1, 2, 3, 4] }
}

function eventsTable(events: readonly EventExcerpt[], r: SoakReport): Table {
  const rows = events.map((e): Cell[] => [runClock(e.at_ms, r.started_ms), e.source, e.kind, { code: e.details }])
  return { head: ['time', 'source', 'kind', 'details'], rows, numeric: [] }
}

function violationBlocks(v: Violation, n: number, r: SoakReport): Block[] {
  const facts: [string, Cell][] = [
    ['at', moment(v.at_ms, r)],
    ['VM', v.vm ?? '–'],
    ['process', v.process ?? '–'],
  ]
  const events: Block =
    v.events_around.length === 0
      ? { kind: 'text', text: 'No timeline events around it.' }
      : { kind: 'table', table: eventsTable(v.events_around, r) }
  return [{ kind: 'subheading', text: `${n}. ${v.kind}: ${v.summary}` }, { kind: 'facts', facts }, events]
}

/** `0`, or `8192 (2 writes)`. */
const bytesOfWrites = (bytes: number, writes: number): string =>
  writes === 0 ? '0' : `${bytes} (${writes} write${writes === 1 ? '' : 's'})`

function faultRow(f: FaultOutcome, r: SoakReport): Cell[] {
  const duration = f.heal_ms === null ? 'not healed' : seconds(f.heal_ms - f.start_ms)
  const rto = listOrNone(f.rto_ms_by_vm.map((x) => `${x.vm} ${wholeMs(x.rto_ms)}`))
  return [
    ...[String(f.id), f.kind, f.target, sinceStart(f.start_ms, r), duration, msOrNone(f.detection_ms), rto, String(f.failovers)],
    bytesOfWrites(f.bytes_lost, f.writes_lost),
    bytesOfWrites(f.bytes_lost_allowed, f.writes_lost_allowed),
  ]
}

function faultsTable(r: SoakReport): Table {
  const head = ['id', 'kind', 'target', 'start s', 'duration s', 'detection ms', 'RTO ms per VM', 'failovers']
  const lost = ['bytes lost', 'bytes lost where allowed']
  return { head: [...head, ...lost], rows: r.faults.map((f) => faultRow(f, r)), numeric: [0, 3, 4, 5, 7, 8, 9] }
}

function migrationsTable(r: SoakReport): Table {
  const head = ['vm', 'from → to', 'mode', 'start s', 'duration s', 'ok', 'reported blackout ms', 'client gap ms']
  const row = (m: MigrationOutcome): Cell[] => [
    m.vm,
    `${m.from} → ${m.to}`,
    m.mode,
    sinceStart(m.start_ms, r),
    seconds(m.end_ms - m.start_ms),
    yesNo(m.ok),
    msOrNone(m.reported_blackout_ms),
    msOrNone(m.client_gap_ms),
  ]
  return { head, rows: r.migrations.map(row), numeric: [3, 4, 6, 7] }
}

function operatorActionsTable(r: SoakReport): Table {
  const row = (a: OperatorActionOutcome): Cell[] => [
    a.kind,
    a.target,
    sinceStart(a.start_ms, r),
    seconds(a.end_ms - a.start_ms),
    yesNo(a.ok),
    a.error_code ?? '–',
    a.said ?? '–',
  ]
  return {
    head: ['kind', 'target', 'start s', 'duration s', 'ok', 'error code', 'what it said'],
    rows: r.operator_actions.map(row),
    numeric: [2, 3],
  }
}

function replicationTable(r: SoakReport): Table {
  const stats = (x: ReplicationOutcome): string =>
    x.lag === null ? 'none' : `${wholeMs(x.lag.p50_ms)} / ${wholeMs(x.lag.p99_ms)} / ${wholeMs(x.lag.max_ms)}`
  const lateWrites = (x: ReplicationOutcome, allowed: boolean): string =>
    String(x.late.filter((g) => (g.cause !== null) === allowed).reduce((n, g) => n + g.writes, 0))
  const row = (x: ReplicationOutcome): Cell[] => [
    ...[`${x.vm} → ${x.server}`, seconds(x.frequency_ms), seconds(x.rpo_ms), String(x.cycles_applied), String(x.resyncs)],
    ...[String(x.writes_judged), stats(x), lateWrites(x, true), lateWrites(x, false)],
    ...[x.caught_up_ms === null ? 'never' : sinceStart(x.caught_up_ms, r), `${x.blocks_differing} of ${x.blocks_compared}`],
    String(x.blocks_in_doubt),
  ]
  const head = ['vm → replica server', 'cycle s', 'RPO s', 'cycles applied', 'resyncs', 'writes judged', 'lag p50 / p99 / max ms']
  const tail = ['late, allowed', 'late, no excuse', 'caught up at s', 'replica blocks differing', 'differing by a write in doubt']
  return { head: [...head, ...tail], rows: r.replication.map(row), numeric: [1, 2, 3, 4, 5, 7, 8, 9, 11] }
}

function lateWritesTable(r: SoakReport): Table {
  const rows = r.replication.flatMap((x) =>
    x.late.map((g): Cell[] => [
      x.vm,
      sinceStart(g.from_ms, r),
      sinceStart(g.to_ms, r),
      String(g.writes),
      wholeMs(g.lag_max_ms),
      g.reached_ms === null ? 'never' : sinceStart(g.reached_ms, r),
      g.cause ?? 'nothing on the path: a violation',
    ]),
  )
  const head = ['vm', 'acknowledged from s', 'to s', 'writes', 'lag max ms', 'on the replica at s', 'held back by']
  return { head, rows, numeric: [1, 2, 3, 4, 5] }
}

function processesTable(r: SoakReport): Table {
  const row = (p: ProcessResources): Cell[] => [p.name, mib(p.rss_max_bytes), String(p.fds_max), String(p.crashes), String(p.kills)]
  return { head: ['process', 'rss max MiB', 'fds max', 'crashes', 'kills'], rows: r.processes.map(row), numeric: [1, 2, 3, 4] }
}

/** A heading with its count, then the table, or `None.` for no rows. */
function section(title: string, table: Table): Block[] {
  const body: Block = table.rows.length === 0 ? { kind: 'text', text: 'None.' } : { kind: 'table', table }
  return [{ kind: 'heading', text: `${title} (${table.rows.length})` }, body]
}

/** Hyper-V Replica's figures and the writes that reached the replica later than the RPO; nothing when no VM was replicated. */
function replicationBlocks(r: SoakReport): Block[] {
  if (r.replication.length === 0) return []
  return [...section('Replication', replicationTable(r)), ...section('Writes later than the RPO', lateWritesTable(r))]
}

/** Everything after the report's header, in reading order. */
function reportBlocks(r: SoakReport): Block[] {
  const violations: Block[] =
    r.violations.length === 0
      ? [{ kind: 'text', text: 'None: every check held.' }]
      : r.violations.flatMap((v, i) => violationBlocks(v, i + 1, r))
  return [
    { kind: 'heading', text: 'Summary' },
    { kind: 'table', table: summaryTable(r.summary) },
    { kind: 'table', table: durationsTable(r.summary) },
    { kind: 'heading', text: `Violations (${r.violations.length})` },
    ...violations,
    ...section('Faults', faultsTable(r)),
    ...section('Migrations', migrationsTable(r)),
    ...section('Operator actions', operatorActionsTable(r)),
    ...replicationBlocks(r),
    ...section('Processes', processesTable(r)),
  ]
}

// ---- Markdown ----

/**
 * Text that Markdown shows as written, in a table cell too: its punctuation that could
 * format, link, open HTML or split a cell is backslash-escaped; line breaks become `<br>`.
 */
function markdownText(text: string): string {
  return text.replace(/[\\`*_[\]<>|&~$]/g, '\\$&').replace(/\r\n|\r|\n/g, '<br>')
}

/** A code span around `text` (on one line); in a table its `|` is escaped, as GFM reads it there. */
function markdownCode(text: string, inTable: boolean): string {
  const flat = text.replace(/\r\n|\r|\n/g, ' ')
  const body = inTable ? flat.replace(/\|/g, '\\|') : flat
  const longestTicks = Math.max(0, ...(flat.match(/`+/g) ?? []).map((ticks) => ticks.length))
  const fence = '`'.repeat(longestTicks + 1)
  const space = /^[` ]|[` ]$/.test(body) || body === '' ? ' ' : ''
  return `${fence}${space}${body}${space}${fence}`
}

const markdownCell = (cell: Cell, inTable: boolean): string =>
  typeof cell === 'string' ? markdownText(cell) : markdownCode(cell.code, inTable)

function markdownTable(t: Table): string {
  const line = (cells: string[]): string => `| ${cells.join(' | ')} |`
  const rule = t.head.map((_, i) => (t.numeric.includes(i) ? '---:' : '---'))
  const rows = t.rows.map((row) => line(row.map((cell) => markdownCell(cell, true))))
  return [line(t.head.map(markdownText)), line(rule), ...rows].join('\n')
}

function markdownBlock(b: Block): string {
  switch (b.kind) {
    case 'heading':
      return `## ${markdownText(b.text)}`
    case 'subheading':
      return `### ${markdownText(b.text)}`
    case 'text':
      return markdownText(b.text)
    case 'facts':
      return b.facts.map(([label, value]) => `- ${markdownText(label)}: ${markdownCell(value, false)}`).join('\n')
    case 'table':
      return markdownTable(b.table)
  }
}

/** The report in Markdown; its first line holds the verdict, the seed and the command that reproduces the run. */
export function reportMarkdown(r: SoakReport): string {
  const header = [
    `# Soak ${verdictWord(r)} · seed ${r.seed} · reproduce: ${markdownCode(r.reproduce, false)}`,
    '',
    markdownText(runLine(r)),
    '',
    'The timeline plot is in report.html.',
  ]
  return [...header, ...reportBlocks(r).flatMap((b) => ['', markdownBlock(b)])].join('\n') + '\n'
}

// ---- HTML ----

const HTML_ESCAPES: Readonly<Record<string, string>> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }

/** Text that HTML shows as written, in element content and in quoted attribute values. */
function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => HTML_ESCAPES[c] ?? c)
}

const htmlCell = (cell: Cell): string => (typeof cell === 'string' ? escapeHtml(cell) : `<code>${escapeHtml(cell.code)}</code>`)

function htmlTable(t: Table): string {
  const attrs = (i: number): string => (t.numeric.includes(i) ? ' class="num"' : '')
  const head = t.head.map((h, i) => `<th${attrs(i)}>${escapeHtml(h)}</th>`).join('')
  const rows = t.rows.map((row) => `<tr>${row.map((cell, i) => `<td${attrs(i)}>${htmlCell(cell)}</td>`).join('')}</tr>`)
  return [`<table><thead><tr>${head}</tr></thead><tbody>`, ...rows, '</tbody></table>'].join('\n')
}

function htmlBlock(b: Block): string {
  switch (b.kind) {
    case 'heading':
      return `<h2>${escapeHtml(b.text)}</h2>`
    case 'subheading':
      return `<h3>${escapeHtml(b.text)}</h3>`
    case 'text':
      return `<p>${escapeHtml(b.text)}</p>`
    case 'facts': {
      const items = b.facts.map(([label, value]) => `<li><b>${escapeHtml(label)}</b>: ${htmlCell(value)}</li>`)
      return `<ul class="facts">${items.join('')}</ul>`
    }
    case 'table':
      return htmlTable(b.table)
  }
}

/**
 * The report as JSON text to put inside a `<script>` element: every `<` is written as
 * `\u003c`, so no string in it can close the element (`</script>`) or open a comment (`<!--`).
 */
function jsonForScript(r: SoakReport): string {
  return JSON.stringify(r).replace(/</g, '\\u003c')
}

/** Apache ECharts' minified browser build, from the node_modules next to this module. */
function echartsBrowserBuild(): string {
  let path: string
  try {
    path = createRequire(import.meta.url).resolve('echarts/dist/echarts.min.js')
  } catch (err) {
    const here = fileURLToPath(import.meta.url)
    throw new Error(
      `the soak report inlines Apache ECharts, but echarts/dist/echarts.min.js is not installed for ${here}: run \`npm ci\``,
      {
        cause: err,
      },
    )
  }
  return readFileSync(path, 'utf8')
}

/**
 * Script text that cannot end its `<script>` element early: `</script` and `<!--` get their
 * `<` as `\x3C`, which means the same in JS strings, regexes and comments.
 */
const inlineScript = (code: string): string => code.replace(/<(\/script|!--)/gi, '\\x3C$1')

/** Only the page's own scripts run (by hash: no injected element or handler does), and nothing loads from anywhere. */
function contentSecurityPolicy(scripts: readonly string[]): string {
  const hashes = scripts.map((code) => `'sha256-${createHash('sha256').update(code, 'utf8').digest('base64')}'`)
  return `default-src 'none'; script-src ${hashes.join(' ')}; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'`
}

const PAGE_STYLE = [
  'body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:24px;color:#222}',
  'h1 .pass{color:#2e7d32}h1 .fail{color:#c62828}',
  'table{border-collapse:collapse;margin:8px 0 18px}',
  'th,td{border:1px solid #ddd;padding:3px 8px;text-align:left;vertical-align:top;white-space:pre-wrap}',
  'th{background:#f4f4f4}td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}',
  'code{font:12px ui-monospace,Menlo,Consolas,monospace;word-break:break-all}',
  '#timeline{width:100%;min-height:320px}.explain{color:#555;max-width:75em}',
].join('\n')

const TIMELINE_EXPLANATION =
  'One row per VM shows where it ran, coloured by host; red marks on a row are gaps in its client’s replies ' +
  '(red triangles: violations that name the VM). Orange bands are faults, from injection to heal. Vertical lines: ' +
  'blue dashed, a live migration’s hand-over; purple, a VM starting on another host outside a migration (a ' +
  'failover or a move); red, a violation; dotted, when faults stopped and the recovery deadline. Below: each VM’s ' +
  'client round trips (ms, log scale). Hover for details, click legend entries to hide them, drag the slider or ' +
  'Ctrl+wheel to zoom.'

function headerHtml(r: SoakReport): string {
  return [
    `<h1>Soak <span class="${r.verdict === 'pass' ? 'pass' : 'fail'}">${verdictWord(r)}</span> · seed ${escapeHtml(String(r.seed))}</h1>`,
    `<p>Reproduce: <code>${escapeHtml(r.reproduce)}</code></p>`,
    `<p>${escapeHtml(runLine(r))}</p>`,
    '<h2>Timeline</h2>',
    `<p class="explain">${escapeHtml(TIMELINE_EXPLANATION)}</p>`,
    '<div id="timeline"></div>',
    '<noscript><p>The timeline needs JavaScript; the tables below do not.</p></noscript>',
  ].join('\n')
}

/** The report as one self-contained HTML page: the tables, and the timeline that ECharts draws from the report's JSON. */
export function reportHtml(r: SoakReport): string {
  const echarts = inlineScript(echartsBrowserBuild())
  const plot = inlineScript(TIMELINE_SCRIPT)
  return [
    '<!doctype html>',
    '<html lang="en">',
    '<head>',
    '<meta charset="utf-8">',
    `<meta http-equiv="Content-Security-Policy" content="${escapeHtml(contentSecurityPolicy([echarts, plot]))}">`,
    '<meta name="viewport" content="width=device-width, initial-scale=1">',
    `<title>Soak ${verdictWord(r)} · seed ${escapeHtml(String(r.seed))}</title>`,
    `<style>\n${PAGE_STYLE}\n</style>`,
    '</head>',
    '<body>',
    headerHtml(r),
    ...reportBlocks(r).map(htmlBlock),
    `<script type="application/json" id="soak-data">${jsonForScript(r)}</script>`,
    `<script>${echarts}</script>`,
    `<script>${plot}</script>`,
    '</body>',
    '</html>',
    '',
  ].join('\n')
}

/** Writes report.json (pretty), report.md and report.html into `dir` (made if missing); returns their paths. */
export function writeReport(dir: string, r: SoakReport): { json: string; markdown: string; html: string } {
  const html = reportHtml(r)
  mkdirSync(dir, { recursive: true })
  const paths = { json: join(dir, 'report.json'), markdown: join(dir, 'report.md'), html: join(dir, 'report.html') }
  writeFileSync(paths.json, JSON.stringify(r, null, 2) + '\n')
  writeFileSync(paths.markdown, reportMarkdown(r))
  writeFileSync(paths.html, html)
  return paths
}
