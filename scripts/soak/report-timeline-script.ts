/**
 * Runs in the browser, after ECharts: reads the report from #soak-data and draws the
 * timeline into #timeline. The top grid has one row per VM (runs per host, client gaps,
 * violations); the bottom one the clients' round trips; fault bands and event lines are on
 * both, sharing one zoomable x axis in seconds since the run's start. Every text that
 * reaches a tooltip (HTML) goes through `esc`; labels and legends are drawn on the canvas.
 */

/** Colours, text helpers, and the layout every part of the plot shares (rows, sizes, times in seconds). */
const COLOURS_AND_LAYOUT = String.raw`
  const RED = '#d62728', ORANGE = '#c45a00', BLUE = '#1f77b4', PURPLE = '#9467bd', GREY = '#444'
  const HOST_COLOURS = ['#4e79a7', '#59a14f', '#edc948', '#b07aa1', '#76b7b2', '#f28e2b', '#9c755f', '#bab0ac', '#86bcb6', '#8cd17d']
  const VM_COLOURS = ['#1f77b4', '#ff7f0e', '#2ca02c', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22',
    '#17becf', '#393b79', '#637939', '#8c6d31', '#843c39', '#7b4173', '#3182bd', '#31a354']
  const MARKS = ['client gaps', 'faults', 'migrations', 'failovers', 'violations', 'run phases']
  const GRID_LEFT = 130, GRID_RIGHT = 40
  const esc = (s) => String(s).replace(/[&<>"']/g, (c) => '&#' + c.charCodeAt(0) + ';')
  const short = (s) => {
    const text = String(s)
    const line = text.slice(0, (text + '\n').indexOf('\n'))
    return line.length > 32 ? line.slice(0, 31) + '\u2026' : line
  }
  const msOrNone = (ms) => (ms === null ? 'none' : Math.round(ms) + ' ms')

  /** What every part of the plot shares: the report, times as seconds since its start, rows, sizes. */
  function layout(r) {
    const vms = [...new Set(r.vms.concat(r.series.map((s) => s.vm)))]
    const ganttTop = 84, ganttHeight = Math.max(vms.length, 2) * 28, rttTop = ganttTop + ganttHeight + 84, rttHeight = 220
    const sec = (ms) => (ms - r.started_ms) / 1000
    return {
      r, vms, sec, rowOf: new Map(vms.map((vm, i) => [vm, i])),
      hosts: [...new Set(r.series.flatMap((s) => s.runs.map((run) => run[2])))].sort(),
      at: (ms) => sec(ms).toFixed(1) + ' s',
      end: Math.max(sec(r.ended_ms), 1),
      ganttTop, ganttHeight, rttTop, rttHeight, zoomTop: rttTop + rttHeight + 44,
    }
  }
`

