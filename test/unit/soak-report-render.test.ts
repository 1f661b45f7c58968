/**
 * The soak report's renderers on a hand-made report (2 VMs, 2 faults, 1 migration, 1
 * violation whose text comes from outside and holds `</script><img …>` and `|`): the
 * Markdown's verdict line, tables and escaping; the HTML page is self-contained (ECharts
 * inline, no script from elsewhere), nothing from the data breaks out of its elements, the
 * embedded JSON parses back to the report, the CSP admits exactly the page's scripts, and
 * the page's own script draws the timeline with the real ECharts (server-side, as SVG);
 * empty statistics read `none`; writeReport writes the three files.
 */
import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { join } from 'node:path'
import { runInNewContext } from 'node:vm'
import t, { type Test } from 'tap'
import { reportHtml, reportMarkdown, writeReport } from '../../scripts/soak/report-render.js'
import type { SoakReport } from '../../scripts/soak/report-types.js'

const T0 = Date.UTC(2026, 11, 6, 5, 0, 0, 0)
const HOSTILE = 'host-a1 said </script><img src=x onerror=alert(1)> | <!-- oops'

function sampleReport(): SoakReport {
  return {
    format: 1,
    verdict: 'fail',
    seed: 4242,
    reproduce: 'npx hvlab soak --seed 4242 --faults kill,partition',
    topology: 'topologies/two-site.json',
    faults_enabled: ['kill', 'partition'],
    vms: ['vm-1', 'vm-2'],
    started_ms: T0,
    ended_ms: T0 + 120_000,
    faults_stopped_ms: T0 + 90_000,
    recovery_bound_ms: 20_000,
    summary: {
      faults: 2,
      operator_actions: 2,
      client_requests: 2400,
      client_replies: 2391,
      disk_writes: 500,
      disk_writes_acked: 498,
      acked_writes_lost: 1,
      acked_bytes_lost: 4096,
      writes_lost_allowed: 0,
      violations: 1,
      detection: { count: 2, p50_ms: 1500, p99_ms: 2100, max_ms: 2100 },
      rto: { count: 2, p50_ms: 6200.4, p99_ms: 9100, max_ms: 9100 },
      blackout: { count: 1, p50_ms: 180, p99_ms: 180, max_ms: 180 },
      client_blackout: { count: 1, p50_ms: 420, p99_ms: 420, max_ms: 420 },
    },
    violations: [
      {
        kind: 'double-owner',
        summary: `vm-1 ran on host-a1 and host-b1 for 1200 ms: ${HOSTILE}`,
        at_ms: T0 + 61_234,
        vm: 'vm-1',
        process: 'host-a1',
        events_around: [
          { at_ms: T0 + 60_000, source: 'host-a1', kind: 'process.signalled', details: '{"process":"host-a1","signal":"SIGCONT"}' },
          { at_ms: T0 + 61_234, source: 'host-b1', kind: 'vm.started', details: `{"vm":"vm-1","error":"${HOSTILE}"}` },
        ],
      },
    ],
    faults: [
      {
        id: 1,
        kind: 'kill',
        target: 'host-a1',
        start_ms: T0 + 10_000,
        heal_ms: T0 + 25_000,
        detection_ms: 1500,
        rto_ms_by_vm: [{ vm: 'vm-1', rto_ms: 9100 }],
        failovers: 1,
        writes_lost: 1,
        bytes_lost: 4096,
        writes_lost_allowed: 0,
        bytes_lost_allowed: 0,
      },
      {
        id: 2,
        kind: 'partition',
        target: 'site-a | site-b',
        start_ms: T0 + 50_000,
        heal_ms: null,
        detection_ms: null,
        rto_ms_by_vm: [],
        failovers: 0,
        writes_lost: 0,
        bytes_lost: 0,
        writes_lost_allowed: 3,
        bytes_lost_allowed: 12_288,
      },
    ],
    migrations: [
      {
        vm: 'vm-2',
        from: 'host-a2',
        to: 'host-b2',
        mode: 'live',
        start_ms: T0 + 30_000,
        end_ms: T0 + 33_000,
        ok: true,
        reported_blackout_ms: 180,
        client_gap_ms: 420,
      },
    ],
    operator_actions: [
      { kind: 'live-migrate', target: 'vm-2', start_ms: T0 + 30_000, end_ms: T0 + 33_100, ok: true, error_code: null, said: null },
      {
        kind: 'quick-move',
        target: 'vm-1 → host-b1',
        start_ms: T0 + 40_000,
        end_ms: T0 + 40_500,
        ok: false,
        error_code: null,
        said: 'move of vm-1 failed: a | b\nsecond line',
      },
    ],
    replication: [
      {
        vm: 'vm-1',
        server: 'replica-dr1',
        frequency_ms: 3000,
        rpo_ms: 6000,
        cycles_applied: 35,
        resyncs: 2,
        writes_judged: 2000,
        lag: { count: 2000, p50_ms: 1600, p99_ms: 5900, max_ms: 14_000 },
        late: [
          {
            from_ms: T0 + 50_000,
            to_ms: T0 + 52_000,
            writes: 40,
            lag_max_ms: 14_000,
            reached_ms: T0 + 64_000,
            cause: 'fault 2 partition site-a | site-dr',
          },
          { from_ms: T0 + 80_000, to_ms: T0 + 80_500, writes: 10, lag_max_ms: 7000, reached_ms: T0 + 87_000, cause: null },
        ],
        caught_up_ms: T0 + 110_000,
        blocks_compared: 1000,
        blocks_differing: 0,
        blocks_in_doubt: 3,
      },
    ],
    processes: [
      { name: 'host-a1', rss_max_bytes: 96 * 1024 * 1024, fds_max: 41, crashes: 0, kills: 1 },
      { name: 'array-a', rss_max_bytes: 64 * 1024 * 1024, fds_max: 30, crashes: 0, kills: 0 },
    ],
    series: [
      {
        vm: 'vm-1',
        rtt: [
          [T0 + 1000, 2],
          [T0 + 9000, 3],
          [T0 + 20_000, 0],
          [T0 + 100_000, 4],
        ],
        gaps: [{ from_ms: T0 + 10_100, to_ms: T0 + 19_200 }],
        runs: [
          [T0, T0 + 10_000, 'host-a1'],
          [T0 + 18_000, T0 + 120_000, 'host-b1'],
        ],
      },
      {
        vm: 'vm-2',
        rtt: [
          [T0 + 1000, 1.5],
          [T0 + 40_000, 2.5],
        ],
        gaps: [],
        runs: [
          [T0, T0 + 33_000, 'host-a2'],
          [T0 + 33_000, T0 + 120_000, 'host-b2'],
        ],
      },
    ],
  }
}

