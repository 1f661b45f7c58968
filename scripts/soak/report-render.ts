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
import type {
  DurationStats,
  EventExcerpt,
  FaultOutcome,
  MigrationOutcome,
  OperatorActionOutcome,
  ProcessResources,
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
export function runClock(at_ms: number, started_ms: number): string {
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
    ['writes lost within the RPO', String(s.writes_lost_within_rpo)],
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

function faultRow(f: FaultOutcome, r: SoakReport): Cell[] {
  const duration = f.heal_ms === null ? 'not healed' : seconds(f.heal_ms - f.start_ms)
  const rto = listOrNone(f.rto_ms_by_vm.map((x) => `${x.vm} ${wholeMs(x.rto_ms)}`))
  return [String(f.id), f.kind, f.target, sinceStart(f.start_ms, r), duration, msOrNone(f.detection_ms), rto, String(f.failovers)]
}

function faultsTable(r: SoakReport): Table {
  const head = ['id', 'kind', 'target', 'start s', 'duration s', 'detection ms', 'RTO ms per VM', 'failovers']
  return { head, rows: r.faults.map((f) => faultRow(f, r)), numeric: [0, 3, 4, 5, 7] }
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
  ]
  return { head: ['kind', 'target', 'start s', 'duration s', 'ok', 'error code'], rows: r.operator_actions.map(row), numeric: [2, 3] }
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
    ...section('Processes', processesTable(r)),
  ]
}

// ---- Markdown ----

/**
 * Text that Markdown shows as written, in a table cell too: its punctuation that could
 * format, link, open HTML or split a cell is backslash-escaped; line breaks become `<br>`.
 */