/** The VMs' series: where each ran (a Gantt row per VM, a colour per host), its client's gaps, its round trips. */
const VM_SERIES = String.raw`
  /** Draws a bar from value 0 to value 1 on row value 2, share of the row high, at least 2 px wide. */
  const bar = (share) => (params, api) => {
    const row = api.value(2), from = api.coord([api.value(0), row]), to = api.coord([api.value(1), row])
    const h = api.size([0, 1])[1] * share
    const rect = { x: from[0], y: from[1] - h / 2, width: Math.max(to[0] - from[0], 2), height: h }
    const shape = echarts.graphic.clipRectByRect(rect, params.coordSys)
    return shape && { type: 'rect', shape: shape, style: { fill: api.visual('color') } }
  }
  const spans = (name, color, share, z, data) => ({ type: 'custom', name, renderItem: bar(share), itemStyle: { color },
    encode: { x: [0, 1], y: 2 }, z, xAxisIndex: 0, yAxisIndex: 0, data })

  /** The top grid: where each VM ran (a series per host), its client's gaps, the violations that name it. */
  function ganttSeries(p) {
    const { r, sec, at, rowOf } = p
    const runs = (host) => r.series.flatMap((s) => s.runs.filter((run) => run[2] === host).map((run) =>
      ({ value: [sec(run[0]), sec(run[1]), rowOf.get(s.vm)], tip: s.vm + ' ran on ' + host + '\n' + at(run[0]) + ' to ' + at(run[1]) })))
    const gaps = r.series.flatMap((s) => s.gaps.map((g) => ({ value: [sec(g.from_ms), sec(g.to_ms), rowOf.get(s.vm)],
      tip: s.vm + ': no reply for ' + Math.round(g.to_ms - g.from_ms) + ' ms\n' + at(g.from_ms) + ' to ' + at(g.to_ms) })))
    const violations = r.violations.filter((v) => rowOf.has(v.vm))
      .map((v) => ({ value: [sec(v.at_ms), rowOf.get(v.vm)], tip: 'violation: ' + v.kind + '\n' + v.summary }))
    return p.hosts.map((host, i) => spans(host, HOST_COLOURS[i % HOST_COLOURS.length], 0.6, 2, runs(host))).concat([
      spans('client gaps', RED, 0.3, 3, gaps),
      { type: 'scatter', name: 'violations', symbol: 'triangle', symbolSize: 12, itemStyle: { color: RED }, z: 5,
        xAxisIndex: 0, yAxisIndex: 0, data: violations },
    ])
  }

  /**
   * Each fault's label at pxPerSecond: its kind and target where its band is wide enough, else its id where that
   * fits, else none; and none where it would overlap the label before it.
   */
  /** The bottom grid: each VM's client round trips (ms, at least 0.1 on the log scale; the tooltip tells the real one). */
  const rttSeries = (p) => p.r.series.map((s) => ({ type: 'scatter', name: s.vm + ' rtt', xAxisIndex: 1, yAxisIndex: 1, symbolSize: 3,
    large: true, largeThreshold: 2000, itemStyle: { color: VM_COLOURS[p.rowOf.get(s.vm) % VM_COLOURS.length] },
    data: s.rtt.map((x) => [p.sec(x[0]), Math.max(x[1], 0.1), x[1]]) }))
`

/** Faults as bands on both grids, labelled where the zoom leaves room. */
const FAULT_MARKS = String.raw`
  function faultLabels(p, pxPerSecond) {
    const labels = new Map()
    let free_px = -Infinity
    for (const f of p.r.faults.slice().sort((a, b) => a.start_ms - b.start_ms)) {
      const from_px = p.sec(f.start_ms) * pxPerSecond
      const width_px = (((f.heal_ms === null ? p.r.ended_ms : f.heal_ms) - f.start_ms) / 1000) * pxPerSecond
      const full = short('#' + f.id + ' ' + f.kind + ' ' + f.target), id = '#' + f.id
      const text = [full, id].find((t) => width_px >= t.length * 6 + 4 && from_px >= free_px) || ''
      labels.set(f, text)
      if (text) free_px = from_px + text.length * 6 + 4
    }
    return labels
  }

  /** The fault bands, labelled as faultLabels says. */
  function faultAreas(p, pxPerSecond) {
    const { r, sec, at } = p
    const labels = faultLabels(p, pxPerSecond)
    return r.faults.map((f) => {
      const text = labels.get(f), rto = f.rto_ms_by_vm.map((x) => x.vm + ' ' + msOrNone(x.rto_ms)).join(', ') || 'none'
      const tip = 'fault ' + f.id + ': ' + f.kind + ' ' + f.target + '\n' + at(f.start_ms) + ' to ' +
        (f.heal_ms === null ? 'the end (not healed)' : at(f.heal_ms)) + '\ndetection: ' + msOrNone(f.detection_ms) +
        '\nRTO: ' + rto + '\nfailovers: ' + f.failovers
      const to = sec(f.heal_ms === null ? r.ended_ms : f.heal_ms)
      return [{ xAxis: sec(f.start_ms), name: tip, label: { show: text !== '', formatter: () => text } }, { xAxis: to }]
    })
  }

  /** A VM starting on another host than its last run's, outside a migration to there: a failover or a move. */
`