function quietReport(): SoakReport {
  const r = sampleReport()
  const summary = { ...r.summary, violations: 0, detection: null, rto: null, blackout: null, client_blackout: null }
  return { ...r, verdict: 'pass', summary, violations: [], faults: [], migrations: [], operator_actions: [], replication: [] }
}

/** A Markdown table row's cells, split where GFM splits them: at pipes no backslash escapes. */
const cellsOf = (row: string): string[] => row.slice(1, -1).split(/(?<!\\)\|/)

/** The text of each `<script>` element, in order, with its attributes. */
function scripts(html: string): { attrs: string; text: string }[] {
  return [...html.matchAll(/<script([^>]*)>([\s\S]*?)<\/script>/g)].map((m) => ({ attrs: m[1] ?? '', text: m[2] ?? '' }))
}

t.test('Markdown: the verdict line, a row per fault, the violation, pipes escaped', async (t) => {
  const md = reportMarkdown(sampleReport())
  const lines = md.split('\n')
  t.equal(lines[0], '# Soak FAIL · seed 4242 · reproduce: `npx hvlab soak --seed 4242 --faults kill,partition`', 'first line')
  t.match(md, '| 1 | kill | host-a1 | 10.0 | 15.0 | 1500 | vm-1 9100 | 1 | 4096 (1 write) | 0 |', 'fault 1, with the bytes it lost')
  t.match(md, '| 0 | 12288 (3 writes) |', 'fault 2 lost only what was allowed')
  t.match(md, '| 2 | partition | site-a \\| site-b | 50.0 | not healed | none | none | 0 |', 'fault 2, its pipe escaped')
  t.match(md, '### 1. double-owner: vm-1 ran on host-a1 and host-b1 for 1200 ms: host-a1 said \\</script\\>\\<img', 'violation heading')
  t.match(md, '- at: +00:01:01.234 (05:01:01.234 UTC)', 'violation time, since the start and on the clock')
  t.match(md, '| +00:01:00.000 | host-a1 | process.signalled | `{"process":"host-a1","signal":"SIGCONT"}` |', 'event around it')
  t.match(md, '| vm-2 | host-a2 → host-b2 | live | 30.0 | 3.0 | yes | 180 | 420 |', 'migration')
  t.match(md, '| live-migrate | vm-2 | 30.0 | 3.1 | yes | – | – |', 'operator action')
  t.match(
    md,
    '| quick-move | vm-1 → host-b1 | 40.0 | 0.5 | no | – | move of vm-1 failed: a \\| b<br>second line |',
    'a failed one says why',
  )
  t.match(md, '| host-a1 | 96.0 | 41 | 0 | 1 |', 'process')
  t.match(md, '| vm-1 → replica-dr1 | 3.0 | 6.0 | 35 | 2 | 2000 | 1600 / 5900 / 14000 | 40 | 10 | 110.0 | 0 of 1000 | 3 |', 'Replica')
  t.match(md, '| vm-1 | 50.0 | 52.0 | 40 | 14000 | 64.0 | fault 2 partition site-a \\| site-dr |', 'writes held back by a fault')
  t.match(md, '| vm-1 | 80.0 | 80.5 | 10 | 7000 | 87.0 | nothing on the path: a violation |', 'and late ones with no excuse')
  t.match(md, "| RTO (the client's longest gap per fault) | 2 | 6200 | 9100 | 9100 |", 'RTO stats')
  const outsideCode = md.replace(/`[^`\n]*`/g, '')
  t.notMatch(outsideCode, /(?<!\\)<(img|\/script)/, 'no raw HTML from the data outside code spans')
  t.match(md, '`{"vm":"vm-1","error":"host-a1 said </script><img src=x onerror=alert(1)> \\| <!-- oops"}`', 'in a code span as written')
  const tables = md.split('\n\n').filter((b) => b.startsWith('|'))
  t.equal(tables.length, 9, 'summary, durations, events, faults, migrations, operator actions, replication, late writes, processes')
  for (const table of tables) {
    const [head, ...rows] = table.trimEnd().split('\n')
    for (const row of rows) t.equal(cellsOf(row).length, cellsOf(head!).length, `cells of ${row.slice(0, 40)}`)
  }
})

t.test('Markdown: null statistics and no violations read none', async (t) => {
  const md = reportMarkdown(quietReport())
  t.match(md.split('\n')[0], /^# Soak PASS · seed 4242/)
  t.match(md, '| detection (fault to node.lost) | none | – | – | – |')
  t.match(md, '| blackout as the client saw it | none | – | – | – |')
  t.match(md, '## Violations (0)\n\nNone: every check held.')
  t.match(md, '## Faults (0)\n\nNone.')
  t.notMatch(md, 'Replication', 'no Replica section without a replicated VM')
})

t.test('Markdown: a reproduce command with backticks stays one code span', async (t) => {
  const first = (reproduce: string): string => reportMarkdown({ ...sampleReport(), reproduce }).split('\n')[0]!
  t.match(first('run `x` now'), /reproduce: ``run `x` now``$/, 'a longer fence')
  t.match(first('`x` ``y``'), /reproduce: ``` `x` ``y`` ```$/, 'padded where it starts with a backtick')
})

t.test('HTML: self-contained, ECharts inline, nothing from the data breaks out, JSON parses back', async (t) => {
  const report = sampleReport()
  const html = reportHtml(report)
  t.notMatch(html, /<script[^>]*\bsrc\s*=/i, 'no script from elsewhere')
  t.notMatch(html, /https?:\/\/[^"'\s]*\.(js|css)\b/i, 'no CDN')
  const echarts = readFileSync(createRequire(import.meta.url).resolve('echarts/dist/echarts.min.js'), 'utf8')
  t.ok(html.includes(echarts), "ECharts' browser build inline")
  t.match(html, 'echarts.init(', 'the page draws with it')
  t.notOk(html.includes('</script><img'), 'the raw markup from the data is not in the page')
  t.notOk(html.replace(echarts, '').includes('<img'), 'no img element outside ECharts')
  t.ok(html.includes('host-a1 said &lt;/script&gt;&lt;img src=x onerror=alert(1)&gt; | &lt;!-- oops'), 'escaped in the tables')
  t.match(html, '<th class="num">bytes lost</th><th class="num">bytes lost where allowed</th>', 'the faults table has the bytes lost')
  t.match(html, '<td class="num">4096 (1 write)</td><td class="num">0</td>', "and fault 1's")
  const all = scripts(html)
  t.equal(all.length, 3, 'three script elements: the data, ECharts, the page script; none ended early')
  const data = all.find((s) => s.attrs.includes('id="soak-data"'))
  t.ok(data && data.attrs.includes('type="application/json"'), 'the data is JSON')
  t.notMatch(data!.text, /</, 'no < in the JSON text')
  t.same(JSON.parse(data!.text), report, 'the JSON parses back to the report')
  const csp = (/http-equiv="Content-Security-Policy" content="([^"]*)"/.exec(html)?.[1] ?? '').replaceAll('&#39;', "'")
  const hashes = [...csp.matchAll(/'sha256-([^']+)'/g)].map((m) => m[1])
  const executable = all.filter((s) => !s.attrs.includes('application/json'))
  t.same(
    hashes,
    executable.map((s) => createHash('sha256').update(s.text, 'utf8').digest('base64')),
    'the CSP admits exactly the inline scripts',
  )
  t.match(csp, "default-src 'none'")
})

t.test('HTML: null statistics and no violations read none', async (t) => {
  const html = reportHtml(quietReport())
  t.match(html, '<td>detection (fault to node.lost)</td><td class="num">none</td>')
  t.match(html, '<p>None: every check held.</p>')
  t.match(html, 'Soak <span class="pass">PASS</span>')
})

interface FakeElement {
  textContent: string
  style: { height?: string }
}
interface Chart {
  dispose(): void
  getOption(): { series: { name?: string; markArea?: { data: unknown[] } }[]; tooltip: { formatter: (p: unknown) => string }[] }
  renderToSVGString(): string
  dispatchAction(action: { type: 'dataZoom'; start: number; end: number }): void
}

/** Runs the page's own script against the real ECharts, drawing server-side into an SVG. */
function drawTimeline(t: Test, html: string): Chart {
  const echarts = createRequire(import.meta.url)('echarts') as Record<string, unknown> & {
    init(dom: null, theme: null, opts: { renderer: 'svg'; ssr: true; width: number; height: number }): Chart
  }
  const elements: Record<string, FakeElement> = {
    'soak-data': { textContent: '', style: {} },
    timeline: { textContent: '', style: {} },
  }
  const all = scripts(html)
  elements['soak-data']!.textContent = all[0]!.text
  let chart: Chart | undefined
  const init = (el: FakeElement): Chart =>
    (chart = echarts.init(null, null, { renderer: 'svg', ssr: true, width: 1200, height: parseInt(el.style.height ?? '600') }))
  const sandbox = {
    document: { getElementById: (id: string) => elements[id] },
    window: { addEventListener: () => {} },
    echarts: { ...echarts, init },
  }
  runInNewContext(all[2]!.text, sandbox)
  if (!chart) throw new Error('the page script did not draw')
  t.teardown(() => chart?.dispose())
  return chart
}

t.test('HTML: the page script draws faults, runs, gaps, migrations and violations with ECharts', async (t) => {
  const chart = drawTimeline(t, reportHtml(sampleReport()))
  const svg = chart.renderToSVGString()
  for (const text of [
    'vm-1',
    'vm-2',
    '#1 kill host-a1',
    '#2 partition site-a | site-b',
    'host-b2',
    'client gaps',
    'vm-1 rtt',
    'migration: vm-2 host-a2',
    'violation: double-owner',
    'faults stopped',
  ])
    t.ok(svg.includes(text), `the plot shows ${text}`)
  const option = chart.getOption()
  const faults = option.series.find((s) => s.name === 'faults')
  t.equal(faults?.markArea?.data.length, 2, 'a band per fault')
  t.same(
    option.series.filter((s) => s.name?.startsWith('host-')).map((s) => s.name),
    ['host-a1', 'host-a2', 'host-b1', 'host-b2'],
    'a run series per host',
  )
  const tip = option.tooltip[0]!.formatter({ componentType: 'markLine', name: `violation: double-owner\n${HOSTILE}` })
  t.notMatch(tip, /<img|<\/script/, 'tooltips escape the text')
  t.match(tip, 'double-owner<br>host-a1 said &#60;/script&#62;')
})

t.test('HTML: many VMs and faults, or none at all, still draw', async (t) => {
  const r = sampleReport()
  const vms = Array.from({ length: 16 }, (_, i) => `vm-${i + 1}`)
  const faults = Array.from({ length: 500 }, (_, i) => ({
    ...r.faults[0]!,
    id: i + 1,
    start_ms: T0 + i * 200,
    heal_ms: T0 + i * 200 + 150,
  }))
  const series = vms.map((vm) => ({ ...r.series[0]!, vm }))
  const chart = drawTimeline(t, reportHtml({ ...r, vms, faults, series }))
  const full = chart.renderToSVGString()
  t.ok(full.includes('vm-16'), '16 VMs, 500 faults')
  t.notMatch(full, />#\d+[ <]/, 'no fault labels where bands are a few pixels wide')
  chart.dispatchAction({ type: 'dataZoom', start: 0, end: 2 })
  t.match(chart.renderToSVGString(), />#1</, 'zoomed in, the bands are labelled')
  const empty = { ...quietReport(), vms: [], series: [], processes: [] }
  t.ok(drawTimeline(t, reportHtml(empty)).renderToSVGString().startsWith('<svg'), 'nothing at all')
})

t.test('writeReport writes report.json, report.md and report.html', async (t) => {
  const dir = t.testdir()
  const report = sampleReport()
  const paths = writeReport(join(dir, 'run-1'), report)
  t.same(paths, {
    json: join(dir, 'run-1', 'report.json'),
    markdown: join(dir, 'run-1', 'report.md'),
    html: join(dir, 'run-1', 'report.html'),
  })
  t.same(JSON.parse(readFileSync(paths.json, 'utf8')), report, 'the JSON is the report')
  t.match(readFileSync(paths.json, 'utf8'), '{\n  "format": 1,', 'pretty')
  t.equal(readFileSync(paths.markdown, 'utf8'), reportMarkdown(report))
  t.equal(readFileSync(paths.html, 'utf8'), reportHtml(report))
})