export function markdownText(text: string): string {
  return text.replace(/[\\`*_[\]<>&~$]/g, '\\$&').replace(/\r\n|\r|\n/g, '<br>')
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
export function escapeHtml(text: string): string {
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
    case 'facts':
      return `<ul class="facts">${b.facts.map(([label, value]) => `<li><b>${escapeHtml(label)}</b>: ${htmlCell(value)}</li>`).join('')}</ul>`
    case 'table':
      return htmlTable(b.table)
  }
}

/**
 * The report as JSON text to put inside a `<script>` element: every `<` is written as
 * `\u003c`, so no string in it can close the element (`</script>`) or open a comment (`<!--`).
 */
export function jsonForScript(r: SoakReport): string {
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

/** Script text that cannot end its `<script>` element early: `</script` and `<!--` get their `<` as `\x3C` (the same in JS strings, regexes and comments). */
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

// ---- The page's own script: the timeline plot ----

/**
 * Runs in the browser, after ECharts: reads the report from #soak-data and draws the
 * timeline into #timeline. The top grid has one row per VM (runs per host, client gaps,
 * violations); the bottom one the clients' round trips; fault bands and event lines are on
 * both, sharing one zoomable x axis in seconds since the run's start. Every text that
 * reaches a tooltip (HTML) goes through `esc`; labels and legends are drawn on the canvas.
 */
const TIMELINE_SCRIPT = String.raw`(() => {
  'use strict'
  const r = JSON.parse(document.getElementById('soak-data').textContent)
  const RED = '#d62728', ORANGE = '#c45a00', BLUE = '#1f77b4', PURPLE = '#9467bd'
  const HOST_COLOURS = ['#4e79a7', '#59a14f', '#edc948', '#b07aa1', '#76b7b2', '#f28e2b', '#9c755f', '#bab0ac', '#86bcb6', '#8cd17d', '#499894', '#d4a6c8']
  const VM_COLOURS = ['#1f77b4', '#ff7f0e', '#2ca02c', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22', '#17becf', '#393b79', '#637939', '#8c6d31', '#843c39', '#7b4173', '#3182bd', '#31a354']
  const sec = (ms) => (ms - r.started_ms) / 1000
  const at = (ms) => sec(ms).toFixed(1) + ' s'
  const esc = (s) => String(s).replace(/[&<>"']/g, (c) => '&#' + c.charCodeAt(0) + ';')
  const short = (s) => { const line = String(s).split('\n')[0]; return line.length > 32 ? line.slice(0, 31) + '\u2026' : line }
  const vms = [...new Set(r.vms.concat(r.series.map((s) => s.vm)))]
  const rowOf = new Map(vms.map((vm, i) => [vm, i]))
  const hosts = [...new Set(r.series.flatMap((s) => s.runs.map((run) => run[2])))].sort()
  const ganttTop = 84, ganttHeight = Math.max(vms.length, 2) * 28
  const rttTop = ganttTop + ganttHeight + 84, rttHeight = 220, zoomTop = rttTop + rttHeight + 44
  const bar = (share) => (params, api) => {
    const row = api.value(2), from = api.coord([api.value(0), row]), to = api.coord([api.value(1), row])
    const h = api.size([0, 1])[1] * share
    const rect = { x: from[0], y: from[1] - h / 2, width: Math.max(to[0] - from[0], 2), height: h }
    const shape = echarts.graphic.clipRectByRect(rect, params.coordSys)
    return shape && { type: 'rect', shape: shape, style: { fill: api.visual('color') } }
  }
  const spans = (name, colour, share, z, items) => ({
    type: 'custom', name: name, renderItem: bar(share), itemStyle: { color: colour }, encode: { x: [0, 1], y: 2 }, z: z,
    xAxisIndex: 0, yAxisIndex: 0, data: items,
  })
  const runSeries = hosts.map((host, i) => spans(host, HOST_COLOURS[i % HOST_COLOURS.length], 0.6, 2, r.series.flatMap((s) =>
    s.runs.filter((run) => run[2] === host).map((run) => ({ value: [sec(run[0]), sec(run[1]), rowOf.get(s.vm)], tip: s.vm + ' ran on ' + host + '\n' + at(run[0]) + ' to ' + at(run[1]) })))))
  const gapSeries = spans('client gaps', RED, 0.3, 3, r.series.flatMap((s) => s.gaps.map((g) =>
    ({ value: [sec(g.from_ms), sec(g.to_ms), rowOf.get(s.vm)], tip: s.vm + ': no reply for ' + Math.round(g.to_ms - g.from_ms) + ' ms\n' + at(g.from_ms) + ' to ' + at(g.to_ms) }))))
  const violationMarks = { type: 'scatter', name: 'violations', symbol: 'triangle', symbolSize: 12, itemStyle: { color: RED }, z: 5, xAxisIndex: 0, yAxisIndex: 0,
    data: r.violations.filter((v) => rowOf.has(v.vm)).map((v) => ({ value: [sec(v.at_ms), rowOf.get(v.vm)], tip: 'violation: ' + v.kind + '\n' + v.summary })) }
  const end = Math.max(sec(r.ended_ms), 1)
  const element = document.getElementById('timeline')
  const plotWidth = Math.max((element.clientWidth || 1000) - 170, 200)
  const faultLabel = (f, from, to, pxPerSecond) => {
    const full = short('#' + f.id + ' ' + f.kind + ' ' + f.target), width = (to - from) * pxPerSecond
    const text = width >= full.length * 5.5 + 6 ? full : width >= 8 + 6 * String(f.id).length ? '#' + f.id : ''
    return { show: text !== '', formatter: () => text }
  }
  const faultAreas = (pxPerSecond) => r.faults.map((f) => {
    const from = sec(f.start_ms), to = sec(f.heal_ms === null ? r.ended_ms : f.heal_ms)
    const tip = 'fault ' + f.id + ': ' + f.kind + ' ' + f.target + '\n' + at(f.start_ms) + ' to ' + (f.heal_ms === null ? 'the end (not healed)' : at(f.heal_ms)) +
      '\ndetection: ' + (f.detection_ms === null ? 'none' : Math.round(f.detection_ms) + ' ms') +
      '\nRTO: ' + (f.rto_ms_by_vm.map((x) => x.vm + ' ' + Math.round(x.rto_ms) + ' ms').join(', ') || 'none') + '\nfailovers: ' + f.failovers
    return [{ xAxis: from, name: tip, label: faultLabel(f, from, to, pxPerSecond) }, { xAxis: to }]
  })
  const migrationLines = r.migrations.map((m) => ({ x: sec(m.end_ms), tip: 'migration: ' + m.vm + ' ' + m.from + ' \u2192 ' + m.to + ' (' + m.mode + (m.ok ? ', ok' : ', failed') + ')\n' + at(m.start_ms) +
    ' to ' + at(m.end_ms) + '\nblackout reported: ' + (m.reported_blackout_ms === null ? 'none' : m.reported_blackout_ms + ' ms') + ', client gap: ' + (m.client_gap_ms === null ? 'none' : m.client_gap_ms + ' ms') }))
  const failoverLines = []
  for (const s of r.series) {
    const runs = s.runs.slice().sort((a, b) => a[0] - b[0])
    for (let i = 1; i < runs.length; i++) {
      const before = runs[i - 1], run = runs[i]
      const migrated = r.migrations.some((m) => m.vm === s.vm && m.to === run[2] && run[0] >= m.start_ms - 1000 && run[0] <= m.end_ms + 1000)
      if (before[2] !== run[2] && !migrated) failoverLines.push({ x: sec(run[0]), tip: 'failover or move: ' + s.vm + ' ' + before[2] + ' \u2192 ' + run[2] + ' at ' + at(run[0]) })
    }
  }
  const violationLines = r.violations.map((v) => ({ x: sec(v.at_ms), tip: 'violation: ' + v.kind + (v.vm ? ' ' + v.vm : '') + (v.process ? ' ' + v.process : '') + '\n' + v.summary }))
  const phaseLines = [{ x: sec(r.faults_stopped_ms), tip: 'faults stopped' }, { x: sec(r.faults_stopped_ms + r.recovery_bound_ms), tip: 'recovery deadline' }]
  const lines = (name, grid, items, colour, type, labelsUpTo) => ({
    type: 'line', name: name, xAxisIndex: grid, yAxisIndex: grid, data: [], itemStyle: { color: colour }, z: 4,
    markLine: { symbol: 'none', animation: false, lineStyle: { color: colour, type: type, width: 1.2, opacity: 0.85 },
      label: { show: grid === 0 && items.length <= labelsUpTo, position: 'insideEndTop', fontSize: 10, color: colour, formatter: (p) => short(p.name) },
      data: items.map((l) => ({ xAxis: l.x, name: l.tip })) },
  })
  const marks = (grid) => [
    { type: 'line', id: 'faults-' + grid, name: 'faults', xAxisIndex: grid, yAxisIndex: grid, data: [], itemStyle: { color: '#f28e2b' }, z: 0,
      markArea: { itemStyle: { color: 'rgba(242,142,43,' + (r.faults.length > 60 ? 0.1 : 0.18) + ')' }, data: faultAreas(plotWidth / end),
        label: { show: grid === 0, position: 'top', distance: 2, fontSize: 10, color: ORANGE } } },
    lines('migrations', grid, migrationLines, BLUE, 'dashed', 10),
    lines('failovers', grid, failoverLines, PURPLE, 'solid', 0),
    lines('violations', grid, violationLines, RED, 'solid', 10),
    lines('run phases', grid, phaseLines, '#444', 'dotted', 2),
  ]
  const rttSeries = r.series.map((s) => ({ type: 'scatter', name: s.vm + ' rtt', xAxisIndex: 1, yAxisIndex: 1, symbolSize: 3, large: true, largeThreshold: 2000,
    itemStyle: { color: VM_COLOURS[rowOf.get(s.vm) % VM_COLOURS.length] }, data: s.rtt.map((p) => [sec(p[0]), Math.max(p[1], 0.1)]) }))
  const tipOf = (p) => {
    if (p.componentType === 'markArea' || p.componentType === 'markLine') return p.name
    if (p.data && typeof p.data.tip === 'string') return p.data.tip
    if (p.seriesType === 'scatter' && Array.isArray(p.data)) return p.seriesName + ': ' + p.data[1] + ' ms at ' + p.data[0].toFixed(3) + ' s'
    return p.seriesName
  }
  const xAxis = (grid) => ({ type: 'value', gridIndex: grid, min: 0, max: end, name: grid === 1 ? 'seconds since the start' : '', nameLocation: 'middle', nameGap: 28, axisLabel: { formatter: (v) => v + ' s' } })
  element.style.height = zoomTop + 56 + 'px'
  const chart = echarts.init(element)
  chart.setOption({
    animation: false,
    tooltip: { trigger: 'item', confine: true, formatter: (p) => esc(tipOf(p)).replace(/\n/g, '<br>') },
    toolbox: { right: 10, top: 0, feature: { dataZoom: { yAxisIndex: 'none' }, restore: {}, saveAsImage: {} } },
    legend: [
      { type: 'scroll', top: 0, left: 10, right: 120, data: hosts.concat(['client gaps', 'faults', 'migrations', 'failovers', 'violations', 'run phases']) },
      { type: 'scroll', top: rttTop - 44, left: 10, right: 10, data: r.series.map((s) => s.vm + ' rtt') },
    ],
    grid: [{ left: 130, right: 40, top: ganttTop, height: ganttHeight }, { left: 130, right: 40, top: rttTop, height: rttHeight }],
    xAxis: [xAxis(0), xAxis(1)],
    yAxis: [
      { type: 'category', gridIndex: 0, data: vms, inverse: true, axisTick: { show: false }, splitLine: { show: true, lineStyle: { color: '#eee' } }, axisLabel: { width: 120, overflow: 'truncate' } },
      { type: 'log', gridIndex: 1, name: 'client round trip, ms', nameTextStyle: { align: 'left' } },
    ],
    dataZoom: [
      { type: 'inside', xAxisIndex: [0, 1], filterMode: 'none', zoomOnMouseWheel: 'ctrl', moveOnMouseWheel: false },
      { type: 'slider', xAxisIndex: [0, 1], filterMode: 'none', top: zoomTop, height: 22, labelFormatter: (v) => Number(v).toFixed(1) + ' s' },
    ],
    series: runSeries.concat([gapSeries, violationMarks], marks(0), marks(1), rttSeries),
  })
  chart.on('datazoom', () => {
    const zoom = chart.getOption().dataZoom[0], shown = Math.max((end * (zoom.end - zoom.start)) / 100, 0.001)
    chart.setOption({ series: [{ id: 'faults-0', markArea: { data: faultAreas(plotWidth / shown) } }] })
  })
  window.addEventListener('resize', () => chart.resize())
})()
`