/** Failovers, migrations and violations as lines on both grids, and the series that carry the marks. */
const EVENT_MARKS = String.raw`
  function failoverLines(p) {
    const lines = []
    for (const s of p.r.series) {
      const runs = s.runs.slice().sort((a, b) => a[0] - b[0])
      for (let i = 1; i < runs.length; i++) {
        const before = runs[i - 1], run = runs[i]
        const migrated = p.r.migrations.some((m) =>
          m.vm === s.vm && m.to === run[2] && run[0] >= m.start_ms - 1000 && run[0] <= m.end_ms + 1000)
        if (before[2] !== run[2] && !migrated)
          lines.push({ x: p.sec(run[0]), tip: 'failover or move: ' + s.vm + ' ' + before[2] + ' \u2192 ' + run[2] + ' at ' + p.at(run[0]) })
      }
    }
    return lines
  }

  /** The vertical lines, by legend entry. */
  function eventLines(p) {
    const { r, sec, at } = p
    const migrations = r.migrations.map((m) => ({ x: sec(m.end_ms), tip: 'migration: ' + m.vm + ' ' + m.from + ' \u2192 ' + m.to +
      ' (' + m.mode + (m.ok ? ', ok' : ', failed') + ')\n' + at(m.start_ms) + ' to ' + at(m.end_ms) +
      '\nblackout reported: ' + msOrNone(m.reported_blackout_ms) + ', client gap: ' + msOrNone(m.client_gap_ms) }))
    const violations = r.violations.map((v) => ({ x: sec(v.at_ms),
      tip: 'violation: ' + v.kind + (v.vm ? ' ' + v.vm : '') + (v.process ? ' ' + v.process : '') + '\n' + v.summary }))
    const phases = [{ x: sec(r.faults_stopped_ms), tip: 'faults stopped' },
      { x: sec(r.faults_stopped_ms + r.recovery_bound_ms), tip: 'recovery deadline' }]
    return { migrations, failovers: failoverLines(p), violations, phases }
  }

  /** The bands and lines on one grid, each kind a series of no data of its own, so that the legend hides it. */
  function markSeries(p, lines, grid, pxPerSecond) {
    const marked = (name, items, color, type, labelsUpTo) => ({
      type: 'line', name, xAxisIndex: grid, yAxisIndex: grid, data: [], itemStyle: { color }, z: 4,
      markLine: { symbol: 'none', animation: false, lineStyle: { color, type, width: 1.2, opacity: 0.85 },
        label: { show: grid === 1 && items.length <= labelsUpTo, position: 'insideEndTop', fontSize: 10, color,
          formatter: (l) => short(l.name) },
        data: items.map((l) => ({ xAxis: l.x, name: l.tip })) },
    })
    const shade = 'rgba(242,142,43,' + (p.r.faults.length > 60 ? 0.1 : 0.18) + ')'
    const faults = { type: 'line', id: 'faults-' + grid, name: 'faults', xAxisIndex: grid, yAxisIndex: grid, data: [],
      itemStyle: { color: '#f28e2b' }, z: 0, markArea: { itemStyle: { color: shade }, data: faultAreas(p, grid === 0 ? pxPerSecond : 0),
        label: { position: 'top', distance: 2, fontSize: 10, color: ORANGE } } }
    return [faults, marked('migrations', lines.migrations, BLUE, 'dashed', 10), marked('failovers', lines.failovers, PURPLE, 'solid', 0),
      marked('violations', lines.violations, RED, 'solid', 10), marked('run phases', lines.phases, GREY, 'dotted', 2)]
  }
`

