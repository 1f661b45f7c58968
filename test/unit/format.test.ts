import t from 'tap'
import { duration, formatEvent, formatStatus, lagColumn, table } from '../../scripts/cli/format.js'
import type { LabStatus, ProcessStatus } from '../../scripts/controller/lab-controller.js'
import type { TimelineEvent } from '../../shared/timeline/events.js'

t.test('duration', async (t) => {
  t.equal(duration(null), '-')
  t.equal(duration(0), '0ms')
  t.equal(duration(999), '999ms')
  t.equal(duration(1000), '1s')
  t.equal(duration(59_999), '59s')
  t.equal(duration(60_000), '1m00s')
  t.equal(duration(61_000), '1m01s')
  t.equal(duration(3_599_000), '59m59s')
  t.equal(duration(3_600_000), '1h00m')
  t.equal(duration(90_061_000), '25h01m')
})

t.test('table pads every column but the last', async (t) => {
  t.equal(
    table([
      ['A', 'BB', 'C'],
      ['long', 'x', 'last column'],
    ]),
    'A     BB  C\nlong  x   last column',
  )
  t.equal(table([['ONLY']]), 'ONLY')
})

const proc = (p: Partial<ProcessStatus> & { name: string }): ProcessStatus => ({
  role: 'host',
  cluster: 'main',
  site: 'site-a',
  pid: null,
  state: 'down',
  uptime_ms: null,
  peers: [],
  expectedPeers: [],
  blocked: [],
  clockSkew: null,
  peerPort: null,
  metricsPort: null,
  starts: 0,
  lastExit: null,
  eventLoopLag: null,
  ...p,
})

const lag = (p99_ms: number) => ({ p50_ms: 0, p99_ms, max_ms: p99_ms, samples: 100 })

t.test('lagColumn: the p99 in whole ms, <1ms below half a ms, - while unknown', async (t) => {
  t.equal(lagColumn(null), '-')
  t.equal(lagColumn(undefined), '-')
  t.equal(lagColumn(lag(0)), '<1ms')
  t.equal(lagColumn(lag(0.49)), '<1ms')
  t.equal(lagColumn(lag(0.5)), '1ms')
  t.equal(lagColumn(lag(12.4)), '12ms')
  t.equal(lagColumn(lag(49.6)), '50ms')
  t.equal(lagColumn(lag(1234.5)), '1235ms')
})

