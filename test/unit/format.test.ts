import t from 'tap'
import { duration, formatEvent, formatStatus, table } from '../../scripts/cli/format.js'
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
  site: 'site-a',
  pid: null,
  state: 'down',
  uptime_ms: null,
  peers: [],
  expectedPeers: [],
  blocked: [],
  peerPort: null,
  metricsPort: null,
  starts: 0,
  lastExit: null,
  ...p,
})

t.test('formatStatus', async (t) => {
  const s: LabStatus = {
    lab: { name: 'two-site', dir: '/tmp/lab', controllerPid: 4242, started_ms: 0, healthy: false, clusterFormed: null },
    processes: [
      proc({
        name: 'host-a1',
        state: 'up',
        pid: 101,
        uptime_ms: 65_000,
        peers: ['host-a2'],
        expectedPeers: ['host-a2', 'witness'],
        metricsPort: 9100,
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
  }
  const out = formatStatus(s)
  const lines = out.split('\n')
  t.equal(lines[0], 'lab two-site in /tmp/lab: NOT healthy (controller pid 4242)')
  t.match(lines[1], /^NAME\s+ROLE\s+SITE\s+STATE\s+PID\s+UPTIME\s+PEERS\s+METRICS$/)
  t.match(lines[2], /^host-a1\s+host\s+site-a\s+up\s+101\s+1m05s\s+1\/2 \(missing witness\)\s+http:\/\/127\.0\.0\.1:9100\/metrics$/)
  t.match(lines[3], /^host-a2\s+host\s+site-a\s+up\s+102\s+500ms\s+1\/1\s+-$/)
  t.match(lines[4], /^witness\s+witness\s+site-c\s+down\s+-\s+-\s+-\s+-$/)
  t.match(out, /^partition: host-a1  ✕  host-b1,host-b2$/m)
  t.match(out, /^witness died by itself \(exit code 1\); last log lines:\n  boom\n  stack line$/m)
  t.notMatch(out, /array-a died/, 'a requested exit is not reported as a death')
  t.notMatch(out, /not shown/)
  t.match(formatStatus({ ...s, lab: { ...s.lab, healthy: true } }), /: healthy \(/)
  const killed = formatStatus({
    ...s,
    processes: [proc({ name: 'host-b1', lastExit: { code: null, signal: 'SIGKILL', at_ms: 0, requested: false, lastLogLines: [] } })],
  })
  t.match(killed, /host-b1 died by itself \(signal SIGKILL\)/)
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