/** The tooltip and the whole chart option: two grids on one zoomable x axis. */
const CHART_OPTION = String.raw`
  function tipOf(item) {
    if (item.componentType === 'markArea' || item.componentType === 'markLine') return item.name
    if (item.data && typeof item.data.tip === 'string') return item.data.tip
    if (item.seriesType === 'scatter' && Array.isArray(item.data))
      return item.seriesName + ': ' + item.data[2] + ' ms at ' + item.data[0].toFixed(3) + ' s'
    return item.seriesName
  }

  function chartOption(p, pxPerSecond) {
    const lines = eventLines(p)
    const xAxis = (grid) => ({ type: 'value', gridIndex: grid, min: 0, max: p.end, name: grid === 1 ? 'seconds since the start' : '',
      nameLocation: 'middle', nameGap: 28, axisLabel: { formatter: (v) => v + ' s' } })
    const grid = (top, height) => ({ left: GRID_LEFT, right: GRID_RIGHT, top, height })
    return {
      animation: false,
      tooltip: { trigger: 'item', confine: true, formatter: (item) => esc(tipOf(item)).replace(/\n/g, '<br>') },
      toolbox: { right: 10, top: 0, feature: { dataZoom: { yAxisIndex: 'none' }, restore: {}, saveAsImage: {} } },
      legend: [{ type: 'scroll', top: 0, left: 10, right: 120, data: p.hosts.concat(MARKS) },
        { type: 'scroll', top: p.rttTop - 44, left: 10, right: 10, data: p.r.series.map((s) => s.vm + ' rtt') }],
      grid: [grid(p.ganttTop, p.ganttHeight), grid(p.rttTop, p.rttHeight)],
      xAxis: [xAxis(0), xAxis(1)],
      yAxis: [{ type: 'category', gridIndex: 0, data: p.vms, inverse: true, axisTick: { show: false },
        splitLine: { show: true, lineStyle: { color: '#eee' } }, axisLabel: { width: GRID_LEFT - 10, overflow: 'truncate' } },
      { type: 'log', gridIndex: 1, name: 'client round trip, ms', nameTextStyle: { align: 'left' } }],
      dataZoom: [{ type: 'inside', xAxisIndex: [0, 1], filterMode: 'none', zoomOnMouseWheel: 'ctrl', moveOnMouseWheel: false },
        { type: 'slider', xAxisIndex: [0, 1], filterMode: 'none', top: p.zoomTop, height: 22,
          labelFormatter: (v) => Number(v).toFixed(1) + ' s' }],
      series: ganttSeries(p).concat(markSeries(p, lines, 0, pxPerSecond), markSeries(p, lines, 1, pxPerSecond), rttSeries(p)),
    }
  }
`

/** Reads the report, draws the chart, and relabels the fault bands on zoom and resize. */
const START = String.raw`
  const element = document.getElementById('timeline')
  const p = layout(JSON.parse(document.getElementById('soak-data').textContent))
  element.style.height = p.zoomTop + 56 + 'px'
  const chart = echarts.init(element)
  /** Pixels per second of the x axis as it is zoomed and sized now. */
  const pxPerSecond = () => {
    const zoom = chart.getOption().dataZoom[0]
    return Math.max(chart.getWidth() - GRID_LEFT - GRID_RIGHT, 100) / Math.max((p.end * (zoom.end - zoom.start)) / 100, 0.001)
  }
  chart.setOption(chartOption(p, Math.max(chart.getWidth() - GRID_LEFT - GRID_RIGHT, 100) / p.end))
  const relabel = () => chart.setOption({ series: [{ id: 'faults-0', markArea: { data: faultAreas(p, pxPerSecond()) } }] })
  chart.on('datazoom', relabel)
  window.addEventListener('resize', () => {
    chart.resize()
    relabel()
  })
`

/** The page's whole script: the parts above, in one strict-mode function run at once. */
export const TIMELINE_SCRIPT = [
  '(() => {',
  "  'use strict'",
  COLOURS_AND_LAYOUT,
  VM_SERIES,
  FAULT_MARKS,
  EVENT_MARKS,
  CHART_OPTION,
  START,
  '})()',
  '',
].join('\n')