t.test('formatStatus', async (t) => {
  const s: LabStatus = {
    lab: {
      name: 'two-site',
      dir: '/tmp/lab',
      controllerPid: 4242,
      started_ms: 0,
      healthy: false,
      clusterFormed: null,
      metricsPort: null,
      eventLoopLag: null,
    },
    processes: [
      proc({
        name: 'host-a1',
        state: 'up',
        pid: 101,
        uptime_ms: 65_000,
        peers: ['host-a2'],
        expectedPeers: ['host-a2', 'witness'],
        metricsPort: 9100,
        eventLoopLag: lag(3.6),
      }),
      proc({ name: 'host-a2', state: 'up', pid: 102, uptime_ms: 500, peers: ['host-a1'], expectedPeers: ['host-a1'] }),
      proc({
        name: 'witness',
        role: 'witness',
        site: 'site-c',
        lastExit: { code: 1, signal: null, at_ms: 0, requested: false, lastLogLines: ['boom', 'stack line'] },
      }),
      proc({
        name: 'array-a',
        role: 'array',
        lastExit: { code: null, signal: 'SIGKILL', at_ms: 0, requested: true, lastLogLines: ['not shown'] },
      }),
    ],
    partitions: [{ a: ['host-a1'], b: ['host-b1', 'host-b2'] }],
    links: [],
  }
  const now_ms = 12_000
  const out = formatStatus(s, now_ms)
  const lines = out.split('\n')
  t.equal(lines[0], 'lab two-site in /tmp/lab: NOT healthy (controller pid 4242)')
  t.match(lines[1], /^NAME\s+ROLE\s+SITE\s+STATE\s+PID\s+UPTIME\s+PEERS\s+LAG P99\s+METRICS$/)
  t.match(lines[2], /^host-a1\s+host\s+site-a\s+up\s+101\s+1m05s\s+1\/2 \(missing witness\)\s+4ms\s+http:\/\/127\.0\.0\.1:9100\/metrics$/)
  t.match(lines[3], /^host-a2\s+host\s+site-a\s+up\s+102\s+500ms\s+1\/1\s+-\s+-$/, 'no lag known yet: -')
  t.match(lines[4], /^witness\s+witness\s+site-c\s+down\s+-\s+-\s+-\s+-\s+-$/)
  t.equal(
    formatStatus({ ...s, lab: { ...s.lab, eventLoopLag: lag(0.2) } }, now_ms).split('\n')[0],
    'lab two-site in /tmp/lab: NOT healthy (controller pid 4242, lag p99 <1ms)',
    "the controller's own lag on the lab's line",
  )
  t.match(out, /^partition: host-a1  ✕  host-b1,host-b2$/m)
  const row = (from: string, to: string, extra = {}) => ({
    from,
    to,
    latency_ms: 20,
    jitter_ms: 5,
    mbit: 100,
    loss: 0,
    cut: false,
    ...extra,
  })
  const withFaults = formatStatus(
    {
      ...s,
      processes: s.processes.map((p) => (p.name === 'host-a2' ? { ...p, clockSkew: { offset_ms: -300, drift: 0.01 } } : p)),
      links: [
        row('host-a1', 'host-b1'),
        row('host-a1', 'host-a2', { cut: true }),
        row('host-b1', 'host-a1', { jitter_ms: 0, mbit: 0, loss: 0.01 }),
      ],
    },
    now_ms,
  )
  t.match(withFaults, /^clock host-a2: 300 ms behind, gaining 1 %$/m, 'a skewed clock')
  t.match(withFaults, /^link host-a1 → host-b1: 20 ms ± 5, 100 Mbit\/s$/m, 'a shaped direction')
  t.match(withFaults, /^link host-a1 → host-a2: cut \(one-way partition\)$/m, 'a one-way cut')
  t.match(withFaults, /^link host-b1 → host-a1: 20 ms, loss 0.01$/m)
  const many = formatStatus({ ...s, links: Array.from({ length: 9 }, (_, i) => row('host-a1', `host-b${i}`)) }, now_ms)
  t.match(many, /^links: 9 directions with a fault \(`hvlab link show` lists them\)$/m, 'more than 8: counted')
  t.notMatch(many, /^link host-a1/m)
  t.match(
    out,
    /^witness: died by itself, exited with code 1 12s ago; not restarted \(`hvlab restart witness`\); last log lines:\n  boom\n  stack line$/m,
  )
  t.match(
    out,
    /^array-a: killed by SIGKILL \(hvlab kill\) 12s ago; last log: not shown$/m,
    'a requested exit says so, with its last log line',
  )
  t.notMatch(out, /array-a: died/, 'a requested exit is not reported as a death')
  t.match(formatStatus({ ...s, lab: { ...s.lab, healthy: true } }), /: healthy \(/)
  const killed = formatStatus(
    {
      ...s,
      processes: [proc({ name: 'host-b1', lastExit: { code: null, signal: 'SIGKILL', at_ms: 0, requested: false, lastLogLines: [] } })],
    },
    3_723_000,
  )
  t.match(killed, /^host-b1: died by itself, killed by SIGKILL 1h02m ago; not restarted \(`hvlab restart host-b1`\); no log lines$/m)
  const long = formatStatus(
    {
      ...s,
      processes: [proc({ name: 'x', lastExit: { code: 0, signal: null, at_ms: 0, requested: true, lastLogLines: ['y'.repeat(1000)] } })],
    },
    0,
  )
  t.match(long, /^x: exited with code 0 \(hvlab kill\) 0ms ago; last log: y{239}…$/m, 'a long log line is clipped')
})

t.test('formatStatus: a paused process shows no stale peers; an up one that is restarting shows no old exit', async (t) => {
  const s: LabStatus = {
    lab: {
      name: 'lab',
      dir: '/tmp/lab',
      controllerPid: 1,
      started_ms: 0,
      healthy: false,
      clusterFormed: null,
      metricsPort: null,
      eventLoopLag: null,
    },
    processes: [
      proc({
        name: 'witness',
        role: 'witness',
        state: 'paused',
        pid: 7,
        uptime_ms: 9000,
        peers: ['h1', 'h2'],
        expectedPeers: ['h1', 'h2'],
      }),
      proc({
        name: 'h1',
        state: 'up',
        pid: 8,
        uptime_ms: 1000,
        peers: ['h2'],
        expectedPeers: ['h2', 'witness'],
        lastExit: { code: null, signal: 'SIGKILL', at_ms: 0, requested: true, lastLogLines: ['old'] },
      }),
    ],
    partitions: [],
    links: [],
  }
  const out = formatStatus(s, 0)
  t.match(out, /^witness\s+witness\s+site-a\s+paused\s+7\s+9s\s+paused\s+-\s+-$/m, 'PEERS says paused, not 2/2')
  t.notMatch(out, /2\/2/)
  t.notMatch(out, /old|killed/, 'a process up again has no exit line')
})

t.test('formatEvent', async (t) => {
  const at_ms = Date.UTC(2024, 0, 2, 3, 4, 5, 678)
  t.equal(
    // Details beyond what the kind declares (an older or newer lab's): printed as they are.
    formatEvent({
      seq: 1,
      at_ms,
      kind: 'peer.connected',
      source: 'host-a1',
      details: { peer: 'host-b1', n: 2, list: ['x'] },
    } as unknown as TimelineEvent),
    '03:04:05.678  host-a1   peer.connected       peer=host-b1 n=2 list=["x"]',
  )
  // And fewer than it declares.
  const crashed = formatEvent({
    seq: 2,
    at_ms,
    kind: 'process.crashed',
    source: 'lab',
    details: { process: 'witness', lastLogLines: ['first', 'second'] },
  } as unknown as TimelineEvent)
  t.equal(crashed, '03:04:05.678  lab       process.crashed      process=witness\n    first\n    second')
})
